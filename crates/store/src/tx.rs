//! What the store logic needs from a backend: bytes-to-bytes tables that can
//! be read in key order ([`Scan`]) and changed inside one transaction
//! ([`Tx`]). The embedded database and the in-memory maps both implement
//! them, so that one piece of logic (`apply`, `recover`) serves both.

use crate::error::TxError;
use crate::keys::Table;

/// Reading tables in key order.
pub(crate) trait Scan {
    /// Calls `f` with every row of `t` in key order; `f` returns false to
    /// stop early.
    fn scan(&mut self, t: Table, f: &mut dyn FnMut(&[u8], &[u8]) -> bool) -> Result<(), TxError>;

    /// Calls `f` with the rows whose key starts with `prefix`, in order.
    fn scan_prefix(
        &mut self,
        t: Table,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), TxError>;
}

/// Changing tables inside one transaction.
pub(crate) trait Tx: Scan {
    /// Inserts or replaces a row. When it replaced one, the old value is
    /// copied into `old` (cleared first) and true returned.
    fn put(
        &mut self,
        t: Table,
        key: &[u8],
        value: &[u8],
        old: &mut Vec<u8>,
    ) -> Result<bool, TxError>;

    /// Removes a row; its value is copied into `old`. False if absent.
    fn take(&mut self, t: Table, key: &[u8], old: &mut Vec<u8>) -> Result<bool, TxError>;

    /// Copies a row's value into `out`. False if absent.
    fn get(&mut self, t: Table, key: &[u8], out: &mut Vec<u8>) -> Result<bool, TxError>;
}

/// The keys of `t` that start with `prefix`.
pub(crate) fn keys_with_prefix<S: Scan + ?Sized>(
    s: &mut S,
    t: Table,
    prefix: &[u8],
) -> Result<Vec<Vec<u8>>, TxError> {
    let mut keys = Vec::new();
    s.scan_prefix(t, prefix, &mut |k, _| {
        keys.push(k.to_vec());
        true
    })?;
    Ok(keys)
}
