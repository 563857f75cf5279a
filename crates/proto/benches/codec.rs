//! Codec benchmarks: decode and encode of PUBLISH (64 B and 4 KiB payload,
//! QoS 0 and 1, MQTT 3.1.1 and 5.0) and of a SUBSCRIBE with 10 filters.
//!
//! Decoding is measured the way a connection does it: packets back to back
//! in one read buffer of about 64 KiB, decoded one after another (building
//! the buffer is not timed). Encoding appends to a reused buffer.
//!
//! Times are the benchmark thread's CPU time (`cpu_time::ThreadTime`), not
//! wall time, so that other processes sharing the cores do not inflate them.
//!
//! `cargo bench -p midge-proto -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::Duration;

use cpu_time::ThreadTime;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use midge_proto::{
    decode, encode, Packet, Properties, Protocol, Publish, QoS, Subscribe, Subscription,
    SubscriptionOptions,
};

/// Bytes per untimed buffer refill: about what one socket read brings, so
/// the buffer is warm in cache as it is for a connection decoding what it
/// just read.
const CHUNK_BYTES: usize = 64 * 1024;

fn publish(payload: usize, qos: QoS) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "sensors/building-7/floor-3/temperature".into(),
        pkid: if qos == QoS::AtMostOnce { 0 } else { 4242 },
        payload: Bytes::from(vec![0x5A; payload]),
        properties: Properties::default(),
    })
}

fn subscribe() -> Packet {
    Packet::Subscribe(Subscribe {
        pkid: 7,
        filters: (0..10)
            .map(|i| Subscription {
                filter: format!("devices/+/group-{i}/#").into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..Default::default()
                },
            })
            .collect(),
        properties: Properties::default(),
    })
}

fn encoded(packet: &Packet, protocol: Protocol) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = encode(packet, protocol, &mut buf) {
        panic!("benchmark packet does not encode: {e}");
    }
    buf.to_vec()
}

fn bench_decode(c: &mut Criterion, name: &str, packet: &Packet, protocol: Protocol) {
    let one = encoded(packet, protocol);
    let chunk = (CHUNK_BYTES / one.len()).max(16) as u64;
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(chunk);
                let mut buf = BytesMut::with_capacity(one.len() * n as usize);
                for _ in 0..n {
                    buf.extend_from_slice(&one);
                }
                let start = ThreadTime::now();
                for _ in 0..n {
                    let p = decode(&mut buf, protocol, usize::MAX);
                    black_box(&p);
                }
                total += start.elapsed();
                left -= n;
            }
            total
        })
    });
    group.finish();
}

fn bench_encode(c: &mut Criterion, name: &str, packet: &Packet, protocol: Protocol) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    let mut buf = BytesMut::with_capacity(8192);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let start = ThreadTime::now();
            for _ in 0..iters {
                buf.clear();
                let r = encode(black_box(packet), protocol, &mut buf);
                let _ = black_box((r, buf.len()));
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn codec(c: &mut Criterion) {
    let cases = [
        ("publish_64B_qos0", publish(64, QoS::AtMostOnce)),
        ("publish_64B_qos1", publish(64, QoS::AtLeastOnce)),
        ("publish_4KiB_qos0", publish(4096, QoS::AtMostOnce)),
        ("publish_4KiB_qos1", publish(4096, QoS::AtLeastOnce)),
        ("subscribe_10_filters", subscribe()),
    ];
    for (protocol, tag) in [(Protocol::V3_1_1, "v311"), (Protocol::V5, "v5")] {
        for (name, packet) in &cases {
            let name = format!("{name}_{tag}");
            bench_decode(c, &name, packet, protocol);
            bench_encode(c, &name, packet, protocol);
        }
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
