//! The `tx` traits over redb: a write transaction with every table open,
//! and a read transaction (tables that do not exist yet read as empty).

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::TxError;
use crate::keys::Table;
use crate::tx::{Scan, Tx};

type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;

pub(crate) fn def(t: Table) -> Def {
    TableDefinition::new(t.name())
}

fn scan_table<T: ReadableTable<&'static [u8], &'static [u8]>>(
    table: &T,
    prefix: Option<&[u8]>,
    f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
) -> Result<(), TxError> {
    let range = match prefix {
        Some(p) => table.range::<&[u8]>(p..)?,
        None => table.range::<&[u8]>(..)?,
    };
    for entry in range {
        let (k, v) = entry?;
        let k = k.value();
        if prefix.is_some_and(|p| !k.starts_with(p)) {
            break;
        }
        if !f(k, v.value()) {
            break;
        }
    }
    Ok(())
}

/// All tables of one write transaction.
pub(crate) struct WriteTables<'txn> {
    tables: Vec<redb::Table<'txn, &'static [u8], &'static [u8]>>,
}

impl<'txn> WriteTables<'txn> {
    /// Opens (creating if needed) every table.
    pub fn open(txn: &'txn redb::WriteTransaction) -> Result<Self, TxError> {
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            tables.push(txn.open_table(def(t))?);
        }
        Ok(WriteTables { tables })
    }
}

impl Scan for WriteTables<'_> {
    fn scan(&mut self, t: Table, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), TxError> {
        scan_table(&self.tables[t.index()], None, f)
    }

    fn scan_prefix(
        &mut self,
        t: Table,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), TxError> {
        scan_table(&self.tables[t.index()], Some(prefix), f)
    }
}

impl Tx for WriteTables<'_> {
    fn put(
        &mut self,
        t: Table,
        key: &[u8],
        value: &[u8],
        old: &mut Vec<u8>,
    ) -> Result<bool, TxError> {
        match self.tables[t.index()].insert(key, value)? {
            Some(prev) => {
                old.clear();
                old.extend_from_slice(prev.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn take(&mut self, t: Table, key: &[u8], old: &mut Vec<u8>) -> Result<bool, TxError> {
        match self.tables[t.index()].remove(key)? {
            Some(prev) => {
                old.clear();
                old.extend_from_slice(prev.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn get(&mut self, t: Table, key: &[u8], out: &mut Vec<u8>) -> Result<bool, TxError> {
        match self.tables[t.index()].get(key)? {
            Some(v) => {
                out.clear();
                out.extend_from_slice(v.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// All tables of one read transaction.
pub(crate) struct ReadTables {
    tables: Vec<Option<redb::ReadOnlyTable<&'static [u8], &'static [u8]>>>,
}

impl ReadTables {
    pub fn open(txn: &redb::ReadTransaction) -> Result<Self, TxError> {
        let mut tables = Vec::with_capacity(Table::ALL.len());
        for t in Table::ALL {
            match txn.open_table(def(t)) {
                Ok(table) => tables.push(Some(table)),
                Err(redb::TableError::TableDoesNotExist(_)) => tables.push(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(ReadTables { tables })
    }

    /// Rows in a table.
    pub fn len(&self, t: Table) -> Result<u64, TxError> {
        match &self.tables[t.index()] {
            Some(table) => Ok(table.len()?),
            None => Ok(0),
        }
    }
}

impl Scan for ReadTables {
    fn scan(&mut self, t: Table, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), TxError> {
        match &self.tables[t.index()] {
            Some(table) => scan_table(table, None, f),
            None => Ok(()),
        }
    }

    fn scan_prefix(
        &mut self,
        t: Table,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), TxError> {
        match &self.tables[t.index()] {
            Some(table) => scan_table(table, Some(prefix), f),
            None => Ok(()),
        }
    }
}
