//! Crash safety: a child process (this test binary run again with
//! `MIDGE_STORE_CRASH_CHILD` set) writes from several threads with fsync
//! `always` or `batch` and prints each write once its commit resolved; the
//! parent kills it with SIGKILL at random moments, reopens the store and
//! checks that every acknowledged write (additions and removals) is there.
//!
//! A SIGKILL keeps the page cache, so this tests redb's recovery and our
//! ordering (acknowledge only after the commit), not power loss.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use midge_proto::QoS;
use midge_store::{Batch, DiskStore, FsyncPolicy, Op, Store, StoreConfig};
use rand::Rng;

const CHILD_ENV: &str = "MIDGE_STORE_CRASH_CHILD";
const THREADS: u64 = 4;

fn payload(seq: u64) -> Vec<u8> {
    seq.to_le_bytes().repeat(1 + (seq % 16) as usize)
}

/// The child's work: runs only when spawned by `kill_at_random_moments`.
#[test]
fn crash_child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let mut parts = spec.split('|');
    let (Some(dir), Some(policy), Some(run)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("bad spec {spec}");
    };
    let cfg = StoreConfig {
        fsync: policy.parse().expect("policy"),
        ..StoreConfig::default()
    };
    let run: u64 = run.parse().expect("run");
    let store = std::sync::Arc::new(DiskStore::open(dir, cfg).expect("child open"));
    store.load().expect("child load");
    store
        .submit(Batch::from(Op::PutSession(
            sid(1),
            session("crash", u32::MAX, None),
        )))
        .wait()
        .expect("session");
    println!("READY");
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let base = (run * THREADS + t) * 1_000_000;
                for k in 0..1_000_000u64 {
                    let seq = base + k;
                    let m = message(&*store, "crash/t", &payload(seq));
                    let mut ops = vec![Op::Enqueue {
                        session: sid(1),
                        seq,
                        delivery: delivery(&m, QoS::AtLeastOnce),
                    }];
                    // Every fifth write also removes an acknowledged one.
                    let del = (k >= 5 && k % 5 == 0).then(|| seq - 5);
                    if let Some(d) = del {
                        ops.push(Op::Dequeue {
                            session: sid(1),
                            seq: d,
                        });
                    }
                    store.submit(Batch::from(ops)).wait().expect("commit");
                    // One line per commit: a kill cuts a whole line or none.
                    let line = match del {
                        Some(d) => format!("ACK {seq} DEL {d}\n"),
                        None => format!("ACK {seq}\n"),
                    };
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.flush();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// One child run: start, let it write for a random while, SIGKILL.
/// Returns the acknowledged additions and removals.
fn run_child(dir: &std::path::Path, policy: FsyncPolicy, run: u64) -> (Vec<u64>, Vec<u64>) {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "crash_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{}|{policy}|{run}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for READY (the child opened and recovered the store).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            // The harness may have printed "test name ... " on the same line.
            Ok(l) if l.ends_with("READY") => break,
            Ok(_) => continue,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("child never got ready: {e}");
            }
        }
    }
    let write_for = Duration::from_millis(rand::thread_rng().gen_range(20..400));
    std::thread::sleep(write_for);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let _ = reader.join();
    let mut acked = Vec::new();
    let mut deleted = Vec::new();
    // A line cut by the kill has no newline and does not parse: ignored.
    for line in rx.try_iter() {
        let mut words = line.split(' ');
        let (Some("ACK"), Some(Ok(seq))) = (words.next(), words.next().map(str::parse)) else {
            continue;
        };
        match (words.next(), words.next().map(str::parse)) {
            (Some("DEL"), Some(Ok(d))) => deleted.push(d),
            (None, _) => {}
            _ => continue,
        }
        acked.push(seq);
    }
    (acked, deleted)
}

fn kill_at_random_moments(policy: FsyncPolicy, kills: u64, budget: Duration) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let start = Instant::now();
    let mut acked_total = 0usize;
    let mut must_have: HashSet<u64> = HashSet::new();
    let mut must_not: HashSet<u64> = HashSet::new();
    let mut runs = 0;
    for run in 0..kills {
        if start.elapsed() > budget {
            break;
        }
        let (acked, deleted) = run_child(&dir, policy, run);
        acked_total += acked.len();
        // Each child thread waits for one commit at a time: the batch after
        // its last acknowledged one may have committed unacknowledged, and
        // with it the removal it carried. That entry may be either way.
        let mut last: std::collections::HashMap<u64, u64> = Default::default();
        for seq in &acked {
            let e = last.entry(seq / 1_000_000).or_insert(*seq);
            *e = (*e).max(*seq);
        }
        must_have.extend(acked);
        for d in deleted {
            must_have.remove(&d);
            must_not.insert(d);
        }
        for seq in last.values() {
            let next = seq + 1;
            if next % 1_000_000 >= 5 && next % 5 == 0 {
                must_have.remove(&(next - 5));
            }
        }
        let store = DiskStore::open(&dir, StoreConfig::default()).expect("reopen after kill");
        let r = store.load().expect("load after kill");
        let present: HashSet<u64> = r
            .session("crash")
            .map(|s| {
                s.queue
                    .iter()
                    .map(|q| {
                        assert_eq!(&q.delivery.msg.payload[..], &payload(q.seq)[..]);
                        q.seq
                    })
                    .collect()
            })
            .unwrap_or_default();
        let missing: Vec<_> = must_have.difference(&present).take(5).collect();
        assert!(
            missing.is_empty(),
            "run {run} ({policy}): acknowledged writes lost, e.g. {missing:?}"
        );
        let resurrected: Vec<_> = must_not.intersection(&present).take(5).collect();
        assert!(
            resurrected.is_empty(),
            "run {run} ({policy}): acknowledged removals undone, e.g. {resurrected:?}"
        );
        assert_eq!(r.report.bad_rows + r.report.dangling, 0, "{:?}", r.report);
        store.close();
        runs += 1;
    }
    assert!(runs >= 3, "only {runs} kill cycles fitted in the budget");
    assert!(acked_total > 0, "the children acknowledged nothing");
    eprintln!("{policy}: {runs} kills, {acked_total} acknowledged writes checked");
}

#[test]
fn sigkill_loses_no_acknowledged_write_fsync_batch() {
    kill_at_random_moments(FsyncPolicy::Batch, 10, Duration::from_secs(30));
}

#[test]
fn sigkill_loses_no_acknowledged_write_fsync_always() {
    kill_at_random_moments(FsyncPolicy::Always, 10, Duration::from_secs(30));
}
