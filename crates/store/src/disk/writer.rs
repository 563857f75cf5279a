//! The writer thread: the only one that writes the database (redb commits
//! block, so it is a std thread, not a tokio worker). It drains a bounded
//! channel and puts every batch that queued while the previous commit ran
//! into the next transaction (group commit), commits with the durability
//! the policy asks, then completes all the waiters of that transaction.
//!
//! A failed transaction fails every batch it carried; the database is then
//! reopened and the bookkeeping rebuilt from what is on disk, so that the
//! next batches can succeed once the disk has room again.

use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase};

use crate::account::Accounting;
use crate::apply::{Applied, Apply, Limits, Scratch};
use crate::codec;
use crate::commit::Waiter;
use crate::config::{FsyncPolicy, StoreConfig};
use crate::disk::db::Opener;
use crate::disk::tables::{ReadTables, WriteTables};
use crate::error::{CommitError, StoreError, TxError};
use crate::keys::{self, Table};
use crate::op::Batch;
use crate::recover::{self, Recovered};
use crate::stats::{Counters, DropLog};
use crate::tx::Tx;

/// What the store asks of its writer.
pub(crate) enum Request {
    Batch(Batch, Option<Waiter>),
    /// Make everything before durable, then answer.
    Sync(Waiter),
    /// Make everything durable and stop (the store is being shut down
    /// while other owners may still hold it).
    Close,
    /// Recover as of the given time (UNIX ms), then answer.
    Load(
        u64,
        std::sync::mpsc::SyncSender<Result<Recovered, StoreError>>,
    ),
}

pub(crate) struct Writer {
    pub db: Option<Database>,
    pub opener: Opener,
    pub acct: Accounting,
    pub config: StoreConfig,
    pub counters: Arc<Counters>,
    pub rx: Receiver<Request>,
    scratch: Scratch,
    limits: Limits,
    /// Batches of the transaction being built, reused.
    group: Vec<(Batch, Option<Waiter>)>,
    results: Vec<Result<(), CommitError>>,
    /// A non-batch request met while gathering a group: next in line.
    carry: Option<Request>,
    /// Policy `never`: commits since the last durable one.
    dirty: bool,
    last_durable: Instant,
    /// Batches the previous commit carried (is there concurrency to wait
    /// for?).
    prev_batches: usize,
    drops: DropLog,
}

impl Writer {
    pub fn new(
        db: Database,
        opener: Opener,
        acct: Accounting,
        config: StoreConfig,
        counters: Arc<Counters>,
        rx: Receiver<Request>,
    ) -> Writer {
        Writer {
            db: Some(db),
            opener,
            acct,
            limits: Limits::from(&config),
            config,
            counters,
            rx,
            scratch: Scratch::default(),
            group: Vec::new(),
            results: Vec::new(),
            carry: None,
            dirty: false,
            last_durable: Instant::now(),
            prev_batches: 0,
            drops: DropLog::default(),
        }
    }

    /// Runs until every sender is gone, then makes the last writes durable.
    pub fn run(mut self) {
        loop {
            let req = match self.carry.take() {
                Some(r) => r,
                None => match self.next_request() {
                    Some(r) => r,
                    None => break,
                },
            };
            match req {
                Request::Batch(batch, waiter) => {
                    self.group.push((batch, waiter));
                    self.gather();
                    let durable = self.config.fsync.is_durable();
                    self.commit_group(durable);
                }
                Request::Sync(waiter) => {
                    let r = self.checkpoint();
                    let _ = waiter.send(r);
                }
                Request::Load(now_ms, reply) => {
                    let _ = reply.send(self.load(now_ms));
                }
                Request::Close => break,
            }
        }
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "store: last commit at close failed");
        }
    }

    /// Waits for the next request; with non-durable commits pending, only
    /// until the checkpoint is due (and then makes them durable).
    fn next_request(&mut self) -> Option<Request> {
        loop {
            if !self.dirty {
                return self.rx.recv().ok();
            }
            let due = self.last_durable + self.config.checkpoint_interval;
            let wait = due.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(wait) {
                Ok(r) => return Some(r),
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.checkpoint() {
                        tracing::error!(error = %e, "store: checkpoint failed");
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Adds the batches already queued to the group (policy `always`: none).
    /// Under concurrency (the previous commit carried several batches),
    /// policy `batch` lingers up to `batch_delay` for more.
    fn gather(&mut self) {
        if self.config.fsync == FsyncPolicy::Always {
            return;
        }
        let start = Instant::now();
        let linger = self.config.fsync == FsyncPolicy::Batch
            && self.prev_batches > 1
            && !self.config.batch_delay.is_zero();
        let mut ops: usize = self.group.iter().map(|(b, _)| b.len()).sum();
        while ops < self.config.max_batch_ops {
            let next = match self.rx.try_recv() {
                Ok(r) => r,
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    let left = self.config.batch_delay.saturating_sub(start.elapsed());
                    if !linger || left.is_zero() {
                        return;
                    }
                    match self.rx.recv_timeout(left) {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            match next {
                Request::Batch(b, w) => {
                    ops += b.len();
                    self.group.push((b, w));
                }
                other => {
                    self.carry = Some(other);
                    return;
                }
            }
        }
    }

    /// Commits the group and completes its waiters.
    fn commit_group(&mut self, durable: bool) {
        let batches = self.group.len();
        self.prev_batches = batches;
        let outcome = self.write_group(durable);
        self.counters.done(batches as u64);
        match outcome {
            Ok(applied) => {
                if durable {
                    self.dirty = false;
                    self.last_durable = Instant::now();
                } else {
                    self.dirty = true;
                }
                self.drops.note(&applied);
                self.counters.committed(
                    batches as u64,
                    &applied,
                    self.acct.total_bytes,
                    self.acct.msgs.len() as u64,
                );
                for ((_, waiter), result) in self.group.drain(..).zip(self.results.drain(..)) {
                    if let Some(w) = waiter {
                        let _ = w.send(result);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e.0, batches, "store: commit failed; the batches are refused");
                self.counters.write_error();
                let err = CommitError::Failed(e.0.as_str().into());
                for (_, waiter) in self.group.drain(..) {
                    if let Some(w) = waiter {
                        let _ = w.send(Err(err.clone()));
                    }
                }
                self.results.clear();
                self.after_failure();
            }
        }
    }

    /// Reopens the database if a failure closed it.
    fn ensure_db(&mut self) -> Result<(), TxError> {
        if self.db.is_none() {
            self.reopen()?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<redb::WriteTransaction, TxError> {
        self.ensure_db()?;
        let db = self
            .db
            .as_ref()
            .ok_or_else(|| TxError("database not open".into()))?;
        db.begin_write().map_err(|e| TxError(e.to_string()))
    }

    fn write_group(&mut self, durable: bool) -> Result<Applied, TxError> {
        self.results.clear();
        let limits = self.limits;
        let mut txn = self.begin()?;
        let durability = if durable {
            Durability::Immediate
        } else {
            Durability::None
        };
        txn.set_durability(durability)
            .map_err(|e| TxError(e.to_string()))?;
        let applied = {
            let mut tables = WriteTables::open(&txn)?;
            let mut a = Apply {
                tx: &mut tables,
                acct: &mut self.acct,
                scratch: &mut self.scratch,
                limits,
                applied: Applied::default(),
            };
            for (batch, _) in &self.group {
                let r = a.batch(batch)?;
                self.results.push(r);
            }
            a.finish()?;
            let applied = a.applied;
            stamp(&mut tables)?;
            applied
        };
        self.commit_timed(txn, durable)?;
        Ok(applied)
    }

    /// A durable commit of whatever is pending (nothing to write but the
    /// time stamp when the last commits were non-durable).
    fn checkpoint(&mut self) -> Result<(), CommitError> {
        if !self.dirty {
            return Ok(());
        }
        match self.write_stamp() {
            Ok(()) => {
                self.dirty = false;
                self.last_durable = Instant::now();
                Ok(())
            }
            Err(e) => {
                self.counters.write_error();
                self.after_failure();
                Err(CommitError::Failed(e.0.into()))
            }
        }
    }

    fn write_stamp(&mut self) -> Result<(), TxError> {
        let txn = self.begin()?;
        {
            let mut tables = WriteTables::open(&txn)?;
            stamp(&mut tables)?;
        }
        self.commit_timed(txn, true)
    }

    /// Commits `txn`; a durable commit (the fsync) is timed for the stats.
    fn commit_timed(&self, txn: redb::WriteTransaction, durable: bool) -> Result<(), TxError> {
        let started = durable.then(Instant::now);
        txn.commit().map_err(|e| TxError(e.to_string()))?;
        if let Some(t) = started {
            self.counters.synced(t.elapsed());
        }
        Ok(())
    }

    fn recover(&mut self, now_ms: u64) -> Result<Recovered, TxError> {
        let limits = self.limits;
        let txn = self.begin()?;
        let recovered = {
            let mut tables = WriteTables::open(&txn)?;
            let (recovered, cleanup) = recover::load(&mut tables, now_ms)?;
            let mut a = Apply {
                tx: &mut tables,
                acct: &mut self.acct,
                scratch: &mut self.scratch,
                limits,
                applied: Applied::default(),
            };
            a.cleanup(&cleanup)?;
            a.finish()?;
            stamp(&mut tables)?;
            recovered
        };
        txn.commit().map_err(|e| TxError(e.to_string()))?;
        Ok(recovered)
    }

    fn load(&mut self, now_ms: u64) -> Result<Recovered, StoreError> {
        match self.recover(now_ms) {
            Ok(rec) => {
                self.dirty = false;
                self.last_durable = Instant::now();
                self.counters
                    .set_usage(self.acct.total_bytes, self.acct.msgs.len() as u64);
                Ok(rec)
            }
            Err(e) => {
                self.after_failure();
                Err(StoreError::Db(e.0))
            }
        }
    }

    /// After a failed transaction redb wants the database reopened (its
    /// allocator state is gone), and our bookkeeping may count writes that
    /// never landed: rebuild both from the file.
    fn after_failure(&mut self) {
        self.db = None;
        self.dirty = false;
        if let Err(e) = self.reopen() {
            tracing::error!(error = %e.0, "store: cannot reopen the database after a failed commit; will retry with the next batch");
        }
    }

    fn reopen(&mut self) -> Result<(), TxError> {
        self.db = None;
        let db = self
            .opener
            .open(false)
            .map_err(|e| TxError(e.to_string()))?;
        let acct = {
            let txn = db.begin_read().map_err(|e| TxError(e.to_string()))?;
            let mut tables = ReadTables::open(&txn)?;
            Accounting::build(&mut tables)?
        };
        self.acct = acct;
        self.db = Some(db);
        Ok(())
    }
}

/// Records the commit time: at recovery, a session that was online is
/// taken to have disconnected then.
fn stamp(tables: &mut WriteTables<'_>) -> Result<(), TxError> {
    let mut value = Vec::with_capacity(16);
    codec::encode_u64(&mut value, crate::time::now_ms());
    let mut old = Vec::new();
    tables.put(Table::Meta, keys::META_LAST_COMMIT_MS, &value, &mut old)?;
    Ok(())
}
