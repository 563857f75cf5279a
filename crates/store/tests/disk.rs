//! The embedded store's own behaviour: many reopen cycles, group commit
//! under concurrency, the fsync policies, the exclusive and versioned data
//! directory, write failures (a full disk), and damaged files detected at
//! open and repaired.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::*;
use midge_proto::QoS;
use midge_store::{
    db_file, Batch, CommitError, DiskStore, FaultSwitch, FsyncPolicy, Op, Store, StoreConfig,
    StoreError,
};
use rand::{Rng, SeedableRng};

fn open(dir: &Path, cfg: StoreConfig) -> DiskStore {
    DiskStore::open(dir, cfg).expect("open")
}

/// The payload written for a sequence number, so that what comes back can
/// be checked byte for byte.
fn payload_for(seq: u64) -> Vec<u8> {
    let n = (seq % 7) as usize * 100 + 10;
    (0..n).map(|i| (seq as usize + i) as u8).collect()
}

fn enqueue(store: &dyn Store, session: u64, seq: u64) -> Op {
    let m = message(store, &format!("t/{seq}"), &payload_for(seq));
    Op::Enqueue {
        session: sid(session),
        seq,
        delivery: delivery(&m, QoS::AtLeastOnce),
    }
}

/// Queue contents by session, from a load.
fn queues(store: &dyn Store) -> BTreeMap<u64, Vec<u64>> {
    let r = store.load().expect("load");
    r.sessions
        .iter()
        .map(|s| {
            for q in &s.queue {
                assert_eq!(&q.delivery.msg.payload[..], &payload_for(q.seq)[..]);
            }
            (s.id.0, s.queue.iter().map(|q| q.seq).collect())
        })
        .collect()
}

#[test]
fn fifty_reopen_cycles_with_writes_between() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut model: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut retained: BTreeMap<String, u64> = BTreeMap::new();
    let mut seq = 0u64;
    for cycle in 0..50 {
        let store = open(&dir, StoreConfig::default());
        assert_eq!(queues(&store), model, "cycle {cycle}");
        let got_retained: BTreeMap<String, u64> = store
            .load()
            .expect("load")
            .retained
            .iter()
            .map(|m| (m.topic.to_string(), m.payload.len() as u64))
            .collect();
        assert_eq!(got_retained, retained, "cycle {cycle}");
        for _ in 0..rng.gen_range(1..20) {
            let mut batch = Batch::new();
            for _ in 0..rng.gen_range(1..10) {
                let s = rng.gen_range(0..5u64);
                match rng.gen_range(0..10) {
                    0 => {
                        batch.push(Op::DeleteSession(sid(s)));
                        model.remove(&s);
                    }
                    1..=5 => {
                        if let std::collections::btree_map::Entry::Vacant(e) = model.entry(s) {
                            batch.push(Op::PutSession(
                                sid(s),
                                session(&format!("c{s}"), 3600, None),
                            ));
                            e.insert(Vec::new());
                        }
                        seq += 1;
                        batch.push(enqueue(&store, s, seq));
                        model.entry(s).or_default().push(seq);
                    }
                    6..=8 => {
                        if let Some(q) = model.get_mut(&s) {
                            if !q.is_empty() {
                                let i = rng.gen_range(0..q.len());
                                let gone = q.remove(i);
                                batch.push(Op::Dequeue {
                                    session: sid(s),
                                    seq: gone,
                                });
                            }
                        }
                    }
                    _ => {
                        let topic = format!("r/{}", rng.gen_range(0..4));
                        let len = rng.gen_range(0..3u64);
                        if len == 0 {
                            batch.push(Op::DeleteRetained(topic.as_str().into()));
                            retained.remove(&topic);
                        } else {
                            let m = message(&store, &topic, &vec![1; len as usize]);
                            batch.push(Op::SetRetained(m));
                            retained.insert(topic, len);
                        }
                    }
                }
            }
            store.submit(batch).wait().expect("commit");
        }
        // Closing makes it durable; the next cycle checks it.
        store.close();
    }
    let store = open(&dir, StoreConfig::default());
    assert_eq!(queues(&store), model);
    // Bodies are exactly those still referenced.
    let referenced: usize = model.values().map(Vec::len).sum::<usize>() + retained.len();
    assert_eq!(store.stats().messages, referenced as u64);
}

fn concurrent_submitters(cfg: StoreConfig) -> (midge_store::StoreStats, usize) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let store = Arc::new(open(&dir, cfg.clone()));
    store
        .submit(Batch::from(Op::PutSession(
            sid(1),
            session("c", u32::MAX, None),
        )))
        .wait()
        .expect("session");
    const THREADS: u64 = 8;
    const EACH: u64 = 200;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                // Pipelined like a connection task: several in flight.
                let mut pending = std::collections::VecDeque::new();
                for i in 0..EACH {
                    let seq = 1 + t * EACH + i;
                    pending.push_back(store.submit(Batch::from(enqueue(&*store, 1, seq))));
                    if pending.len() >= 8 {
                        if let Some(c) = pending.pop_front() {
                            c.wait().expect("commit");
                        }
                    }
                }
                for c in pending {
                    c.wait().expect("commit");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("submitter");
    }
    let stats = store.stats();
    let store = Arc::try_unwrap(store).expect("sole owner");
    store.close();
    let store = open(&dir, cfg);
    let q = queues(&store);
    let want: Vec<u64> = (1..=THREADS * EACH).collect();
    let mut got = q.get(&1).cloned().unwrap_or_default();
    got.sort_unstable();
    assert_eq!(got, want, "every acknowledged write is there after reopen");
    (stats, got.len())
}

#[test]
fn group_commit_completes_every_submitter() {
    let (stats, n) = concurrent_submitters(StoreConfig::default());
    assert_eq!(n, 1600);
    assert_eq!(stats.batches, 1601);
    assert!(
        stats.max_batches_per_commit > 1,
        "batches were grouped: {stats:?}"
    );
    assert!(stats.commits < stats.batches, "{stats:?}");
    // Every group commit is durable: one fsync each, timed.
    assert_eq!(stats.syncs, stats.commits, "{stats:?}");
    assert!(stats.sync_time_us >= stats.sync_max_us && stats.sync_max_us > 0);
}

#[test]
fn policy_always_commits_each_batch_alone() {
    let cfg = StoreConfig {
        fsync: FsyncPolicy::Always,
        ..StoreConfig::default()
    };
    let (stats, n) = concurrent_submitters(cfg);
    assert_eq!(n, 1600);
    assert_eq!(stats.max_batches_per_commit, 1);
    assert_eq!(stats.commits, stats.batches);
    assert_eq!(stats.syncs, stats.commits);
}

#[test]
fn policy_never_is_durable_after_close_and_sync() {
    let cfg = StoreConfig {
        fsync: FsyncPolicy::Never,
        ..StoreConfig::default()
    };
    let (_, n) = concurrent_submitters(cfg.clone());
    assert_eq!(n, 1600);
    // sync() makes non-durable commits durable without closing.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let far_checkpoint = StoreConfig {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..cfg.clone()
    };
    let store = open(&dir, far_checkpoint);
    store
        .submit(Batch::from(vec![
            Op::PutSession(sid(1), session("c", u32::MAX, None)),
            enqueue(&store, 1, 1),
        ]))
        .wait()
        .expect("commit");
    // Committed in memory only: no fsync before the checkpoint.
    assert_eq!(store.stats().syncs, 0, "{:?}", store.stats());
    store.sync().wait().expect("sync");
    assert_eq!(store.stats().syncs, 1, "{:?}", store.stats());
    assert_eq!(queues(&store).get(&1), Some(&vec![1]));
}

#[test]
fn second_open_fails_clearly_and_lock_is_released_on_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let first = open(&dir, StoreConfig::default());
    let err = DiskStore::open(&dir, StoreConfig::default()).expect_err("second open");
    match &err {
        StoreError::Locked { pid, .. } => assert_eq!(*pid, Some(std::process::id())),
        other => panic!("expected Locked, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("is in use by another midge process"),
        "{text}"
    );
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    // The offline tools refuse too, with the same message.
    assert!(matches!(
        midge_store::check(&dir),
        Err(StoreError::Locked { .. })
    ));
    first.close();
    let again = open(&dir, StoreConfig::default());
    again.close();
}

#[test]
fn other_format_version_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    open(&dir, StoreConfig::default()).close();
    let format = std::fs::read_to_string(dir.join("FORMAT")).expect("FORMAT");
    assert_eq!(
        format.trim(),
        format!("midge-store {}", midge_store::FORMAT_VERSION)
    );
    std::fs::write(dir.join("FORMAT"), "midge-store 999\n").expect("write");
    let err = DiskStore::open(&dir, StoreConfig::default()).expect_err("refused");
    assert!(matches!(err, StoreError::VersionMismatch { .. }), "{err:?}");
    assert!(err.to_string().contains("midge-store 999"), "{err}");
    // A database without its FORMAT file is not ours to guess about.
    std::fs::remove_file(dir.join("FORMAT")).expect("rm");
    let err = DiskStore::open(&dir, StoreConfig::default()).expect_err("refused");
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
}

#[test]
fn full_disk_refuses_batches_then_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let faults = FaultSwitch::new();
    let store =
        DiskStore::open_with_faults(&dir, StoreConfig::default(), faults.clone()).expect("open");
    store
        .submit(Batch::from(vec![
            Op::PutSession(sid(1), session("c", u32::MAX, None)),
            enqueue(&store, 1, 1),
        ]))
        .wait()
        .expect("commit before the fault");
    faults.set(true);
    let err = store
        .submit(Batch::from(enqueue(&store, 1, 2)))
        .wait()
        .expect_err("disk full");
    match &err {
        CommitError::Failed(text) => assert!(text.contains("No space left"), "{text}"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert!(store.stats().write_errors >= 1);
    // Still failing while the disk is full (the store retries reopening).
    assert!(store
        .submit(Batch::from(enqueue(&store, 1, 3)))
        .wait()
        .is_err());
    faults.set(false);
    store
        .submit(Batch::from(enqueue(&store, 1, 4)))
        .wait()
        .expect("commit after the disk has room again");
    store.close();
    let store = open(&dir, StoreConfig::default());
    assert_eq!(queues(&store).get(&1), Some(&vec![1, 4]));
    // The bookkeeping was rebuilt from disk: bodies match references.
    assert_eq!(store.stats().messages, 2);
}

fn filled_store(dir: &Path, n: u64) {
    let store = open(dir, StoreConfig::default());
    store
        .submit(Batch::from(Op::PutSession(
            sid(1),
            session("c", u32::MAX, None),
        )))
        .wait()
        .expect("session");
    for chunk in 0..n / 100 {
        let ops: Vec<Op> = (0..100)
            .map(|i| enqueue(&store, 1, 1 + chunk * 100 + i))
            .collect();
        store.submit(Batch::from(ops)).wait().expect("commit");
    }
    store.close();
}

/// Damage `dir`'s database with `damage`, check that opening refuses with
/// the documented hint, that `check` reports it, and that `repair` keeps
/// a consistent subset of the rows that opens again.
fn damaged_then_repaired(damage: impl FnOnce(&Path)) -> (usize, midge_store::RepairReport) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    filled_store(&dir, 3000);
    damage(&db_file(&dir));
    let err = DiskStore::open(&dir, StoreConfig::default()).expect_err("damage detected");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("midge store repair --data-dir"), "{text}");
    let report = midge_store::check(&dir).expect("check runs");
    assert!(!report.is_ok(), "{report}");
    assert!(report.to_string().contains("CORRUPT"), "{report}");
    let repaired = midge_store::repair(&dir).expect("repair");
    assert!(repaired.rebuilt, "{repaired}");
    assert!(repaired.damaged_file.as_ref().is_some_and(|p| p.exists()));
    let after = midge_store::check(&dir).expect("check after repair");
    assert!(after.is_ok(), "{after}");
    let store = open(&dir, StoreConfig::default());
    // Whatever came back is intact (payloads are checked in `queues`) and
    // consistent (every body referenced, no dangling rows).
    let q = queues(&store);
    let kept = q.get(&1).map_or(0, Vec::len);
    assert!(kept <= 3000);
    assert_eq!(store.stats().messages, kept as u64);
    (kept, repaired)
}

#[test]
fn flipped_bytes_are_detected_and_repair_keeps_what_is_readable() {
    let (kept, report) = damaged_then_repaired(|db| {
        let mut bytes = std::fs::read(db).expect("read");
        let len = bytes.len();
        for off in [len / 3, len / 2, 2 * len / 3] {
            for b in &mut bytes[off..off + 64] {
                *b ^= 0x5a;
            }
        }
        std::fs::write(db, bytes).expect("write");
    });
    assert!(kept > 0, "readable rows were kept: {report}");
    assert!(report.salvaged_rows > 0);
}

fn truncate_to(db: &Path, percent: u64) {
    let len = std::fs::metadata(db).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open");
    f.set_len(len * percent / 100).expect("truncate");
}

#[test]
fn truncated_file_is_detected_and_repair_keeps_what_is_readable() {
    // The last page is cut: redb refuses the file, the trees are intact.
    let (kept, report) = damaged_then_repaired(|db| {
        let len = std::fs::metadata(db).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(db)
            .expect("open");
        f.set_len(len - 4096).expect("truncate");
    });
    assert!(report.salvaged_rows > 0, "{report}");
    assert_eq!(kept, 3000, "{report}");
}

#[test]
fn badly_truncated_file_is_detected_and_repair_leaves_a_consistent_store() {
    // Half the file gone takes the newest pages with it, the roots of the
    // trees among them: the rows of the leaf pages before the cut are found
    // by scanning the raw file.
    let (kept, report) = damaged_then_repaired(|db| truncate_to(db, 50));
    assert!(report.salvaged_rows > 0, "{report}");
    assert!(kept > 0 && kept < 3000, "kept {kept}: {report}");
}

#[test]
fn destroyed_header_is_detected_and_repair_starts_empty() {
    let (kept, report) = damaged_then_repaired(|db| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(db)
            .expect("open");
        f.set_len(100).expect("truncate");
    });
    assert_eq!(kept, 0);
    assert_eq!(report.salvaged_rows, 0);
}

#[test]
fn repair_of_a_healthy_store_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    filled_store(&dir, 500);
    let info = midge_store::info(&dir).expect("info");
    assert_eq!(info.counts.queued, 500);
    assert_eq!(info.counts.sessions, 1);
    assert!(!info.verified);
    let report = midge_store::check(&dir).expect("check");
    assert!(report.is_ok(), "{report}");
    assert!(report.to_string().ends_with("OK"), "{report}");
    let repaired = midge_store::repair(&dir).expect("repair");
    assert!(!repaired.rebuilt);
    assert_eq!(repaired.counts.queued, 500);
    let store = open(&dir, StoreConfig::default());
    assert_eq!(queues(&store).get(&1).map(Vec::len), Some(500));
}

#[test]
fn usable_from_async_code() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = open(&dir, StoreConfig::default());
        store
            .submit(Batch::from(vec![
                Op::PutSession(sid(1), session("c", u32::MAX, None)),
                enqueue(&store, 1, 1),
            ]))
            .await
            .expect("commit");
        store.sync().await.expect("sync");
        // load blocks on a std channel: allowed inside a runtime.
        let r = store.load().expect("load");
        assert_eq!(r.sessions[0].queue.len(), 1);
    });
}

#[test]
fn shutdown_through_a_shared_owner_makes_writes_durable_and_releases_the_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let store: Arc<dyn Store> = Arc::new(open(&dir, StoreConfig::default()));
    let other_owner = store.clone();
    store.submit_detached(Batch::from(vec![
        Op::PutSession(sid(1), session("c", u32::MAX, None)),
        enqueue(&*store, 1, 1),
    ]));
    store.shutdown();
    // Another owner still holds the store, yet the directory is free and
    // the detached batch made it.
    let again = open(&dir, StoreConfig::default());
    assert_eq!(queues(&again).get(&1), Some(&vec![1]));
    again.close();
    assert_eq!(
        other_owner
            .submit(Batch::from(enqueue(&*other_owner, 1, 2)))
            .wait(),
        Err(CommitError::Closed)
    );
    drop(other_owner);
}

#[test]
fn submit_never_blocks_however_far_the_writer_is_behind() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let cfg = StoreConfig {
        fsync: FsyncPolicy::Always,
        ..StoreConfig::default()
    };
    let store = open(&dir, cfg);
    store.submit_detached(Batch::from(Op::PutSession(
        sid(1),
        session("c", u32::MAX, None),
    )));
    // One fsync per batch (milliseconds each): the writer is far behind
    // once these are queued; queuing must not wait for it.
    let n = 300u64;
    let t0 = std::time::Instant::now();
    let mut commits = Vec::new();
    for seq in 1..=n {
        commits.push(store.submit(Batch::from(enqueue(&store, 1, seq))));
    }
    let queued_in = t0.elapsed();
    let backlog = store.stats().backlog;
    assert!(backlog > 100, "the writer cannot have kept up: {backlog}");
    assert!(
        queued_in < std::time::Duration::from_millis(200),
        "queuing took {queued_in:?}"
    );
    drop(commits);
    store.sync().wait().expect("sync");
    assert_eq!(store.stats().backlog, 0);
    assert_eq!(queues(&store).get(&1).map(Vec::len), Some(n as usize));
}
