//! Topic aliases of one 5.0 connection, sans-IO: the ones the client binds
//! (inbound) and the ones the broker binds for the client (outbound, up to
//! the Topic Alias Maximum the client gave in CONNECT). Aliases live as long
//! as the network connection, not the session.

use std::collections::HashMap;

use bytestring::ByteString;
use midge_proto::ReasonCode;

/// A table created on first use: most connections never use aliases, and
/// an empty `HashMap` with its hasher keys is 64 bytes of every connection.
type Table<K, V> = Option<Box<HashMap<K, V, ahash::RandomState>>>;

#[derive(Debug, Default)]
pub struct TopicAliases {
    max: u16,
    table: Table<u16, ByteString>,
}

impl TopicAliases {
    /// `max` is the Topic Alias Maximum the server advertised.
    pub fn new(max: u16) -> Self {
        TopicAliases { max, table: None }
    }

    /// The topic a PUBLISH is for, given its topic field and Topic Alias:
    /// a non-empty topic with an alias (re)binds it; an empty topic uses the
    /// bound one. Errors are the DISCONNECT reason to send.
    pub fn resolve(
        &mut self,
        topic: &ByteString,
        alias: Option<u16>,
    ) -> Result<ByteString, ReasonCode> {
        let Some(alias) = alias else {
            if topic.is_empty() {
                return Err(ReasonCode::ProtocolError);
            }
            return Ok(topic.clone());
        };
        if alias == 0 || alias > self.max {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if topic.is_empty() {
            return self
                .table
                .as_ref()
                .and_then(|t| t.get(&alias))
                .cloned()
                .ok_or(ReasonCode::ProtocolError);
        }
        self.table
            .get_or_insert_with(Box::default)
            .insert(alias, topic.clone());
        Ok(topic.clone())
    }
}

/// How to send one PUBLISH's topic with outbound aliases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutAlias {
    /// No alias: the topic as is (aliases off, or all taken).
    None,
    /// Send the topic with this new alias, binding it.
    Bind(u16),
    /// Send an empty topic with this alias, bound earlier.
    Use(u16),
}

/// Aliases the broker assigns for topics it sends to one client. First
/// come, first served: the first `max` distinct topics get one for the
/// connection's life; later topics are sent in full. A binding is recorded
/// only once its PUBLISH is really sent ([`OutboundAliases::commit`]).
#[derive(Debug, Default)]
pub struct OutboundAliases {
    max: u16,
    table: Table<ByteString, u16>,
}

impl OutboundAliases {
    /// `max` is the Topic Alias Maximum the client sent (0 = none).
    pub fn new(max: u16) -> Self {
        OutboundAliases { max, table: None }
    }

    /// What to send for `topic`; nothing is recorded yet.
    pub fn plan(&self, topic: &ByteString) -> OutAlias {
        if self.max == 0 {
            return OutAlias::None;
        }
        if let Some(&a) = self.table.as_ref().and_then(|t| t.get(topic)) {
            return OutAlias::Use(a);
        }
        // Aliases are handed out 1, 2, ... and never unbound, so the next
        // free one is the table's size plus one.
        let bound = self.table.as_ref().map_or(0, |t| t.len());
        match u16::try_from(bound + 1) {
            Ok(next) if next <= self.max => OutAlias::Bind(next),
            _ => OutAlias::None,
        }
    }

    /// Records a `Bind` whose PUBLISH went out.
    pub fn commit(&mut self, topic: &ByteString, plan: OutAlias) {
        if let OutAlias::Bind(a) = plan {
            self.table
                .get_or_insert_with(Box::default)
                .insert(topic.clone(), a);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_use_rebind() {
        let mut a = TopicAliases::new(10);
        let t = ByteString::from_static("a/b");
        let empty = ByteString::new();
        assert_eq!(a.resolve(&empty, Some(1)), Err(ReasonCode::ProtocolError));
        assert_eq!(a.resolve(&t, Some(1)), Ok(t.clone()));
        assert_eq!(a.resolve(&empty, Some(1)), Ok(t.clone()));
        let u = ByteString::from_static("c");
        assert_eq!(a.resolve(&u, Some(1)), Ok(u.clone()));
        assert_eq!(a.resolve(&empty, Some(1)), Ok(u));
    }

    #[test]
    fn out_of_range() {
        let mut a = TopicAliases::new(2);
        let t = ByteString::from_static("a");
        assert_eq!(a.resolve(&t, Some(0)), Err(ReasonCode::TopicAliasInvalid));
        assert_eq!(a.resolve(&t, Some(3)), Err(ReasonCode::TopicAliasInvalid));
        let mut none = TopicAliases::new(0);
        assert_eq!(
            none.resolve(&t, Some(1)),
            Err(ReasonCode::TopicAliasInvalid)
        );
        assert_eq!(
            none.resolve(&ByteString::new(), None),
            Err(ReasonCode::ProtocolError)
        );
    }

    #[test]
    fn outbound_first_come_until_full() {
        let t = |s: &'static str| ByteString::from_static(s);
        let mut o = OutboundAliases::new(2);
        assert_eq!(o.plan(&t("a")), OutAlias::Bind(1));
        // Not sent (e.g. too large): not bound.
        assert_eq!(o.plan(&t("a")), OutAlias::Bind(1));
        o.commit(&t("a"), OutAlias::Bind(1));
        assert_eq!(o.plan(&t("a")), OutAlias::Use(1));
        o.commit(&t("a"), OutAlias::Use(1));
        let b = o.plan(&t("b"));
        assert_eq!(b, OutAlias::Bind(2));
        o.commit(&t("b"), b);
        assert_eq!(o.plan(&t("c")), OutAlias::None);
        o.commit(&t("c"), OutAlias::None);
        assert_eq!(o.plan(&t("b")), OutAlias::Use(2));
        assert_eq!(OutboundAliases::new(0).plan(&t("a")), OutAlias::None);
    }
}
