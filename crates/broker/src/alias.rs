//! Inbound topic aliases of one 5.0 connection, sans-IO. Aliases live as
//! long as the network connection, not the session.

use std::collections::HashMap;

use bytestring::ByteString;
use midge_proto::ReasonCode;

#[derive(Debug, Default)]
pub struct TopicAliases {
    max: u16,
    table: HashMap<u16, ByteString, ahash::RandomState>,
}

impl TopicAliases {
    /// `max` is the Topic Alias Maximum the server advertised.
    pub fn new(max: u16) -> Self {
        TopicAliases {
            max,
            table: HashMap::default(),
        }
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
                .get(&alias)
                .cloned()
                .ok_or(ReasonCode::ProtocolError);
        }
        self.table.insert(alias, topic.clone());
        Ok(topic.clone())
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
}
