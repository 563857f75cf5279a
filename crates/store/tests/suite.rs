//! One suite of store behaviour, run against both implementations (the
//! in-memory maps and the embedded database, reopened for real between
//! writing and reading).

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use midge_proto::QoS;
use midge_store::{
    Batch, CommitError, InflightRecord, InflightState, Op, QueuedRecord, Store, StoreConfig,
};

fn submit(store: &dyn Store, ops: Vec<Op>) {
    store.submit(Batch::from(ops)).wait().expect("commit");
}

/// Every record type written, reopened, and read back equal.
fn round_trip_every_record(kind: &mut dyn Kind) {
    let cfg = StoreConfig::default();
    let store = kind.open(cfg.clone());
    let s = &*store;
    let m1 = rich_message(s, "a/b");
    let m2 = message(s, "a/c", b"two");
    let retained = rich_message(s, "r/1");
    let mut d1 = delivery(&m1, QoS::ExactlyOnce);
    d1.sub_ids = vec![1, 268_435_455];
    d1.share = Some("$share/g/a/#".into());
    d1.retain = true;
    let d2 = delivery(&m2, QoS::AtLeastOnce);
    let w = will(s, Some(now_ms() + 30_000));
    let seq1 = s.next_seq();
    let seq2 = s.next_seq();
    submit(
        s,
        vec![
            Op::PutSession(sid(1), session("client-1", 3600, a_minute_ago())),
            Op::Subscribe(sid(1), subscription("a/#")),
            Op::Subscribe(sid(1), subscription("$share/g/a/#")),
            Op::Enqueue {
                session: sid(1),
                seq: seq1,
                delivery: d1.clone(),
            },
            Op::Enqueue {
                session: sid(1),
                seq: seq2,
                delivery: d2.clone(),
            },
            Op::PutInflight(
                sid(1),
                InflightRecord {
                    pkid: 7,
                    seq: 20,
                    state: InflightState::Publish(d2.clone()),
                },
            ),
            Op::PutInflight(
                sid(1),
                InflightRecord {
                    pkid: 3,
                    seq: 10,
                    state: InflightState::PubRel,
                },
            ),
            Op::PutIncoming {
                session: sid(1),
                pkid: 65535,
            },
            Op::SetRetained(retained.clone()),
            Op::PutWill(sid(1), Box::new(w.clone())),
        ],
    );
    let store = kind.reopen(store, cfg);
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(r.report, Default::default());
    assert_eq!(r.sessions.len(), 1);
    let got = &r.sessions[0];
    assert_eq!(got.id, sid(1));
    assert_eq!(got.record, session("client-1", 3600, a_minute_ago()));
    let mut subs = got.subscriptions.clone();
    subs.sort_by(|a, b| a.filter.cmp(&b.filter));
    assert_eq!(
        subs,
        vec![subscription("$share/g/a/#"), subscription("a/#")]
    );
    assert_eq!(
        got.queue,
        vec![
            QueuedRecord {
                seq: seq1,
                delivery: d1
            },
            QueuedRecord {
                seq: seq2,
                delivery: d2.clone()
            },
        ]
    );
    // In send order, not packet id order.
    assert_eq!(
        got.inflight,
        vec![
            InflightRecord {
                pkid: 3,
                seq: 10,
                state: InflightState::PubRel
            },
            InflightRecord {
                pkid: 7,
                seq: 20,
                state: InflightState::Publish(d2)
            },
        ]
    );
    assert_eq!(got.incoming, vec![65535]);
    assert_eq!(got.will, Some(w));
    assert_eq!(r.retained, vec![retained]);
    assert!(r.due_wills.is_empty());
    assert!(store.next_message_id() > m1.id.max(m2.id));
}

/// A message queued for 100 sessions is stored once, and goes with the
/// last reference.
fn message_stored_once(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let m = message(s, "fan/out", &[7u8; 1000]);
    let mut ops = Vec::new();
    for i in 0..100 {
        ops.push(Op::PutSession(sid(i), session(&format!("c{i}"), 600, None)));
        ops.push(Op::Enqueue {
            session: sid(i),
            seq: i,
            delivery: delivery(&m, QoS::AtLeastOnce),
        });
    }
    submit(s, ops);
    let st = s.stats();
    assert_eq!(st.messages, 1);
    assert!(
        st.bytes < 100 * 1000,
        "payload written once: {} bytes",
        st.bytes
    );
    for i in 0..99 {
        submit(
            s,
            vec![Op::Dequeue {
                session: sid(i),
                seq: i,
            }],
        );
    }
    assert_eq!(s.stats().messages, 1, "one reference left");
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    let queued: usize = r.sessions.iter().map(|s| s.queue.len()).sum();
    assert_eq!(queued, 1);
    assert_eq!(r.sessions[99].queue[0].delivery.msg, m);
    submit(
        &*store,
        vec![Op::Dequeue {
            session: sid(99),
            seq: 99,
        }],
    );
    assert_eq!(store.stats().messages, 0);
}

/// Moving a message from the queue to in flight and on to PUBREL keeps
/// the body exactly as long as it is referenced.
fn queue_to_inflight_to_done(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let m = message(s, "t", b"qos2");
    let d = delivery(&m, QoS::ExactlyOnce);
    submit(
        s,
        vec![
            Op::PutSession(sid(1), session("c", 60, None)),
            Op::Enqueue {
                session: sid(1),
                seq: 5,
                delivery: d.clone(),
            },
        ],
    );
    submit(
        s,
        vec![
            Op::Dequeue {
                session: sid(1),
                seq: 5,
            },
            Op::PutInflight(
                sid(1),
                InflightRecord {
                    pkid: 1,
                    seq: 6,
                    state: InflightState::Publish(d),
                },
            ),
        ],
    );
    assert_eq!(s.stats().messages, 1);
    submit(
        s,
        vec![Op::PutInflight(
            sid(1),
            InflightRecord {
                pkid: 1,
                seq: 7,
                state: InflightState::PubRel,
            },
        )],
    );
    assert_eq!(s.stats().messages, 0, "PUBREC releases the body");
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(
        r.sessions[0].inflight,
        vec![InflightRecord {
            pkid: 1,
            seq: 7,
            state: InflightState::PubRel
        }]
    );
    submit(
        &*store,
        vec![Op::DeleteInflight {
            session: sid(1),
            pkid: 1,
        }],
    );
    let r = store.load_at(now_ms()).expect("load");
    assert!(r.sessions[0].inflight.is_empty());
}

/// Retained: replace and delete release the old bodies.
fn retained_replace_and_delete(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let a = message(s, "r/t", b"a");
    let b = message(s, "r/t", b"b");
    submit(s, vec![Op::SetRetained(a)]);
    submit(s, vec![Op::SetRetained(b.clone())]);
    assert_eq!(s.stats().messages, 1);
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(r.retained, vec![b]);
    submit(&*store, vec![Op::DeleteRetained("r/t".into())]);
    assert_eq!(store.stats().messages, 0);
    assert!(store.load_at(now_ms()).expect("load").retained.is_empty());
}

/// Deleting a session removes all it holds, and nothing of another.
fn delete_session_removes_everything(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let m = message(s, "t", b"x");
    let other = message(s, "t", b"y");
    let mut ops = Vec::new();
    for n in [1, 2] {
        ops.push(Op::PutSession(sid(n), session(&format!("c{n}"), 60, None)));
        ops.push(Op::Subscribe(sid(n), subscription("t")));
        ops.push(Op::PutIncoming {
            session: sid(n),
            pkid: 9,
        });
        ops.push(Op::PutWill(sid(n), Box::new(will(s, None))));
    }
    ops.push(Op::Enqueue {
        session: sid(1),
        seq: 1,
        delivery: delivery(&m, QoS::AtLeastOnce),
    });
    ops.push(Op::PutInflight(
        sid(1),
        InflightRecord {
            pkid: 2,
            seq: 2,
            state: InflightState::Publish(delivery(&m, QoS::AtLeastOnce)),
        },
    ));
    ops.push(Op::Enqueue {
        session: sid(2),
        seq: 3,
        delivery: delivery(&other, QoS::AtLeastOnce),
    });
    submit(s, ops);
    submit(s, vec![Op::DeleteSession(sid(1))]);
    assert_eq!(
        s.stats().messages,
        1,
        "only the other session's message is left"
    );
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(r.sessions.len(), 1);
    assert_eq!(r.sessions[0].id, sid(2));
    assert_eq!(r.sessions[0].queue.len(), 1);
    assert_eq!(r.sessions[0].subscriptions.len(), 1);
    assert_eq!(r.report, Default::default(), "no dangling rows left behind");
}

/// Sessions whose expiry passed while down are dropped (their wills come
/// back as due); the others keep their remaining time.
fn session_expiry_on_recovery(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let w = will(s, Some(now_ms() + 10_000));
    let m = message(s, "t", b"x");
    submit(
        s,
        vec![
            // Disconnected 60 s ago:
            Op::PutSession(sid(1), session("expired", 30, a_minute_ago())),
            Op::PutWill(sid(1), Box::new(w.clone())),
            Op::Enqueue {
                session: sid(1),
                seq: 1,
                delivery: delivery(&m, QoS::AtLeastOnce),
            },
            Op::Subscribe(sid(1), subscription("t")),
            Op::PutSession(sid(2), session("alive", 120, a_minute_ago())),
            Op::PutSession(sid(3), session("forever", u32::MAX, Some(0))),
            Op::PutSession(sid(4), session("clean", 0, a_minute_ago())),
        ],
    );
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    let ids: Vec<_> = r.sessions.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![sid(2), sid(3)]);
    assert_eq!(r.report.sessions_expired, 2);
    assert_eq!(r.due_wills, vec![w]);
    assert_eq!(
        store.stats().messages,
        0,
        "the expired session's queue went"
    );
    // The drop is durable: a second recovery finds nothing more to do.
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(r.report, Default::default());
    assert!(r.due_wills.is_empty());
    assert_eq!(r.sessions.len(), 2);
}

/// Message expiry is absolute: time spent down counts.
fn message_expiry_on_recovery(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let mut old = (*message(s, "t", b"old")).clone();
    old.expires_at_ms = Some(now_ms() - 1);
    let old = Arc::new(old);
    let mut fresh = (*message(s, "t", b"fresh")).clone();
    fresh.expires_at_ms = Some(now_ms() + 60_000);
    let fresh = Arc::new(fresh);
    let mut old_retained = (*message(s, "r/old", b"r")).clone();
    old_retained.expires_at_ms = Some(now_ms() - 1000);
    submit(
        s,
        vec![
            Op::PutSession(sid(1), session("c", u32::MAX, None)),
            Op::Enqueue {
                session: sid(1),
                seq: 1,
                delivery: delivery(&old, QoS::AtLeastOnce),
            },
            Op::Enqueue {
                session: sid(1),
                seq: 2,
                delivery: delivery(&fresh, QoS::AtLeastOnce),
            },
            Op::SetRetained(Arc::new(old_retained)),
        ],
    );
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    assert_eq!(r.report.messages_expired, 2);
    assert_eq!(r.sessions[0].queue.len(), 1);
    assert_eq!(r.sessions[0].queue[0].delivery.msg, fresh);
    assert!(r.retained.is_empty());
    assert_eq!(store.stats().messages, 1);
}

/// PurgeExpired removes expired queued and retained messages at run time.
fn purge_expired(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let mut m = (*message(s, "t", b"x")).clone();
    m.expires_at_ms = Some(now_ms());
    let m = Arc::new(m);
    let keep = message(s, "t", b"y");
    submit(
        s,
        vec![
            Op::PutSession(sid(1), session("c", u32::MAX, None)),
            Op::Enqueue {
                session: sid(1),
                seq: 1,
                delivery: delivery(&m, QoS::AtLeastOnce),
            },
            Op::Enqueue {
                session: sid(1),
                seq: 2,
                delivery: delivery(&keep, QoS::AtLeastOnce),
            },
            Op::SetRetained(m.clone()),
        ],
    );
    submit(
        s,
        vec![Op::PurgeExpired {
            now_ms: now_ms() - 1,
        }],
    );
    assert_eq!(s.stats().messages, 2, "not yet expired");
    submit(s, vec![Op::PurgeExpired { now_ms: now_ms() }]);
    assert_eq!(s.stats().messages, 1);
    assert_eq!(s.stats().purged, 2);
    let r = s.load_at(0).expect("load");
    assert_eq!(r.sessions[0].queue.len(), 1);
    assert!(r.retained.is_empty());
}

/// Per-session caps drop (and count) what is over; other sessions are not
/// affected.
fn queue_caps(kind: &mut dyn Kind) {
    let cfg = StoreConfig {
        max_session_messages: 5,
        max_session_bytes: 10_000,
        ..StoreConfig::default()
    };
    let store = kind.open(cfg.clone());
    let s = &*store;
    let mut ops = vec![
        Op::PutSession(sid(1), session("count", 60, None)),
        Op::PutSession(sid(2), session("bytes", 60, None)),
    ];
    for i in 0..8 {
        let m = message(s, "t", b"small");
        ops.push(Op::Enqueue {
            session: sid(1),
            seq: i,
            delivery: delivery(&m, QoS::AtLeastOnce),
        });
    }
    for i in 0..4 {
        // 3000 + topic bytes each: the fourth passes 10,000.
        let m = message(s, "t", &[0u8; 3000]);
        ops.push(Op::Enqueue {
            session: sid(2),
            seq: 100 + i,
            delivery: delivery(&m, QoS::AtLeastOnce),
        });
    }
    submit(s, ops);
    assert_eq!(s.stats().dropped_queue_full, 3 + 1);
    // Room again after a dequeue.
    submit(
        s,
        vec![Op::Dequeue {
            session: sid(1),
            seq: 0,
        }],
    );
    let m = message(s, "t", b"again");
    submit(
        s,
        vec![Op::Enqueue {
            session: sid(1),
            seq: 50,
            delivery: delivery(&m, QoS::AtLeastOnce),
        }],
    );
    assert_eq!(s.stats().dropped_queue_full, 4);
    let store = kind.reopen(store, cfg);
    let r = store.load_at(now_ms()).expect("load");
    let seqs: Vec<u64> = r.sessions[0].queue.iter().map(|q| q.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 50]);
    assert_eq!(r.sessions[1].queue.len(), 3);
    // The counts survive the reopen: still at the cap.
    let m = message(&*store, "t", b"over");
    submit(
        &*store,
        vec![Op::Enqueue {
            session: sid(1),
            seq: 60,
            delivery: delivery(&m, QoS::AtLeastOnce),
        }],
    );
    assert_eq!(
        store.stats().dropped_queue_full,
        1 + (kind_drops_carry(&*store))
    );
}

/// The memory store keeps its counters across a "reopen" (it is the same
/// store), the disk store starts them again.
fn kind_drops_carry(store: &dyn Store) -> u64 {
    if store.name() == "memory" {
        4
    } else {
        0
    }
}

/// The store cap refuses whole batches that add data; removals still go.
fn store_cap_refuses(kind: &mut dyn Kind) {
    let cfg = StoreConfig {
        max_store_bytes: 50_000,
        ..StoreConfig::default()
    };
    let store = kind.open(cfg);
    let s = &*store;
    submit(s, vec![Op::PutSession(sid(1), session("c", 60, None))]);
    let mut refused = None;
    let mut last_ok = 0;
    for i in 0..100u64 {
        let m = message(s, "t", &[1u8; 4000]);
        let r = s
            .submit(Batch::from(vec![Op::Enqueue {
                session: sid(1),
                seq: i,
                delivery: delivery(&m, QoS::AtLeastOnce),
            }]))
            .wait();
        match r {
            Ok(()) => last_ok = i,
            Err(e) => {
                refused = Some((i, e));
                break;
            }
        }
    }
    let Some((at, CommitError::Full { cap, .. })) = refused else {
        panic!("never refused: {refused:?}");
    };
    assert_eq!(cap, 50_000);
    assert!((8..=12).contains(&at), "refused at {at}");
    assert_eq!(s.stats().refused_full, 1);
    // Acknowledgements still apply, and make room.
    submit(
        s,
        vec![Op::Dequeue {
            session: sid(1),
            seq: last_ok,
        }],
    );
    let m = message(s, "t", &[1u8; 4000]);
    submit(
        s,
        vec![Op::Enqueue {
            session: sid(1),
            seq: 1000,
            delivery: delivery(&m, QoS::AtLeastOnce),
        }],
    );
}

/// Operations on what is not there are harmless.
fn idempotent_removals(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    submit(
        s,
        vec![
            Op::Dequeue {
                session: sid(9),
                seq: 1,
            },
            Op::DeleteInflight {
                session: sid(9),
                pkid: 1,
            },
            Op::DeleteIncoming {
                session: sid(9),
                pkid: 1,
            },
            Op::DeleteRetained("nothing".into()),
            Op::DeleteWill(sid(9)),
            Op::Unsubscribe(sid(9), "x".into()),
            Op::DeleteSession(sid(9)),
        ],
    );
    // The same queue entry written twice counts once.
    let m = message(s, "t", b"x");
    let e = Op::Enqueue {
        session: sid(1),
        seq: 1,
        delivery: delivery(&m, QoS::AtLeastOnce),
    };
    submit(
        s,
        vec![Op::PutSession(sid(1), session("c", 60, None)), e.clone(), e],
    );
    submit(
        s,
        vec![Op::Dequeue {
            session: sid(1),
            seq: 1,
        }],
    );
    assert_eq!(s.stats().messages, 0);
    let r = s.load_at(now_ms()).expect("load");
    assert!(r.sessions[0].queue.is_empty());
}

/// Empty payloads and large ones round-trip.
fn payload_sizes(kind: &mut dyn Kind) {
    let store = kind.open(StoreConfig::default());
    let s = &*store;
    let sizes = [0usize, 1, 4095, 4096, 70_000, 1_048_576];
    let mut ops = vec![Op::PutSession(sid(1), session("c", 60, None))];
    let mut msgs = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let payload: Vec<u8> = (0..*n).map(|b| (b * 31 + i) as u8).collect();
        let m = message(s, "t", &payload);
        msgs.push(m.clone());
        ops.push(Op::Enqueue {
            session: sid(1),
            seq: i as u64,
            delivery: delivery(&m, QoS::AtLeastOnce),
        });
    }
    submit(s, ops);
    let store = kind.reopen(store, StoreConfig::default());
    let r = store.load_at(now_ms()).expect("load");
    let got: Vec<Bytes> = r.sessions[0]
        .queue
        .iter()
        .map(|q| q.delivery.msg.payload.clone())
        .collect();
    let want: Vec<Bytes> = msgs.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(got, want);
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name(&mut super::Mem); } )*
        }
        mod disk {
            $( #[test] fn $name() { super::$name(&mut super::Disk::default()); } )*
        }
    };
}

suite!(
    round_trip_every_record,
    message_stored_once,
    queue_to_inflight_to_done,
    retained_replace_and_delete,
    delete_session_removes_everything,
    session_expiry_on_recovery,
    message_expiry_on_recovery,
    purge_expired,
    queue_caps,
    store_cap_refuses,
    idempotent_removals,
    payload_sizes,
);
