//! The conn scenario: open K idle connections at a paced rate, measure the
//! connect rate and handshake times, and the broker's resident memory per
//! connection once they are all open.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use midge_proto::{Disconnect, Packet, ReasonCode};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{encode_into, ClientOptions, Conn};
use crate::config::BenchConfig;
use crate::error::BenchError;
use crate::latency::Latency;
use crate::payload::Clock;
use crate::proccpu::{BrokerCpu, CpuMeter, CpuPhase};
use crate::procmem::vm_rss_kib;
use crate::progress::Progress;
use crate::report::{count, rate, ConnReport};
use crate::run::{join_all, run_tag};

/// File descriptors kept for everything that is not a bench connection.
const SPARE_FDS: u64 = 256;

/// Counters shared by the connection tasks.
#[derive(Debug, Default)]
struct Tally {
    connected: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    last_ok_ns: AtomicU64,
    /// Handshake times. A std mutex is enough: held for one record, never
    /// across an await.
    handshake: Mutex<Latency>,
    /// Failure messages and how often each occurred.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn fail(&self, why: String) {
        self.failed.fetch_add(1, Ordering::AcqRel);
        if let Ok(mut m) = self.errors.lock() {
            // The client id makes every message unique; group by the rest.
            let key = why
                .split_once(": ")
                .map(|(_, r)| r.to_owned())
                .unwrap_or(why);
            *m.entry(key).or_insert(0) += 1;
        }
    }
}

/// Raises this process's open-file limit to fit `want` descriptors, as far
/// as the hard limit allows. Returns the resulting soft limit.
pub fn raise_nofile(want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let soft = cur.current.unwrap_or(u64::MAX);
    if soft >= want {
        return soft;
    }
    let hard = cur.maximum.unwrap_or(u64::MAX);
    let target = want.min(hard);
    let new = Rlimit {
        current: Some(target),
        maximum: cur.maximum,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => target,
        Err(_) => soft,
    }
}

/// Runs the conn scenario: its figures, the broker's CPU time over the
/// connect phase (given `--broker-pid`) and client errors.
pub async fn conn(
    cfg: &BenchConfig,
    addr: SocketAddr,
    progress: &Progress,
    clock: Clock,
) -> Result<(ConnReport, Option<BrokerCpu>, Vec<String>), BenchError> {
    let limit = raise_nofile(cfg.connections as u64 + SPARE_FDS);
    if limit < cfg.connections as u64 + SPARE_FDS {
        return Err(BenchError::Options(format!(
            "{} connections need about {} open files, but the limit is {limit}: raise `ulimit -n`",
            cfg.connections,
            cfg.connections as u64 + SPARE_FDS
        )));
    }
    let rss_before = match cfg.broker_pid {
        Some(pid) => Some(vm_rss_kib(pid)?),
        None => None,
    };
    let tag = run_tag(clock.now_ns());
    let opts = ClientOptions {
        protocol: cfg.protocol,
        keep_alive: cfg.keep_alive,
        persistent: false,
    };
    let tally = Arc::new(Tally::default());
    let release = CancellationToken::new();
    let abort = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let cpu_meter = match cfg.broker_pid {
        Some(pid) => Some(CpuMeter::start(pid)?),
        None => None,
    };
    let start = Instant::now();
    let start_ns = clock.now_ns();
    let open_until = start + cfg.duration;
    let mut tasks = Vec::with_capacity(cfg.connections);
    let mut last_progress = start;

    for i in 0..cfg.connections {
        if cfg.conn_rate > 0.0 {
            let at = start + Duration::from_secs_f64(i as f64 / cfg.conn_rate);
            if at >= open_until {
                break;
            }
            tokio::time::sleep_until(at).await;
        }
        let permit = tokio::select! {
            p = sem.clone().acquire_owned() => p,
            _ = tokio::time::sleep_until(open_until) => break,
        };
        let Ok(permit) = permit else { break };
        let (t_tally, release, abort) = (tally.clone(), release.clone(), abort.clone());
        let id = format!("mb{tag}-c{i}");
        let connect_timeout = cfg.connect_timeout;
        tasks.push(tokio::spawn(async move {
            let tally = t_tally;
            let t0 = Instant::now();
            let r = tokio::time::timeout(connect_timeout, Conn::connect(addr, &id, opts)).await;
            drop(permit);
            let conn = match r {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return tally.fail(e.to_string()),
                Err(_) => return tally.fail(format!("{id}: handshake timed out")),
            };
            let took = t0.elapsed();
            tally.connected.fetch_add(1, Ordering::AcqRel);
            tally.last_ok_ns.fetch_max(clock.now_ns(), Ordering::AcqRel);
            if let Ok(mut h) = tally.handshake.lock() {
                h.record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
            idle(conn, opts, &release, &abort, &tally).await;
        }));
        if last_progress.elapsed() >= Duration::from_millis(100) {
            last_progress = Instant::now();
            progress.set(conn_line(&tally, i + 1, cfg.connections, start));
        }
    }
    let attempted = tasks.len();

    // Every attempt ends in a CONNACK, a failure or its handshake timeout.
    let settled_by = Instant::now() + cfg.connect_timeout + Duration::from_secs(1);
    loop {
        let done = tally.connected.load(Ordering::Acquire) + tally.failed.load(Ordering::Acquire);
        progress.set(conn_line(&tally, attempted, cfg.connections, start));
        if done >= attempted as u64 || Instant::now() >= settled_by {
            break;
        }
        // Short: the broker's CPU time is read when this loop ends, and
        // the phase should end with the last CONNACK.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let connected = tally.connected.load(Ordering::Acquire);
    let mut errors = Vec::new();
    let broker_cpu = cpu_meter.and_then(|m| {
        m.finish(CpuPhase::Connect, connected)
            .map_err(|e| errors.push(e.to_string()))
            .ok()
    });
    let connect_secs = tally
        .last_ok_ns
        .load(Ordering::Acquire)
        .saturating_sub(start_ns) as f64
        / 1e9;

    progress.set(format!("{} connections open; settling", count(connected)));
    tokio::time::sleep(cfg.settle).await;
    let rss_after = match cfg.broker_pid {
        Some(pid) => Some(vm_rss_kib(pid)?),
        None => None,
    };
    if !cfg.hold.is_zero() {
        progress.set(format!("{} connections open; holding", count(connected)));
        tokio::time::sleep(cfg.hold).await;
    }
    progress.set("disconnecting".into());
    release.cancel();
    for r in join_all(tasks, Duration::from_secs(5), &abort).await {
        if let Err(e) = r {
            errors.push(format!("connection task: {e}"));
        }
    }
    if let Ok(m) = tally.errors.lock() {
        for (why, n) in m.iter().take(10) {
            errors.push(format!("{} connections: {why}", count(*n)));
        }
    }
    let handshake = tally.handshake.lock().ok().and_then(|h| h.summary());
    let live = connected.saturating_sub(tally.dropped.load(Ordering::Acquire));
    let bytes_per_connection = match (rss_before, rss_after) {
        (Some(b), Some(a)) if live > 0 => Some(a.saturating_sub(b) as f64 * 1024.0 / live as f64),
        _ => None,
    };
    let report = ConnReport {
        requested: cfg.connections,
        attempted,
        connected,
        failed: tally.failed.load(Ordering::Acquire),
        dropped: tally.dropped.load(Ordering::Acquire),
        keep_alive: cfg.keep_alive,
        target_rate: (cfg.conn_rate > 0.0).then_some(cfg.conn_rate),
        connect_secs,
        connects_per_sec: if connect_secs > 0.0 {
            connected as f64 / connect_secs
        } else {
            0.0
        },
        handshake,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        bytes_per_connection,
        broker_cpu_us_per_connection: broker_cpu
            .and_then(|c| c.cpu_ns_per_work)
            .map(|ns| ns / 1e3),
        broker_cpu_pct: broker_cpu.and_then(|c| c.utilisation_pct),
    };
    Ok((report, broker_cpu, errors))
}

/// Keeps one connection open and quiet (a PINGREQ every half keep alive)
/// until released, then disconnects.
async fn idle(
    conn: Conn,
    opts: ClientOptions,
    release: &CancellationToken,
    abort: &CancellationToken,
    tally: &Tally,
) {
    let Conn {
        mut reader,
        mut writer,
        protocol,
        ..
    } = conn;
    let who = reader.who().to_owned();
    let ping_every = Duration::from_secs(u64::from(opts.keep_alive.max(2)) / 2);
    let mut buf = BytesMut::new();
    loop {
        tokio::select! {
            _ = release.cancelled() => break,
            _ = abort.cancelled() => return,
            _ = tokio::time::sleep(ping_every), if opts.keep_alive > 0 => {
                buf.clear();
                if encode_into(&Packet::PingReq, protocol, &mut buf, &who).is_err()
                    || writer.write_all(&buf).await.is_err()
                {
                    tally.dropped.fetch_add(1, Ordering::AcqRel);
                    return;
                }
            }
            r = reader.fill() => {
                // PINGRESP is all a broker should send; anything else is
                // read and dropped. End of stream: the broker dropped us.
                if r.is_err() {
                    tally.dropped.fetch_add(1, Ordering::AcqRel);
                    return;
                }
                while let Ok(Some(_)) = reader.try_decode() {}
            }
        }
    }
    buf.clear();
    let bye = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
    if encode_into(&bye, protocol, &mut buf, &who).is_ok() {
        tokio::select! {
            _ = writer.write_all(&buf) => {}
            _ = abort.cancelled() => return,
        }
    }
    let _ = writer.shutdown().await;
}

fn conn_line(tally: &Tally, attempted: usize, total: usize, start: Instant) -> String {
    let ok = tally.connected.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    format!(
        "attempted {}/{}  connected {} ({} conn/s)  failed {}",
        count(attempted as u64),
        count(total as u64),
        count(ok),
        rate(ok as f64 / secs),
        count(tally.failed.load(Ordering::Relaxed))
    )
}
