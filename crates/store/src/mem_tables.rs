//! The in-memory backend: one ordered map per table. The same byte layout
//! as on disk, so that the in-memory store runs the very logic (and codec)
//! that the embedded one does.

use std::collections::BTreeMap;

use crate::error::TxError;
use crate::keys::Table;
use crate::tx::{Scan, Tx};

#[derive(Debug, Default, Clone)]
pub(crate) struct MemTables {
    tables: [BTreeMap<Vec<u8>, Vec<u8>>; Table::ALL.len()],
}

impl MemTables {
    fn t(&self, t: Table) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.tables[t.index()]
    }

    fn t_mut(&mut self, t: Table) -> &mut BTreeMap<Vec<u8>, Vec<u8>> {
        &mut self.tables[t.index()]
    }

    pub fn len(&self, t: Table) -> usize {
        self.t(t).len()
    }
}

impl Scan for MemTables {
    fn scan(&mut self, t: Table, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), TxError> {
        for (k, v) in self.t(t) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }

    fn scan_prefix(
        &mut self,
        t: Table,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), TxError> {
        for (k, v) in self.t(t).range(prefix.to_vec()..) {
            if !k.starts_with(prefix) || !f(k, v) {
                break;
            }
        }
        Ok(())
    }
}

impl Tx for MemTables {
    fn put(
        &mut self,
        t: Table,
        key: &[u8],
        value: &[u8],
        old: &mut Vec<u8>,
    ) -> Result<bool, TxError> {
        match self.t_mut(t).insert(key.to_vec(), value.to_vec()) {
            Some(prev) => {
                *old = prev;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn take(&mut self, t: Table, key: &[u8], old: &mut Vec<u8>) -> Result<bool, TxError> {
        match self.t_mut(t).remove(key) {
            Some(prev) => {
                *old = prev;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get(&mut self, t: Table, key: &[u8], out: &mut Vec<u8>) -> Result<bool, TxError> {
        match self.t(t).get(key) {
            Some(v) => {
                out.clear();
                out.extend_from_slice(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
