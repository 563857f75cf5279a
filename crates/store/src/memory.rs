//! The in-memory store: everything kept in ordered maps behind one lock,
//! through the same operation logic and encoding as the embedded store.
//! Nothing outlives the process; useful for tests and for a broker that
//! must not touch the disk. Commits resolve at once.

use std::sync::{Mutex, MutexGuard};

use crate::account::Accounting;
use crate::apply::{Applied, Apply, Limits, Scratch};
use crate::commit::Commit;
use crate::config::StoreConfig;
use crate::error::{CommitError, StoreError};
use crate::keys::Table;
use crate::mem_tables::MemTables;
use crate::op::Batch;
use crate::recover::{self, Recovered};
use crate::stats::{Counters, DropLog, Ids, StoreStats};
use crate::Store;

#[derive(Debug, Default)]
struct Inner {
    tables: MemTables,
    acct: Accounting,
    scratch: Scratch,
    drops: DropLog,
}

/// A store in memory.
#[derive(Debug)]
pub struct MemoryStore {
    // std Mutex: sections are one batch's worth of map updates, never held
    // across an await.
    inner: Mutex<Inner>,
    limits: Limits,
    ids: Ids,
    counters: Counters,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(&StoreConfig::default())
    }
}

impl MemoryStore {
    /// An empty store with the caps of `config` (the fsync settings do not
    /// apply).
    pub fn new(config: &StoreConfig) -> MemoryStore {
        MemoryStore {
            inner: Mutex::new(Inner::default()),
            limits: Limits::from(config),
            ids: Ids::new(0, 0),
            counters: Counters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while applying cannot leave the maps half-typed: keep
        // going with what is there.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rows in a table (tests).
    #[doc(hidden)]
    pub fn rows(&self, table: &str) -> usize {
        let inner = self.lock();
        Table::ALL
            .iter()
            .find(|t| t.name() == table)
            .map_or(0, |t| inner.tables.len(*t))
    }

    fn apply(&self, batch: &Batch) -> Result<(), CommitError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let mut a = Apply {
            tx: &mut inner.tables,
            acct: &mut inner.acct,
            scratch: &mut inner.scratch,
            limits: self.limits,
            applied: Applied::default(),
        };
        let result = a.batch(batch).and_then(|r| a.finish().map(|()| r));
        let applied = a.applied;
        match result {
            Ok(r) => {
                inner.drops.note(&applied);
                self.counters.committed(
                    1,
                    &applied,
                    inner.acct.total_bytes,
                    inner.acct.msgs.len() as u64,
                );
                r
            }
            // The maps cannot fail; kept for the shape of the code.
            Err(e) => {
                self.counters.write_error();
                Err(CommitError::Failed(e.0.into()))
            }
        }
    }
}

impl Store for MemoryStore {
    fn submit(&self, batch: Batch) -> Commit {
        Commit::ready(self.apply(&batch))
    }

    fn submit_detached(&self, batch: Batch) {
        if let Err(e) = self.apply(&batch) {
            tracing::warn!(error = %e, "store: detached batch failed");
        }
    }

    fn sync(&self) -> Commit {
        Commit::ready(Ok(()))
    }

    fn load_at(&self, now_ms: u64) -> Result<Recovered, StoreError> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let (recovered, cleanup) =
            recover::load(&mut inner.tables, now_ms).map_err(|e| StoreError::Db(e.0))?;
        let mut a = Apply {
            tx: &mut inner.tables,
            acct: &mut inner.acct,
            scratch: &mut inner.scratch,
            limits: self.limits,
            applied: Applied::default(),
        };
        a.cleanup(&cleanup)
            .and_then(|()| a.finish())
            .map_err(|e| StoreError::Db(e.0))?;
        self.counters
            .set_usage(inner.acct.total_bytes, inner.acct.msgs.len() as u64);
        Ok(recovered)
    }

    fn next_message_id(&self) -> u64 {
        self.ids.next_msg()
    }

    fn next_seq(&self) -> u64 {
        self.ids.next_seq()
    }

    fn stats(&self) -> StoreStats {
        self.counters.snapshot()
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
