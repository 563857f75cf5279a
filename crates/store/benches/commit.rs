//! Batch-commit throughput of the store for each fsync policy, in the shape
//! of QoS 1 fan-in to a persistent subscriber: publisher threads each keep
//! a window of commits in flight (one batch = one message queued for the
//! subscriber; the PUBACK would wait for it), and the subscriber's
//! acknowledgements remove the messages again (detached batches).
//!
//! `cargo bench -p midge-store --bench commit` prints msgs/s per policy.
//! Environment: `PUBLISHERS` (16), `WINDOW` (16 commits in flight per
//! publisher), `PAYLOAD` (64 bytes), `SECONDS` (3 per policy), `DIR` (a
//! temporary directory; put it on the disk you care about), `BATCH_DELAY_MS`
//! (the group commit linger, default of the config).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use midge_proto::{Properties, Protocol, QoS};
use midge_store::{
    Batch, DeliveryRecord, DiskStore, FsyncPolicy, MemoryStore, Op, SessionId, SessionRecord,
    Store, StoreConfig, StoredMessage,
};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Run {
    msgs: u64,
    secs: f64,
}

fn fan_in(store: Arc<dyn Store>, publishers: u64, window: usize, payload: usize, secs: u64) -> Run {
    let subscriber = SessionId(1);
    store
        .submit(Batch::from(Op::PutSession(
            subscriber,
            SessionRecord {
                client_id: "subscriber".into(),
                protocol: Protocol::V5,
                expiry_interval: u32::MAX,
                disconnected_at: None,
                username: None,
            },
        )))
        .wait()
        .expect("session");
    let body = Bytes::from(vec![0x5a; payload]);
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<u64>();
    let acker = {
        let store = store.clone();
        std::thread::spawn(move || {
            for seq in ack_rx {
                store.submit_detached(Batch::from(Op::Dequeue {
                    session: subscriber,
                    seq,
                }));
            }
        })
    };
    let until = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let handles: Vec<_> = (0..publishers)
        .map(|_| {
            let store = store.clone();
            let body = body.clone();
            let ack_tx = ack_tx.clone();
            std::thread::spawn(move || {
                let mut pending = VecDeque::with_capacity(window);
                let mut sent = 0u64;
                while Instant::now() < until {
                    let seq = store.next_seq();
                    let msg = Arc::new(StoredMessage {
                        id: store.next_message_id(),
                        topic: "sensors/fan-in".into(),
                        payload: body.clone(),
                        qos: QoS::AtLeastOnce,
                        retain: false,
                        properties: Properties::default(),
                        publisher: None,
                        expires_at_ms: None,
                    });
                    let commit = store.submit(Batch::from(Op::Enqueue {
                        session: subscriber,
                        seq,
                        delivery: DeliveryRecord {
                            msg,
                            qos: QoS::AtLeastOnce,
                            retain: false,
                            sub_ids: Vec::new(),
                            share: None,
                        },
                    }));
                    pending.push_back((seq, commit));
                    if pending.len() >= window {
                        if let Some((s, c)) = pending.pop_front() {
                            c.wait().expect("commit");
                            let _ = ack_tx.send(s);
                        }
                    }
                    sent += 1;
                }
                for (s, c) in pending {
                    c.wait().expect("commit");
                    let _ = ack_tx.send(s);
                }
                sent
            })
        })
        .collect();
    drop(ack_tx);
    let msgs: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("publisher"))
        .sum();
    let secs = start.elapsed().as_secs_f64();
    let _ = acker.join();
    store.sync().wait().expect("sync");
    Run { msgs, secs }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // we use. Either way run once, briefly under test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let publishers = env("PUBLISHERS", 16);
    let window = env("WINDOW", 16) as usize;
    let payload = env("PAYLOAD", 64) as usize;
    let secs = if quick { 1 } else { env("SECONDS", 3) };
    let base = std::env::var("DIR").map(std::path::PathBuf::from).ok();
    println!(
        "QoS 1 fan-in into the store: {publishers} publishers x {window} commits in flight, {payload}-byte payloads, {secs} s each"
    );
    let mut memory_rate = 0.0;
    for kind in ["memory", "never", "batch", "always"] {
        let tmp = match &base {
            Some(b) => tempfile::tempdir_in(b),
            None => tempfile::tempdir(),
        }
        .expect("tempdir");
        let config = StoreConfig {
            fsync: kind.parse().unwrap_or(FsyncPolicy::Batch),
            batch_delay: Duration::from_millis(env(
                "BATCH_DELAY_MS",
                StoreConfig::default().batch_delay.as_millis() as u64,
            )),
            ..StoreConfig::default()
        };
        let store: Arc<dyn Store> = if kind == "memory" {
            Arc::new(MemoryStore::new(&config))
        } else {
            Arc::new(DiskStore::open(tmp.path().join("data"), config).expect("open"))
        };
        let run = fan_in(store.clone(), publishers, window, payload, secs);
        let stats = store.stats();
        let rate = run.msgs as f64 / run.secs;
        if kind == "memory" {
            memory_rate = rate;
        }
        println!(
            "{kind:>7}: {:>9.0} msgs/s ({} msgs in {:.2} s; {} commits, up to {} batches per commit){}",
            rate,
            run.msgs,
            run.secs,
            stats.commits,
            stats.max_batches_per_commit,
            if kind == "memory" {
                String::new()
            } else {
                format!(", {:.0}% of memory", 100.0 * rate / memory_rate)
            }
        );
    }
}
