//! Retained messages: one per topic, in a trie of topic levels so that a new
//! subscription's filter walks only the branches it can match (a filter
//! without wildcards is a single path walk).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::message::Message;

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

#[derive(Debug, Default)]
struct Node {
    children: Map<Box<str>, Node>,
    msg: Option<Arc<Message>>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.msg.is_none()
    }
}

/// The retained-message store.
#[derive(Debug, Default)]
pub struct Retained {
    root: Node,
    len: usize,
}

impl Retained {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `msg` for its topic, or deletes the topic's retained message
    /// when the payload is empty.
    pub fn set(&mut self, msg: Arc<Message>) {
        if msg.payload.is_empty() {
            self.remove(&msg.topic);
            return;
        }
        let mut node = &mut self.root;
        for level in msg.topic.split('/') {
            node = node.children.entry(Box::from(level)).or_default();
        }
        if node.msg.replace(msg).is_none() {
            self.len += 1;
        }
    }

    /// Deletes the retained message of `topic`; true if there was one.
    pub fn remove(&mut self, topic: &str) -> bool {
        let levels: Vec<&str> = topic.split('/').collect();
        let removed = Self::remove_at(&mut self.root, &levels);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node, levels: &[&str]) -> bool {
        let Some((first, rest)) = levels.split_first() else {
            return node.msg.take().is_some();
        };
        let Some(child) = node.children.get_mut(*first) else {
            return false;
        };
        let removed = Self::remove_at(child, rest);
        if removed && child.is_empty() {
            node.children.remove(*first);
        }
        removed
    }

    /// Appends the live retained messages matching `filter` (a valid,
    /// non-shared filter) to `out`. Expired ones are skipped.
    pub fn matching(&self, filter: &str, now: Instant, out: &mut Vec<Arc<Message>>) {
        let levels: Vec<&str> = filter.split('/').collect();
        Self::walk(&self.root, &levels, true, now, out);
    }

    fn walk(
        node: &Node,
        levels: &[&str],
        at_root: bool,
        now: Instant,
        out: &mut Vec<Arc<Message>>,
    ) {
        let Some((first, rest)) = levels.split_first() else {
            if let Some(m) = &node.msg {
                if !m.is_expired(now) {
                    out.push(m.clone());
                }
            }
            return;
        };
        match *first {
            "#" => {
                // `a/#` matches `a` too; a leading `#` skips `$` topics.
                if !at_root {
                    if let Some(m) = &node.msg {
                        if !m.is_expired(now) {
                            out.push(m.clone());
                        }
                    }
                }
                for (name, child) in &node.children {
                    if !(at_root && name.starts_with('$')) {
                        Self::all(child, now, out);
                    }
                }
            }
            "+" => {
                for (name, child) in &node.children {
                    if !(at_root && name.starts_with('$')) {
                        Self::walk(child, rest, false, now, out);
                    }
                }
            }
            level => {
                if let Some(child) = node.children.get(level) {
                    Self::walk(child, rest, false, now, out);
                }
            }
        }
    }

    fn all(node: &Node, now: Instant, out: &mut Vec<Arc<Message>>) {
        if let Some(m) = &node.msg {
            if !m.is_expired(now) {
                out.push(m.clone());
            }
        }
        for child in node.children.values() {
            Self::all(child, now, out);
        }
    }

    /// Drops every expired message; run from a timer.
    pub fn purge_expired(&mut self, now: Instant) -> usize {
        let removed = Self::purge_at(&mut self.root, now);
        self.len -= removed;
        removed
    }

    fn purge_at(node: &mut Node, now: Instant) -> usize {
        let mut removed = 0;
        if node.msg.as_ref().is_some_and(|m| m.is_expired(now)) {
            node.msg = None;
            removed += 1;
        }
        node.children.retain(|_, child| {
            removed += Self::purge_at(child, now);
            !child.is_empty()
        });
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use midge_proto::QoS;
    use std::time::Duration;

    fn msg(topic: &str, payload: &'static str) -> Arc<Message> {
        Arc::new(Message::new(
            topic,
            Bytes::from_static(payload.as_bytes()),
            QoS::AtMostOnce,
            true,
        ))
    }

    fn topics(r: &Retained, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        r.matching(filter, Instant::now(), &mut out);
        let mut v: Vec<String> = out.iter().map(|m| m.topic.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn set_replace_delete() {
        let mut r = Retained::new();
        r.set(msg("a/b", "1"));
        r.set(msg("a/b", "2"));
        assert_eq!(r.len(), 1);
        let mut out = Vec::new();
        r.matching("a/b", Instant::now(), &mut out);
        assert_eq!(&out[0].payload[..], b"2");
        r.set(msg("a/b", ""));
        assert!(r.is_empty());
        assert!(r.root.is_empty());
    }

    #[test]
    fn wildcard_filters() {
        let mut r = Retained::new();
        for t in ["a", "a/b", "a/b/c", "a/c", "b/b", "$SYS/x", "/a"] {
            r.set(msg(t, "x"));
        }
        assert_eq!(topics(&r, "a/#"), ["a", "a/b", "a/b/c", "a/c"]);
        assert_eq!(topics(&r, "+/b"), ["a/b", "b/b"]);
        assert_eq!(topics(&r, "#"), ["/a", "a", "a/b", "a/b/c", "a/c", "b/b"]);
        assert_eq!(topics(&r, "$SYS/#"), ["$SYS/x"]);
        assert_eq!(topics(&r, "+/+"), ["/a", "a/b", "a/c", "b/b"]);
        assert_eq!(topics(&r, "a/b"), ["a/b"]);
        assert_eq!(topics(&r, "a/x"), Vec::<String>::new());
    }

    #[test]
    fn expired_skipped_and_purged() {
        let mut r = Retained::new();
        let mut m = Message::new("e", Bytes::from_static(b"x"), QoS::AtMostOnce, true);
        m.properties.message_expiry_interval = Some(1);
        let t0 = m.received_at;
        r.set(Arc::new(m));
        let mut out = Vec::new();
        r.matching("e", t0, &mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        r.matching("e", t0 + Duration::from_secs(2), &mut out);
        assert!(out.is_empty());
        assert_eq!(r.purge_expired(t0 + Duration::from_secs(2)), 1);
        assert!(r.is_empty());
    }
}
