//! The subscription index: a trie of topic-filter levels with `+`, `#` and
//! `$share/{group}/` groups. Lookup walks only the branches a topic can
//! match, allocates nothing (results go into the caller's reusable `Vec`) and
//! needs only `&self`, so the publish path shares a read lock.
//!
//! Generic over the subscriber value so that it is unit-tested without
//! sessions; each subscriber has a `u64` key that identifies it for
//! replacement, removal and de-duplication.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use midge_proto::topic;
use midge_proto::QoS;

mod sublist;
use sublist::SubList;

type Map<K, V> = HashMap<K, V, ahash::RandomState>;

/// The options of one subscription that matter when routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubInfo {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 5.0 Subscription Identifier.
    pub id: Option<u32>,
}

/// One subscriber of a filter.
#[derive(Debug, Clone)]
struct Entry<T> {
    key: u64,
    value: T,
    info: SubInfo,
}

/// The members of one `$share/{group}/{filter}`.
#[derive(Debug)]
struct SharedGroup<T> {
    name: Box<str>,
    /// The whole `$share/{group}/{filter}` string, to find the group again
    /// when an unacknowledged message must go to another member.
    full: Arc<str>,
    members: SubList<T>,
    /// Round-robin cursor; atomic so that picking needs only a read lock.
    next: AtomicUsize,
}

#[derive(Debug)]
struct Node<T> {
    children: Map<Box<str>, Node<T>>,
    plus: Option<Box<Node<T>>>,
    hash: Option<Box<Node<T>>>,
    subs: SubList<T>,
    shared: Vec<SharedGroup<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            children: Map::default(),
            plus: None,
            hash: None,
            subs: SubList::default(),
            shared: Vec::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.children.is_empty()
            && self.plus.is_none()
            && self.hash.is_none()
            && self.subs.is_empty()
            && self.shared.is_empty()
    }

    fn child_mut(&mut self, level: &str) -> &mut Node<T> {
        match level {
            "+" => self.plus.get_or_insert_with(Box::default),
            "#" => self.hash.get_or_insert_with(Box::default),
            _ => self.children.entry(Box::from(level)).or_default(),
        }
    }
}

/// A matching subscriber, as found by [`Index::matches`].
#[derive(Debug, Clone)]
pub struct Match<T> {
    pub key: u64,
    pub value: T,
    pub info: SubInfo,
    /// For a shared subscription: its whole `$share/...` filter.
    pub share: Option<Arc<str>>,
}

/// The subscription trie.
#[derive(Debug)]
pub struct Index<T> {
    root: Node<T>,
    len: usize,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index {
            root: Node::default(),
            len: 0,
        }
    }
}

/// Splits the first level off `rest`: `None` means no level is left.
/// A plain byte scan: levels are short, and `str::find(char)` costs some
/// 160 instructions a call on them (it is tuned for long haystacks); this
/// runs several times per routed message.
#[inline]
fn split_level(rest: &str) -> (&str, Option<&str>) {
    match rest.bytes().position(|b| b == b'/') {
        // `/` is ASCII, so both sides are on char boundaries.
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    }
}

impl<T: Clone> Index<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscriptions (shared members included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds or replaces the subscription of `key` to `filter` (a valid
    /// filter, possibly `$share/...`). Returns true if it is new.
    pub fn subscribe(&mut self, filter: &str, key: u64, value: T, info: SubInfo) -> bool {
        let (group, inner) = match topic::parse_shared(filter) {
            Some((g, f)) => (Some(g), f),
            None => (None, filter),
        };
        let mut node = &mut self.root;
        for level in inner.split('/') {
            node = node.child_mut(level);
        }
        let entry = Entry { key, value, info };
        let list = match group {
            None => &mut node.subs,
            Some(g) => {
                let pos = match node.shared.iter().position(|s| &*s.name == g) {
                    Some(p) => p,
                    None => {
                        node.shared.push(SharedGroup {
                            name: Box::from(g),
                            full: Arc::from(filter),
                            members: SubList::default(),
                            next: AtomicUsize::new(0),
                        });
                        node.shared.len() - 1
                    }
                };
                &mut node.shared[pos].members
            }
        };
        let new = list.upsert(entry);
        if new {
            self.len += 1;
        }
        new
    }

    /// Removes the subscription of `key` to `filter`. Returns true if it
    /// existed. Empty branches are pruned.
    pub fn unsubscribe(&mut self, filter: &str, key: u64) -> bool {
        let (group, inner) = match topic::parse_shared(filter) {
            Some((g, f)) => (Some(g), f),
            None => (None, filter),
        };
        let removed = Self::remove_at(&mut self.root, Some(inner), group, key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node<T>, rest: Option<&str>, group: Option<&str>, key: u64) -> bool {
        let Some(rest) = rest else {
            let list = match group {
                None => &mut node.subs,
                Some(g) => match node.shared.iter_mut().find(|s| &*s.name == g) {
                    Some(s) => &mut s.members,
                    None => return false,
                },
            };
            if !list.remove(key) {
                return false;
            }
            node.shared.retain(|s| !s.members.is_empty());
            return true;
        };
        let (level, next) = split_level(rest);
        let removed;
        match level {
            "+" | "#" => {
                let slot = if level == "+" {
                    &mut node.plus
                } else {
                    &mut node.hash
                };
                let Some(child) = slot.as_deref_mut() else {
                    return false;
                };
                removed = Self::remove_at(child, next, group, key);
                if removed && child.is_empty() {
                    *slot = None;
                }
            }
            _ => {
                let Some(child) = node.children.get_mut(level) else {
                    return false;
                };
                removed = Self::remove_at(child, next, group, key);
                if removed && child.is_empty() {
                    node.children.remove(level);
                }
            }
        }
        removed
    }

    /// Appends every subscription matching `topic` to `out`: all plain
    /// subscriptions (a client with overlapping filters appears once per
    /// filter, sorted by key so the caller can merge runs), then one member
    /// per shared group, picked round robin among members `online` says are
    /// connected (any member if none is).
    pub fn matches(&self, topic: &str, out: &mut Vec<Match<T>>, online: impl Fn(&T) -> bool) {
        let start = out.len();
        let dollar = topic.starts_with('$');
        self.collect(&self.root, Some(topic), true, dollar, out, &online);
        // Plain matches first, sorted by key so that overlapping filters of
        // one client are adjacent; the result is small and mostly sorted.
        out[start..].sort_unstable_by_key(|m| (m.share.is_some(), m.key));
    }

    fn collect(
        &self,
        node: &Node<T>,
        rest: Option<&str>,
        at_root: bool,
        dollar: bool,
        out: &mut Vec<Match<T>>,
        online: &impl Fn(&T) -> bool,
    ) {
        // `+` and `#` as first level do not match `$` topics ([MQTT-4.7.2-1]).
        let wild_ok = !(at_root && dollar);
        let Some(rest) = rest else {
            Self::emit(node, out, online);
            // `a/#` also matches `a` itself.
            if let Some(h) = node.hash.as_deref() {
                Self::emit(h, out, online);
            }
            return;
        };
        let (level, next) = split_level(rest);
        if wild_ok {
            if let Some(h) = node.hash.as_deref() {
                Self::emit(h, out, online);
            }
            if let Some(p) = node.plus.as_deref() {
                self.collect(p, next, false, dollar, out, online);
            }
        }
        if let Some(c) = node.children.get(level) {
            self.collect(c, next, false, dollar, out, online);
        }
    }

    fn emit(node: &Node<T>, out: &mut Vec<Match<T>>, online: &impl Fn(&T) -> bool) {
        for e in node.subs.as_slice() {
            out.push(Match {
                key: e.key,
                value: e.value.clone(),
                info: e.info,
                share: None,
            });
        }
        for g in &node.shared {
            if let Some(e) = Self::pick(g, None, online) {
                out.push(Match {
                    key: e.key,
                    value: e.value.clone(),
                    info: e.info,
                    share: Some(g.full.clone()),
                });
            }
        }
    }

    fn pick<'a>(
        g: &'a SharedGroup<T>,
        exclude: Option<u64>,
        online: &impl Fn(&T) -> bool,
    ) -> Option<&'a Entry<T>> {
        let members = g.members.as_slice();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = g.next.fetch_add(1, Ordering::Relaxed) % n;
        let candidates = (0..n)
            .map(|i| &members[(start + i) % n])
            .filter(|e| Some(e.key) != exclude);
        let mut fallback = None;
        for e in candidates {
            if online(&e.value) {
                return Some(e);
            }
            fallback.get_or_insert(e);
        }
        fallback
    }

    /// Picks a member of the shared group `full` (`$share/g/f`) other than
    /// `exclude`, for redelivering a message its first member never
    /// acknowledged.
    pub fn pick_shared(
        &self,
        full: &str,
        exclude: u64,
        online: impl Fn(&T) -> bool,
    ) -> Option<Match<T>> {
        let (group, inner) = topic::parse_shared(full)?;
        let mut node = &self.root;
        for level in inner.split('/') {
            node = match level {
                "+" => node.plus.as_deref()?,
                "#" => node.hash.as_deref()?,
                _ => node.children.get(level)?,
            };
        }
        let g = node.shared.iter().find(|s| &*s.name == group)?;
        let e = Self::pick(g, Some(exclude), &online)?;
        Some(Match {
            key: e.key,
            value: e.value.clone(),
            info: e.info,
            share: Some(g.full.clone()),
        })
    }
}

#[cfg(test)]
mod tests;
