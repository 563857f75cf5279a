//! `midge store check | repair | info`: the offline tools for a data
//! directory (they take its lock, so the broker must be stopped).
//!
//! * `info` counts the records without verifying anything.
//! * `check` verifies every page checksum of the database and every record
//!   checksum, and counts rows that are damaged or point at nothing.
//! * `repair` keeps what is readable. If the database opens and verifies
//!   (redb rolls back to the last good commit when it can), the damaged and
//!   dangling rows are removed. Otherwise the readable rows are copied into
//!   a fresh database (each table read from both ends up to the damage;
//!   only rows whose checksum matches are kept), the damaged file is kept
//!   beside it as `store.redb.corrupt-<time>`, and the fresh one takes its
//!   place.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase};

use crate::account::Accounting;
use crate::apply::{Applied, Apply, Limits, Scratch};
use crate::codec::{self, FORMAT_VERSION};
use crate::config::StoreConfig;
use crate::disk::db::Opener;
use crate::disk::dir::{self, DataDir};
use crate::disk::salvage::{self, Rows};
use crate::disk::tables::{ReadTables, WriteTables};
use crate::error::{StoreError, TxError};
use crate::keys::{self, Table};
use crate::recover::{self, RecoveryReport};
use crate::tx::Tx;

/// Rows per kind of record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableCounts {
    pub sessions: u64,
    pub subscriptions: u64,
    pub queued: u64,
    pub inflight: u64,
    pub incoming: u64,
    pub retained: u64,
    pub wills: u64,
    /// Stored message bodies (each shared by its references).
    pub messages: u64,
}

impl TableCounts {
    fn read(tables: &ReadTables) -> Result<TableCounts, TxError> {
        Ok(TableCounts {
            sessions: tables.len(Table::Sessions)?,
            subscriptions: tables.len(Table::Subs)?,
            queued: tables.len(Table::Queue)?,
            inflight: tables.len(Table::Inflight)?,
            incoming: tables.len(Table::Incoming)?,
            retained: tables.len(Table::Retained)?,
            wills: tables.len(Table::Wills)?,
            messages: tables.len(Table::Messages)?,
        })
    }
}

impl fmt::Display for TableCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "sessions {}, subscriptions {}, queued {}, in flight {}, incoming QoS 2 {}, retained {}, wills {}, message bodies {}",
            self.sessions,
            self.subscriptions,
            self.queued,
            self.inflight,
            self.incoming,
            self.retained,
            self.wills,
            self.messages
        )
    }
}

/// What `check` or `info` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub dir: PathBuf,
    pub format: u32,
    /// Size of the database file (0 if there is none yet).
    pub file_bytes: u64,
    /// Whether page and record checksums were verified (`check`), or only
    /// counted (`info`).
    pub verified: bool,
    pub counts: TableCounts,
    /// Bytes of all records (keys and values).
    pub record_bytes: u64,
    /// Damaged and dangling rows, and what has expired (what the next
    /// start would drop).
    pub rows: RecoveryReport,
    /// Why the database cannot be opened, if it cannot.
    pub corruption: Option<String>,
}

impl CheckReport {
    /// No damage found (expired data is normal).
    pub fn is_ok(&self) -> bool {
        self.corruption.is_none() && self.rows.bad_rows == 0 && self.rows.dangling == 0
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory: {}", self.dir.display())?;
        writeln!(f, "format:         {}", self.format)?;
        writeln!(f, "file:           {} bytes", self.file_bytes)?;
        if let Some(c) = &self.corruption {
            writeln!(f, "CORRUPT:        {c}")?;
            return write!(
                f,
                "run `midge store repair --data-dir {}` to keep what is readable",
                self.dir.display()
            );
        }
        writeln!(f, "records:        {}", self.counts)?;
        writeln!(f, "record bytes:   {}", self.record_bytes)?;
        if self.verified {
            writeln!(
                f,
                "damaged rows:   {} (checksum or format), dangling rows: {}",
                self.rows.bad_rows, self.rows.dangling
            )?;
            writeln!(
                f,
                "expired:        {} sessions, {} messages (dropped at next start)",
                self.rows.sessions_expired, self.rows.messages_expired
            )?;
            if self.is_ok() {
                write!(f, "OK")
            } else {
                write!(
                    f,
                    "PROBLEMS: run `midge store repair --data-dir {}` to remove them",
                    self.dir.display()
                )
            }
        } else {
            write!(f, "(not verified: run `midge store check` for that)")
        }
    }
}

/// What `repair` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairReport {
    pub dir: PathBuf,
    /// False when the directory has no database file yet (nothing to do).
    pub database_found: bool,
    /// Whether the rows were copied into a fresh database (the file was
    /// damaged beyond what redb repairs).
    pub rebuilt: bool,
    /// Where the damaged file was kept.
    pub damaged_file: Option<PathBuf>,
    /// Rows copied from the damaged file (rebuild only).
    pub salvaged_rows: u64,
    /// Rows that could not be read (rebuild only): known only per table
    /// length when redb still reports it, so a lower bound.
    pub lost_rows: u64,
    /// Damaged, dangling and expired rows removed afterwards.
    pub removed: RecoveryReport,
    /// What the store holds now.
    pub counts: TableCounts,
}

impl fmt::Display for RepairReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory: {}", self.dir.display())?;
        if !self.database_found {
            return write!(f, "no database file yet: nothing to repair");
        }
        if self.rebuilt {
            writeln!(
                f,
                "rebuilt:        {} readable rows copied into a fresh database, at least {} lost",
                self.salvaged_rows, self.lost_rows
            )?;
        } else {
            writeln!(
                f,
                "database:       verified (redb repaired it where needed)"
            )?;
        }
        if let Some(p) = &self.damaged_file {
            writeln!(f, "damaged file:   kept as {}", p.display())?;
        }
        writeln!(
            f,
            "removed:        {} damaged rows, {} dangling rows, {} expired sessions, {} expired messages",
            self.removed.bad_rows,
            self.removed.dangling,
            self.removed.sessions_expired,
            self.removed.messages_expired
        )?;
        write!(f, "records now:    {}", self.counts)
    }
}

fn db_err(e: impl fmt::Display) -> StoreError {
    StoreError::Db(e.to_string())
}

fn opener(dir: &DataDir) -> Opener {
    Opener {
        path: dir.db_path(),
        dir: dir.path().to_path_buf(),
        cache_bytes: StoreConfig::default().cache_bytes,
        fault: None,
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Counts the records (fast, no verification).
pub fn info(path: impl AsRef<Path>) -> Result<CheckReport, StoreError> {
    inspect(path.as_ref(), false)
}

/// Verifies every page and record checksum and the references between
/// records. A damaged database is reported (`corruption`), not an error.
pub fn check(path: impl AsRef<Path>) -> Result<CheckReport, StoreError> {
    inspect(path.as_ref(), true)
}

fn inspect(path: &Path, verify: bool) -> Result<CheckReport, StoreError> {
    let dir = DataDir::open_existing(path)?;
    let db_path = dir.db_path();
    let mut report = CheckReport {
        dir: path.to_path_buf(),
        format: FORMAT_VERSION,
        file_bytes: file_len(&db_path),
        verified: verify,
        counts: TableCounts::default(),
        record_bytes: 0,
        rows: RecoveryReport::default(),
        corruption: None,
    };
    if !db_path.exists() {
        return Ok(report);
    }
    let db = match opener(&dir).open(verify) {
        Ok(db) => db,
        Err(StoreError::Corrupt { reason, .. }) => {
            report.corruption = Some(reason);
            return Ok(report);
        }
        Err(e) => return Err(e),
    };
    let read = catch_unwind(AssertUnwindSafe(
        || -> Result<(TableCounts, u64, RecoveryReport), TxError> {
            let txn = db.begin_read().map_err(|e| TxError(e.to_string()))?;
            let mut tables = ReadTables::open(&txn)?;
            let counts = TableCounts::read(&tables)?;
            let acct = Accounting::build(&mut tables)?;
            let rows = if verify {
                recover::load(&mut tables, crate::time::now_ms())?.0.report
            } else {
                RecoveryReport::default()
            };
            Ok((counts, acct.total_bytes, rows))
        },
    ));
    match read {
        Ok(Ok((counts, bytes, rows))) => {
            report.counts = counts;
            report.record_bytes = bytes;
            report.rows = rows;
        }
        Ok(Err(e)) => report.corruption = Some(e.0),
        Err(_) => report.corruption = Some("the database could not be read".into()),
    }
    Ok(report)
}

/// Repairs a data directory: see the module documentation.
pub fn repair(path: impl AsRef<Path>) -> Result<RepairReport, StoreError> {
    let path = path.as_ref();
    let dir = DataDir::open_existing(path)?;
    let db_path = dir.db_path();
    let mut report = RepairReport {
        dir: path.to_path_buf(),
        database_found: db_path.exists(),
        rebuilt: false,
        damaged_file: None,
        salvaged_rows: 0,
        lost_rows: 0,
        removed: RecoveryReport::default(),
        counts: TableCounts::default(),
    };
    if !db_path.exists() {
        return Ok(report);
    }
    let db = match opener(&dir).open(true) {
        Ok(db) => db,
        Err(StoreError::Corrupt { reason, .. }) => {
            let (db, salvaged, lost, moved) = rebuild(&dir, &reason)?;
            report.rebuilt = true;
            report.salvaged_rows = salvaged;
            report.lost_rows = lost;
            report.damaged_file = Some(moved);
            db
        }
        Err(e) => return Err(e),
    };
    report.removed = clean(&db).map_err(|e| db_err(e.0))?;
    let txn = db.begin_read().map_err(db_err)?;
    let tables = ReadTables::open(&txn).map_err(|e| db_err(e.0))?;
    report.counts = TableCounts::read(&tables).map_err(|e| db_err(e.0))?;
    Ok(report)
}

/// Removes damaged, dangling and expired rows (what a start would).
fn clean(db: &Database) -> Result<RecoveryReport, TxError> {
    let txn = db.begin_write().map_err(|e| TxError(e.to_string()))?;
    let report = {
        let mut tables = WriteTables::open(&txn)?;
        let mut acct = Accounting::build(&mut tables)?;
        let (recovered, cleanup) = recover::load(&mut tables, crate::time::now_ms())?;
        let mut scratch = Scratch::default();
        let mut a = Apply {
            tx: &mut tables,
            acct: &mut acct,
            scratch: &mut scratch,
            limits: Limits::from(&StoreConfig::default()),
            applied: Applied::default(),
        };
        a.cleanup(&cleanup)?;
        a.finish()?;
        recovered.report
    };
    txn.commit().map_err(|e| TxError(e.to_string()))?;
    Ok(report)
}

/// The length redb expects of a truncated file, from its error message.
fn layout_len(reason: &str) -> Option<u64> {
    let rest = &reason[reason.find("layout_len=")? + "layout_len=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Copies the readable rows of the damaged database into a fresh one that
/// takes its place. Returns the new database, rows kept, rows known lost,
/// and where the damaged file went.
fn rebuild(dir: &DataDir, reason: &str) -> Result<(Database, u64, u64, PathBuf), StoreError> {
    let db_path = dir.db_path();
    let work = dir.path().join("store.redb.salvage");
    let fresh = dir.path().join("store.redb.new");
    let io = |what: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |e| StoreError::io(what, p, e)
    };
    // Work on a copy: the damaged file stays as it was.
    std::fs::copy(&db_path, &work).map_err(io("cannot copy", &work))?;
    if let Some(len) = layout_len(reason) {
        // Zeros where the file was cut: those pages fail their checksum,
        // the ones before and after still read.
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&work)
            .map_err(io("cannot open", &work))?;
        if f.metadata().map_or(0, |m| m.len()) < len {
            f.set_len(len).map_err(io("cannot extend", &work))?;
        }
    }
    // Read-only, in the mode that shares the file with a writer: that mode
    // trusts the committed roots without loading (possibly damaged)
    // allocator state, so whatever is reachable can be read.
    let damaged = catch_unwind(|| {
        let mut builder = Database::builder();
        builder.set_concurrency_mode(redb::ConcurrencyMode::SingleWriter);
        builder.open_read_only(&work)
    });
    let mut from_tree = Vec::new();
    let mut lost = 0u64;
    for t in Table::ALL {
        let (rows, complete, expected) = match &damaged {
            Ok(Ok(db)) => salvage::tree_rows(db, t),
            _ => (Vec::new(), false, 0),
        };
        lost += expected.saturating_sub(rows.len() as u64);
        from_tree.push((t, rows, complete));
    }
    drop(damaged);
    // Tables whose tree could not be walked whole: add what the raw leaf
    // pages hold (the tree's rows win where both have a key).
    let raw = if from_tree.iter().all(|(_, _, complete)| *complete) {
        Default::default()
    } else {
        let bytes = std::fs::read(&work).map_err(io("cannot read", &work))?;
        salvage::raw_rows(&bytes)
    };
    let mut rows: Vec<(Table, Rows)> = Vec::new();
    for (t, tree, complete) in from_tree {
        if complete {
            rows.push((t, tree));
            continue;
        }
        let mut merged = raw.get(&t.index()).cloned().unwrap_or_default();
        merged.extend(tree);
        rows.push((t, merged.into_iter().collect()));
    }
    let _ = std::fs::remove_file(&fresh);
    let salvaged = write_fresh(&fresh, &rows).map_err(|e| db_err(e.0))?;
    let stamp = crate::time::now_secs();
    let moved = dir.path().join(format!("store.redb.corrupt-{stamp}"));
    std::fs::rename(&db_path, &moved).map_err(io("cannot move aside", &db_path))?;
    std::fs::rename(&fresh, &db_path).map_err(io("cannot move into place", &fresh))?;
    let _ = std::fs::remove_file(&work);
    dir::sync_dir(dir.path()).map_err(io("cannot sync", dir.path()))?;
    let db = opener(dir).open(true)?;
    tracing::warn!(
        salvaged,
        lost,
        damaged = %moved.display(),
        "store rebuilt from the readable rows of a damaged file"
    );
    Ok((db, salvaged, lost, moved))
}

/// Writes salvaged rows into a new database file (with the format row).
fn write_fresh(path: &Path, rows: &[(Table, Rows)]) -> Result<u64, TxError> {
    let db = Database::create(path).map_err(|e| TxError(e.to_string()))?;
    let txn = db.begin_write().map_err(|e| TxError(e.to_string()))?;
    let mut n = 0u64;
    {
        let mut tables = WriteTables::open(&txn)?;
        let mut old = Vec::new();
        for (t, kept) in rows {
            for (k, v) in kept {
                tables.put(*t, k, v, &mut old)?;
                n += 1;
            }
        }
        let mut value = Vec::new();
        codec::encode_u64(&mut value, u64::from(FORMAT_VERSION));
        tables.put(Table::Meta, keys::META_FORMAT, &value, &mut old)?;
    }
    txn.commit().map_err(|e| TxError(e.to_string()))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_len_from_redb_message() {
        assert_eq!(
            layout_len("File truncated below stored layout: file_len=2000000, layout_len=8425472"),
            Some(8_425_472)
        );
        assert_eq!(layout_len("Primary is corrupted"), None);
    }
}
