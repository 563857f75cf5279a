//! midge-store: the state that must outlive a midge process.
//!
//! Sessions with their expiry, subscriptions, retained messages, queued
//! messages of persistent sessions, in-flight QoS 1/2 state in both
//! directions, and wills waiting on their delay. The [`Store`] trait has
//! two implementations: [`MemoryStore`] (maps, nothing survives) and
//! [`DiskStore`] (an embedded redb database in a versioned, exclusively
//! locked data directory: the default of `midge serve`).
//!
//! Writes are [`Batch`]es of [`Op`]s. [`Store::submit`] returns a
//! [`Commit`] future that resolves once the batch is durable as the
//! [`FsyncPolicy`] says; the broker sends PUBACK/PUBREC only then. The disk
//! store's writer thread puts every batch queued while the previous commit
//! ran into the next transaction: one fsync for thousands of messages.
//!
//! A message is stored once however many sessions hold it: queue entries,
//! in-flight entries and retained topics reference it by id, and the body
//! goes with its last reference.
//!
//! Layout: `record` (the data), `op` (the writes), `codec` (the bytes),
//! `keys` (the tables), `apply` and `recover` (the logic, over the `tx`
//! traits, shared by both backends), `memory`, `disk` (directory, writer
//! thread, check and repair).

mod account;
mod apply;
mod codec;
mod commit;
mod config;
mod disk;
mod error;
mod keys;
mod mem_tables;
mod memory;
mod op;
mod record;
mod recover;
mod stats;
pub mod time;
mod tx;

pub use codec::FORMAT_VERSION;
pub use commit::{Commit, Completer};
pub use config::{FsyncPolicy, StoreConfig, UnknownPolicy};
pub use disk::check::{check, info, repair, CheckReport, RepairReport, TableCounts};
pub use disk::{db_file, DiskStore, FaultSwitch};
pub use error::{CommitError, StoreError};
pub use memory::MemoryStore;
pub use op::{Batch, Op};
pub use record::{
    DeliveryRecord, InflightRecord, InflightState, QueuedRecord, SessionId, SessionRecord,
    StoredMessage, SubscriptionRecord, WillRecord,
};
pub use recover::{Recovered, RecoveredSession, RecoveryReport};
pub use stats::StoreStats;

/// Durable state for the broker. Object safe: the broker holds an
/// `Arc<dyn Store>`.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Queues a batch; the returned [`Commit`] resolves once it is durable
    /// (policy `never`: applied), or failed. Never blocks: batches are
    /// applied in the order they were submitted, and the back pressure of
    /// a slow disk is the commits themselves (a caller that waits for too
    /// many stops producing; see `StoreStats::backlog`).
    fn submit(&self, batch: Batch) -> Commit;

    /// Queues a batch nobody waits for (e.g. removing an acknowledged
    /// message); a failure is counted and logged.
    fn submit_detached(&self, batch: Batch);

    /// Resolves once everything submitted before is durable, whatever the
    /// policy.
    fn sync(&self) -> Commit;

    /// Reads everything back as of `now_ms` (UNIX milliseconds) after the
    /// writes submitted before, and removes what recovery drops (expired
    /// sessions and messages, damaged and dangling rows). Called once at
    /// start.
    fn load_at(&self, now_ms: u64) -> Result<Recovered, StoreError>;

    /// [`Store::load_at`] now.
    fn load(&self) -> Result<Recovered, StoreError> {
        self.load_at(time::now_ms())
    }

    /// A new message id (above every stored one).
    fn next_message_id(&self) -> u64;

    /// A new sequence number for queue and in-flight order.
    fn next_seq(&self) -> u64;

    fn stats(&self) -> StoreStats;

    /// "memory" or "disk".
    fn name(&self) -> &'static str;

    /// Makes everything submitted durable, stops writing and releases what
    /// the store holds (the data directory's lock), even while other
    /// owners still hold the store: later batches fail with
    /// [`CommitError::Closed`]. Blocks until done; dropping the last owner
    /// does the same.
    fn shutdown(&self) {}
}
