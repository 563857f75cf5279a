//! The subscribers of one filter (or one shared group): a `Vec` for fast
//! iteration on the publish path, plus a key -> position map once the list
//! is long, so that subscribing and unsubscribing stay O(1) when thousands
//! of clients share a filter.

use std::collections::HashMap;

use super::Entry;

/// Lists at least this long keep a position map.
const INDEXED: usize = 16;

#[derive(Debug)]
pub(super) struct SubList<T> {
    entries: Vec<Entry<T>>,
    // Boxed on purpose: most lists stay short and never build the map, and
    // `Option<Box<_>>` costs one word in every trie node instead of six.
    #[allow(clippy::box_collection)]
    pos: Option<Box<HashMap<u64, usize, ahash::RandomState>>>,
}

impl<T> Default for SubList<T> {
    fn default() -> Self {
        SubList {
            entries: Vec::new(),
            pos: None,
        }
    }
}

impl<T> SubList<T> {
    pub fn as_slice(&self) -> &[Entry<T>] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: u64) -> Option<usize> {
        match &self.pos {
            Some(map) => map.get(&key).copied(),
            None => self.entries.iter().position(|e| e.key == key),
        }
    }

    /// Adds or replaces the entry of `e.key`; true if it is new.
    pub fn upsert(&mut self, e: Entry<T>) -> bool {
        if let Some(i) = self.find(e.key) {
            self.entries[i] = e;
            return false;
        }
        let key = e.key;
        self.entries.push(e);
        let last = self.entries.len() - 1;
        match &mut self.pos {
            Some(map) => {
                map.insert(key, last);
            }
            None if self.entries.len() >= INDEXED => {
                let map = self
                    .entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.key, i))
                    .collect();
                self.pos = Some(Box::new(map));
            }
            None => {}
        }
        true
    }

    /// Removes the entry of `key`; true if it was there.
    pub fn remove(&mut self, key: u64) -> bool {
        let Some(i) = self.find(key) else {
            return false;
        };
        self.entries.swap_remove(i);
        if let Some(map) = &mut self.pos {
            map.remove(&key);
            if let Some(moved) = self.entries.get(i) {
                map.insert(moved.key, i);
            }
            if self.entries.len() < INDEXED / 2 {
                self.pos = None;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::SubInfo;
    use midge_proto::QoS;

    fn e(key: u64, qos: QoS) -> Entry<u64> {
        Entry {
            key,
            value: key,
            info: SubInfo {
                qos,
                no_local: false,
                retain_as_published: false,
                id: None,
            },
        }
    }

    #[test]
    fn upsert_remove_across_the_index_threshold() {
        let mut l = SubList::default();
        for k in 0..100 {
            assert!(l.upsert(e(k, QoS::AtMostOnce)));
        }
        assert!(!l.upsert(e(42, QoS::AtLeastOnce)), "replaced");
        assert_eq!(l.as_slice().len(), 100);
        for k in (0..100).step_by(2) {
            assert!(l.remove(k));
            assert!(!l.remove(k));
        }
        let mut keys: Vec<u64> = l.as_slice().iter().map(|e| e.key).collect();
        keys.sort_unstable();
        assert_eq!(keys, (1..100).step_by(2).collect::<Vec<_>>());
        assert_eq!(
            l.as_slice()
                .iter()
                .find(|x| x.key == 43)
                .map(|x| x.info.qos),
            Some(QoS::AtMostOnce)
        );
        for k in (1..100).step_by(2) {
            assert_eq!(l.find(k).map(|i| l.as_slice()[i].key), Some(k));
            assert!(l.remove(k));
        }
        assert!(l.is_empty());
        assert!(l.pos.is_none());
    }
}
