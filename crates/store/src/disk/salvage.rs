//! Reading what is left of a damaged database file, for `repair`: first
//! through redb (each table from both ends up to the damage), then, for
//! tables whose tree cannot be walked whole, by scanning the file's raw
//! leaf pages. Every row carries its kind and a checksum, so rows found
//! outside their tree still go to the right table, and damaged ones are
//! left out.
//!
//! A raw scan also finds pages that redb had freed but not yet reused: rows
//! deleted or replaced shortly before the damage can come back (a message
//! delivered twice, an older session record). Recovery at the next start
//! drops what has expired and what points at nothing.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redb::{ReadableDatabase, ReadableTableMetadata};

use crate::codec;
use crate::disk::tables::def;
use crate::keys::Table;

/// Rows of one table, as (key, value).
pub(crate) type Rows = Vec<(Vec<u8>, Vec<u8>)>;

/// redb's page size: pages (and larger allocations) start at multiples.
const PAGE: usize = 4096;
/// Largest leaf considered (a leaf holding one big message).
const MAX_LEAF: usize = 256 << 20;
/// redb's leaf page type byte.
const LEAF: u8 = 1;

/// A value that is intact and of `t`'s kind.
fn good(t: Table, v: &[u8]) -> bool {
    codec::open(v).is_ok_and(|(k, _)| k == t.kind())
}

/// The readable rows of one table through redb, whether the whole table
/// was read, and how many rows it claimed (0 if unknown).
pub(crate) fn tree_rows(db: &redb::ReadOnlyDatabase, t: Table) -> (Rows, bool, u64) {
    let mut rows: Rows = Vec::new();
    let mut last: Option<Vec<u8>> = None;
    let mut expected = 0u64;
    let forward = catch_unwind(AssertUnwindSafe(|| -> bool {
        let Ok(txn) = db.begin_read() else {
            return false;
        };
        let table = match txn.open_table(def(t)) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return true,
            Err(_) => return false,
        };
        expected = table.len().unwrap_or(0);
        let Ok(range) = table.range::<&[u8]>(..) else {
            return false;
        };
        for entry in range {
            let Ok((k, v)) = entry else {
                return false;
            };
            if good(t, v.value()) {
                rows.push((k.value().to_vec(), v.value().to_vec()));
            }
            last = Some(k.value().to_vec());
        }
        true
    }));
    if forward.unwrap_or(false) {
        return (rows, true, expected);
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let Ok(txn) = db.begin_read() else {
            return;
        };
        let Ok(table) = txn.open_table(def(t)) else {
            return;
        };
        let Ok(range) = table.range::<&[u8]>(..) else {
            return;
        };
        for entry in range.rev() {
            let Ok((k, v)) = entry else {
                return;
            };
            if last.as_deref().is_some_and(|l| k.value() <= l) {
                return;
            }
            if good(t, v.value()) {
                rows.push((k.value().to_vec(), v.value().to_vec()));
            }
        }
    }));
    (rows, false, expected)
}

/// Whether a key has the shape of `t`'s keys.
fn key_fits(t: Table, k: &[u8]) -> bool {
    match t {
        Table::Messages | Table::Sessions | Table::Wills => k.len() == 8,
        Table::Queue => k.len() == 16,
        Table::Inflight | Table::Incoming => k.len() == 10,
        Table::Subs => k.len() > 8,
        Table::Retained | Table::Meta => true,
    }
}

/// The (key, value) pairs of a leaf page starting at `page[0]`, if it
/// parses as one: `1, _, count (u16 LE), key ends (u32 LE each), value
/// ends (u32 LE each), keys, values`, every end within the page and in
/// order.
fn leaf(page: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if page.len() < 4 || page[0] != LEAF {
        return None;
    }
    let n = usize::from(u16::from_le_bytes([page[2], page[3]]));
    let avail = page.len().min(MAX_LEAF);
    let header = 4 + 8 * n;
    if n == 0 || header > avail {
        return None;
    }
    let end_at = |i: usize| -> usize {
        let b = &page[i..i + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    };
    let mut ends = Vec::with_capacity(2 * n);
    let mut prev = header;
    for i in 0..2 * n {
        let e = end_at(4 + 4 * i);
        if e < prev || e > avail {
            return None;
        }
        ends.push(e);
        prev = e;
    }
    let (key_ends, value_ends) = ends.split_at(n);
    let mut pairs = Vec::with_capacity(n);
    for i in 0..n {
        let ks = if i == 0 { header } else { key_ends[i - 1] };
        let vs = if i == 0 {
            key_ends[n - 1]
        } else {
            value_ends[i - 1]
        };
        pairs.push((&page[ks..key_ends[i]], &page[vs..value_ends[i]]));
    }
    Some(pairs)
}

/// Every intact row found in the raw leaf pages of `file`, by table. When
/// a key turns up more than once (a freed older page), the later page in
/// the file wins.
pub(crate) fn raw_rows(file: &[u8]) -> BTreeMap<usize, BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out: BTreeMap<usize, BTreeMap<Vec<u8>, Vec<u8>>> = BTreeMap::new();
    let mut off = 0;
    while off + 4 <= file.len() {
        if let Some(pairs) = leaf(&file[off..]) {
            for (k, v) in pairs {
                let Ok((kind, _)) = codec::open(v) else {
                    continue;
                };
                let Some(t) = Table::of_kind(kind) else {
                    continue;
                };
                if key_fits(t, k) {
                    out.entry(t.index())
                        .or_default()
                        .insert(k.to_vec(), v.to_vec());
                }
            }
        }
        off += PAGE;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let n = pairs.len();
        let mut p = vec![LEAF, 0];
        p.extend_from_slice(&(n as u16).to_le_bytes());
        let mut end = 4 + 8 * n;
        let mut ends = Vec::new();
        for (k, _) in pairs {
            end += k.len();
            ends.push(end as u32);
        }
        for (_, v) in pairs {
            end += v.len();
            ends.push(end as u32);
        }
        for e in ends {
            p.extend_from_slice(&e.to_le_bytes());
        }
        for (k, _) in pairs {
            p.extend_from_slice(k);
        }
        for (_, v) in pairs {
            p.extend_from_slice(v);
        }
        p.resize(PAGE, 0);
        p
    }

    #[test]
    fn finds_intact_rows_of_each_kind_in_raw_pages() {
        let mut retained = Vec::new();
        codec::encode_id(&mut retained, 5);
        let mut meta = Vec::new();
        codec::encode_u64(&mut meta, 1);
        let mut incoming = Vec::new();
        codec::encode_incoming(&mut incoming);
        let mut broken = retained.clone();
        broken[5] ^= 1;
        let mut file = vec![0u8; PAGE]; // a header page: not a leaf
        file.extend(page(&[
            (b"a/topic", &retained),
            (b"format", &meta),
            (b"bad", &broken),
            // right kind, wrong key shape: not taken
            (b"short", &incoming),
        ]));
        file.extend(page(&[(&[0u8; 10], &incoming)]));
        // garbage that starts like a leaf
        let mut junk = vec![LEAF, 0, 3, 0];
        junk.resize(PAGE, 0xff);
        file.extend(junk);
        let rows = raw_rows(&file);
        let get = |t: Table| rows.get(&t.index()).cloned().unwrap_or_default();
        assert_eq!(get(Table::Retained).len(), 1);
        assert!(get(Table::Retained).contains_key(&b"a/topic"[..]));
        assert_eq!(get(Table::Meta).len(), 1);
        assert_eq!(get(Table::Incoming).len(), 1);
        assert_eq!(rows.values().map(BTreeMap::len).sum::<usize>(), 3);
    }
}
