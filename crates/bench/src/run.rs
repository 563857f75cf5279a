//! A message run: connect and subscribe, start the publishers, stop at the
//! duration (or count), drain, gather every client's figures into a report.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use midge_proto::QoS;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::accounting::Totals;
use crate::client::{ClientOptions, Conn};
use crate::config::BenchConfig;
use crate::error::BenchError;
use crate::flow::{Pacer, Window};
use crate::latency::Latency;
use crate::payload::Clock;
use crate::plan::{shape, Shape};
use crate::proccpu::{BrokerCpu, CpuMeter, CpuPhase};
use crate::progress::Progress;
use crate::publisher::{self, PublisherPlan, PublisherResult};
use crate::report::{count, rate, TrafficReport};
use crate::subscriber::{self, SubscriberResult};

/// Handshakes in progress at once while setting up a run.
const SETUP_CONCURRENCY: usize = 64;
/// How long clients get to disconnect cleanly at the end of a run.
const JOIN_GRACE: Duration = Duration::from_secs(3);
/// How often the drain phase checks whether everything arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// State shared by every task of a run.
#[derive(Debug)]
pub struct RunShared {
    pub clock: Clock,
    /// Messages sent, per publisher id.
    pub sent: Vec<AtomicU64>,
    /// Publishers stop sending (then wait for their acks).
    pub stop: CancellationToken,
    /// Subscribers stop reading and disconnect.
    pub finish: CancellationToken,
    /// Everyone gives up at once (drain deadline or hard timeout).
    pub abort: CancellationToken,
}

/// A unique-enough tag for client ids and topics of this run.
pub fn run_tag(clock_seed: u64) -> String {
    format!("{:x}{:04x}", std::process::id(), clock_seed & 0xffff)
}

/// Opens `ids.len()` sessions (subscribing each to its filter, if any),
/// a few at a time, all within `limit`.
pub async fn connect_many(
    addr: SocketAddr,
    ids: Vec<String>,
    filters: Vec<Option<String>>,
    qos: QoS,
    opts: ClientOptions,
    limit: Duration,
) -> Result<Vec<Conn>, BenchError> {
    let total = ids.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(SETUP_CONCURRENCY));
    let mut tasks = Vec::with_capacity(total);
    for (id, filter) in ids.into_iter().zip(filters) {
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let mut conn = Conn::connect(addr, &id, opts).await?;
            if let Some(f) = filter {
                conn.subscribe(&f, qos).await?;
            }
            Ok::<Conn, BenchError>(conn)
        }));
    }
    let joined = tokio::time::timeout(limit, async {
        let mut conns = Vec::with_capacity(total);
        for t in tasks.iter_mut() {
            match t.await {
                Ok(Ok(c)) => conns.push(c),
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    return Err(BenchError::Protocol {
                        who: "setup".into(),
                        what: format!("connection task failed: {e}"),
                    })
                }
            }
        }
        Ok(conns)
    })
    .await;
    let result = match joined {
        Ok(r) => r,
        Err(_) => Err(BenchError::Timeout {
            what: format!("connecting {total} clients"),
            secs: limit.as_secs_f64(),
        }),
    };
    if result.is_err() {
        for t in &tasks {
            t.abort();
        }
    }
    result
}

/// Runs a message scenario and returns its figures, the broker's CPU time
/// over the send phase (given `--broker-pid`) and client errors.
pub async fn traffic(
    cfg: &BenchConfig,
    addr: SocketAddr,
    progress: &Progress,
    clock: Clock,
) -> Result<(TrafficReport, Option<BrokerCpu>, Vec<String>), BenchError> {
    let tag = run_tag(clock.now_ns() ^ u64::from(std::process::id()));
    let prefix = cfg
        .topic_prefix
        .clone()
        .unwrap_or_else(|| format!("midge-bench/{tag}"));
    let Shape {
        topics,
        subscribers: sub_shapes,
        windows: window_shapes,
    } = shape(cfg, &prefix);
    let npub = topics.len();
    let shared = Arc::new(RunShared {
        clock,
        sent: (0..npub).map(|_| AtomicU64::new(0)).collect(),
        stop: CancellationToken::new(),
        finish: CancellationToken::new(),
        abort: CancellationToken::new(),
    });
    let opts = ClientOptions {
        protocol: cfg.protocol,
        // Data clients live for a bounded run and talk constantly; without
        // keep alive no PINGREQ has to be fitted between batches.
        keep_alive: 0,
        persistent: false,
    };
    let sub_opts = ClientOptions {
        persistent: cfg.persistent_subscribers,
        ..opts
    };

    progress.set(format!("connecting {} subscribers", sub_shapes.len()));
    let sub_conns = connect_many(
        addr,
        (0..sub_shapes.len())
            .map(|i| format!("mb{tag}-s{i}"))
            .collect(),
        sub_shapes.iter().map(|s| Some(s.filter.clone())).collect(),
        cfg.qos,
        sub_opts,
        cfg.connect_timeout,
    )
    .await?;

    let delivered: Vec<Arc<AtomicU64>> = (0..sub_shapes.len())
        .map(|_| Arc::new(AtomicU64::new(0)))
        .collect();
    let mut pub_window: Vec<Option<Arc<Window>>> = vec![None; npub];
    let mut feeds: Vec<Vec<Arc<Window>>> = vec![Vec::new(); sub_shapes.len()];
    let mut windows = Vec::new();
    if !cfg.open_loop {
        for ws in &window_shapes {
            let counters = ws
                .subscribers
                .iter()
                .map(|s| delivered[*s].clone())
                .collect();
            let w = Arc::new(Window::new(cfg.max_undelivered, counters, cfg.stall_after));
            for p in &ws.publishers {
                pub_window[*p as usize] = Some(w.clone());
            }
            for s in &ws.subscribers {
                feeds[*s].push(w.clone());
            }
            windows.push(w);
        }
    }

    let sub_tasks: Vec<JoinHandle<SubscriberResult>> = sub_conns
        .into_iter()
        .zip(feeds)
        .zip(&delivered)
        .map(|((conn, feeds), d)| {
            tokio::spawn(subscriber::run(
                conn,
                d.clone(),
                feeds,
                npub as u32,
                shared.clone(),
            ))
        })
        .collect();

    progress.set(format!("connecting {npub} publishers"));
    let pub_conns = match connect_many(
        addr,
        (0..npub).map(|i| format!("mb{tag}-p{i}")).collect(),
        vec![None; npub],
        cfg.qos,
        opts,
        cfg.connect_timeout,
    )
    .await
    {
        Ok(c) => c,
        Err(e) => {
            shared.abort.cancel();
            for t in sub_tasks {
                let _ = t.await;
            }
            return Err(e);
        }
    };

    // A broker that cannot be read is an error before any load is sent.
    let cpu_meter = match cfg.broker_pid {
        Some(pid) => match CpuMeter::start(pid) {
            Ok(m) => Some(m),
            Err(e) => {
                shared.abort.cancel();
                for t in sub_tasks {
                    let _ = t.await;
                }
                return Err(e);
            }
        },
        None => None,
    };
    let delivered_at_start: u64 = delivered.iter().map(|d| d.load(Ordering::Acquire)).sum();
    let start = Instant::now();
    let start_ns = clock.now_ns();
    let pub_tasks: Vec<JoinHandle<PublisherResult>> = pub_conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let plan = PublisherPlan {
                id: i as u32,
                topic: topics[i].clone(),
                qos: cfg.qos,
                size: cfg.size,
                inflight: cfg.inflight,
                count: cfg.count,
                pacer: cfg.rate.map(|r| Pacer::new(start, r / npub as f64)),
                window: pub_window[i].clone(),
            };
            tokio::spawn(publisher::run(conn, plan, shared.clone()))
        })
        .collect();

    // Sending phase: until the duration, or every publisher is done.
    let deadline = start + cfg.duration;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = tick.tick() => {
                progress.set(line(&shared, &delivered, start, "sending"));
                if pub_tasks.iter().all(|t| t.is_finished()) {
                    break;
                }
            }
        }
    }
    shared.stop.cancel();
    let mut errors = Vec::new();
    let broker_cpu = cpu_meter.and_then(|m| {
        let got: u64 = delivered.iter().map(|d| d.load(Ordering::Acquire)).sum();
        m.finish(CpuPhase::Send, got.saturating_sub(delivered_at_start))
            .map_err(|e| errors.push(e.to_string()))
            .ok()
    });

    // Drain phase: wait until every owed delivery arrived and every
    // publisher finished, no delivery progress for the stall time, or the
    // drain limit.
    let drain_end = Instant::now() + cfg.drain;
    let mut last_total = u64::MAX;
    let mut last_change = Instant::now();
    loop {
        let now = Instant::now();
        let pubs_done = pub_tasks.iter().all(|t| t.is_finished());
        let sent: Vec<u64> = shared
            .sent
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .collect();
        let all_in = sub_shapes.iter().zip(&delivered).all(|(s, d)| {
            let owed: u64 = s.hears.iter().map(|p| sent[*p as usize]).sum();
            d.load(Ordering::Acquire) >= owed
        });
        let total: u64 = delivered.iter().map(|d| d.load(Ordering::Acquire)).sum();
        if total != last_total {
            last_total = total;
            last_change = now;
        }
        if pubs_done && (all_in || now - last_change >= cfg.stall_after) {
            break;
        }
        if now >= drain_end {
            break;
        }
        progress.set(line(&shared, &delivered, start, "draining"));
        tokio::time::sleep(DRAIN_POLL).await;
    }
    shared.finish.cancel();
    if !pub_tasks.iter().all(|t| t.is_finished()) {
        shared.abort.cancel();
    }

    let mut pubs = Vec::with_capacity(npub);
    for r in join_all(pub_tasks, JOIN_GRACE, &shared.abort).await {
        pubs.push(r.unwrap_or_else(|e| {
            errors.push(format!("publisher task: {e}"));
            PublisherResult::default()
        }));
    }
    let mut subs = Vec::with_capacity(sub_shapes.len());
    for r in join_all(sub_tasks, JOIN_GRACE, &shared.abort).await {
        subs.push(r.unwrap_or_else(|e| {
            errors.push(format!("subscriber task: {e}"));
            SubscriberResult::default()
        }));
    }

    let sent: Vec<u64> = pubs.iter().map(|p| p.sent).collect();
    let mut totals = Totals::default();
    let mut latency = Latency::new();
    let mut foreign = 0;
    let mut last_recv_ns = start_ns;
    for (s, shape) in subs.iter().zip(&sub_shapes) {
        totals += s.streams.totals(&shape.hears, &sent);
        latency.merge(&s.latency);
        foreign += s.foreign;
        last_recv_ns = last_recv_ns.max(s.last_recv_ns);
    }
    let last_send_ns = pubs
        .iter()
        .map(|p| p.last_send_ns)
        .max()
        .unwrap_or(start_ns)
        .max(start_ns);
    for e in pubs
        .iter()
        .filter_map(|p| p.error.as_ref())
        .chain(subs.iter().filter_map(|s| s.error.as_ref()))
    {
        errors.push(e.clone());
    }
    let total_sent: u64 = sent.iter().sum();
    let secs = |end_ns: u64| (end_ns.saturating_sub(start_ns)) as f64 / 1e9;
    let per_sec = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let send_secs = secs(last_send_ns);
    let deliver_secs = secs(last_recv_ns);
    let report = TrafficReport {
        publishers: npub,
        subscribers: sub_shapes.len(),
        qos: cfg.qos as u8,
        payload_bytes: cfg.size,
        open_loop: cfg.open_loop,
        max_undelivered: (!cfg.open_loop).then_some(cfg.max_undelivered),
        inflight: (cfg.qos != QoS::AtMostOnce).then_some(cfg.inflight),
        target_rate: cfg.rate,
        send_secs,
        sent: total_sent,
        sent_per_sec: per_sec(total_sent, send_secs),
        expected: totals.expected,
        delivered: totals.unique,
        deliver_secs,
        delivered_per_sec: per_sec(totals.unique, deliver_secs),
        lost: totals.lost,
        lost_in_gaps: totals.lost_in_gaps,
        lost_at_end: totals.lost - totals.lost_in_gaps,
        lost_pct: if totals.expected > 0 {
            totals.lost as f64 * 100.0 / totals.expected as f64
        } else {
            0.0
        },
        duplicated: totals.duplicates,
        out_of_order: totals.out_of_order,
        foreign,
        acked: pubs.iter().map(|p| p.acked).sum(),
        rejected: pubs.iter().map(|p| p.rejected).sum(),
        window_stalls: windows.iter().map(|w| w.stalls()).sum(),
        latency: latency.summary(),
        broker_cpu_ns_per_message: broker_cpu.and_then(|c| c.cpu_ns_per_work),
        broker_cpu_pct: broker_cpu.and_then(|c| c.utilisation_pct),
    };
    Ok((report, broker_cpu, errors))
}

/// Joins tasks, giving them `grace` in total before cancelling `abort`
/// (every task of a run ends promptly once `abort` is cancelled).
pub async fn join_all<T>(
    mut tasks: Vec<JoinHandle<T>>,
    grace: Duration,
    abort: &CancellationToken,
) -> Vec<Result<T, tokio::task::JoinError>> {
    let deadline = Instant::now() + grace;
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks.iter_mut() {
        let r = match tokio::time::timeout_at(deadline, &mut *t).await {
            Ok(r) => r,
            Err(_) => {
                abort.cancel();
                t.await
            }
        };
        out.push(r);
    }
    out
}

/// The progress line of a message run.
fn line(shared: &RunShared, delivered: &[Arc<AtomicU64>], start: Instant, phase: &str) -> String {
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    let sent: u64 = shared.sent.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    let got: u64 = delivered.iter().map(|d| d.load(Ordering::Relaxed)).sum();
    format!(
        "{phase}: sent {} ({} msg/s)  delivered {} ({} msg/s)",
        count(sent),
        rate(sent as f64 / secs),
        count(got),
        rate(got as f64 / secs)
    )
}
