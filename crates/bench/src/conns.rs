//! The conn scenario: open K idle connections at a paced rate, measure the
//! connect rate and handshake times, and the broker's resident memory per
//! connection once they are all open.
//!
//! On loopback the kernel runs the whole TCP handshake, the server side's
//! included, on the connecting CPU, so the load tool's own cost bounds the
//! connect rate. Hence the shape: one short task per handshake, which sends
//! its stream back over a channel and ends; the run itself holds the idle
//! connections, with no task, timer or waker each, and pings them all in
//! one sweep every half keep alive.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use midge_proto::{Disconnect, Packet, ReasonCode};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::client::{encode_into, handshake, ClientOptions, ConnectTemplate};
use crate::config::BenchConfig;
use crate::error::BenchError;
use crate::latency::Latency;
use crate::payload::Clock;
use crate::proccpu::{BrokerCpu, CpuMeter, CpuPhase};
use crate::procmem::vm_rss_kib;
use crate::progress::Progress;
use crate::report::{count, rate, ConnReport};
use crate::run::run_tag;

/// File descriptors kept for everything that is not a bench connection.
const SPARE_FDS: u64 = 256;
/// Read buffer of a handshake: a CONNACK is 4 bytes (5.0: plus properties,
/// and the buffer grows for large ones).
const HANDSHAKE_READ: usize = 64;
/// How often the progress line is refreshed.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// How one handshake ended, sent by its task to the run.
#[derive(Debug)]
enum Outcome {
    Open {
        stream: TcpStream,
        took_ns: u64,
        /// [`Clock`] time of the CONNACK.
        at_ns: u64,
    },
    Failed(String),
}

/// What the handshakes came to. Owned by the run alone: the tasks only
/// send [`Outcome`]s, so nothing here is shared or locked.
#[derive(Debug, Default)]
struct Tally {
    connected: u64,
    failed: u64,
    last_ok_ns: u64,
    handshake: Latency,
    /// Failure messages and how often each occurred.
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn done(&self) -> u64 {
        self.connected + self.failed
    }

    fn take(&mut self, outcome: Outcome, idle: &mut Idle) {
        match outcome {
            Outcome::Open {
                stream,
                took_ns,
                at_ns,
            } => {
                self.connected += 1;
                self.last_ok_ns = self.last_ok_ns.max(at_ns);
                self.handshake.record(took_ns);
                idle.conns.push(stream);
            }
            Outcome::Failed(why) => {
                self.failed += 1;
                // The client id makes every message unique; group by the rest.
                let key = why
                    .split_once(": ")
                    .map(|(_, r)| r.to_owned())
                    .unwrap_or(why);
                *self.errors.entry(key).or_insert(0) += 1;
            }
        }
    }
}

/// The open connections, idle, and their keep alive.
struct Idle {
    conns: Vec<TcpStream>,
    /// Connections the broker closed.
    dropped: u64,
    /// Half the keep alive; `None` without keep alive.
    ping_every: Option<Duration>,
    /// Fires at the next ping sweep (never polled without keep alive).
    timer: Pin<Box<Sleep>>,
    pingreq: BytesMut,
}

impl Idle {
    fn new(opts: ClientOptions, start: Instant) -> Result<Idle, BenchError> {
        let ping_every = (opts.keep_alive > 0)
            .then(|| Duration::from_secs(u64::from(opts.keep_alive.max(2)) / 2));
        let mut pingreq = BytesMut::new();
        encode_into(&Packet::PingReq, opts.protocol, &mut pingreq, "PINGREQ")?;
        Ok(Idle {
            conns: Vec::new(),
            dropped: 0,
            ping_every,
            timer: Box::pin(tokio::time::sleep_until(
                start + ping_every.unwrap_or_default(),
            )),
            pingreq,
        })
    }

    fn pings(&self) -> bool {
        self.ping_every.is_some()
    }

    /// Waits for the next sweep and pings every connection. Cancel safe:
    /// dropped before the timer fires, it has done nothing.
    async fn tick(&mut self) {
        self.timer.as_mut().await;
        // Each connection was open at the last sweep or opened since: it
        // hears from us at most one interval after its last packet, half
        // the keep alive, as a timer per connection would do.
        self.sweep(true);
        let next = Instant::now() + self.ping_every.unwrap_or_default();
        self.timer.as_mut().reset(next);
    }

    /// Reads what the broker sent (PINGRESPs) and drops the connections it
    /// closed; with `ping`, writes a PINGREQ to each of the others.
    fn sweep(&mut self, ping: bool) {
        let pingreq = &self.pingreq[..];
        let before = self.conns.len();
        self.conns
            .retain(|s| alive(s) && (!ping || writes(s, pingreq)));
        self.dropped += (before - self.conns.len()) as u64;
    }

    /// Sleeps until `until`, pinging on the way.
    async fn idle_until(&mut self, until: Instant) {
        while Instant::now() < until {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                _ = self.tick(), if self.pings() => {}
            }
        }
    }

    /// Counts the connections the broker closed, sends DISCONNECT on the
    /// others and closes them. Returns how many the broker closed in all.
    ///
    /// After DISCONNECT it waits (up to `linger`) for the broker to close
    /// first: the side that closes first keeps the TIME_WAIT, and 10,000
    /// of them on this side would crowd the ephemeral ports the next run
    /// connects from (on loopback that slowed the next conn run by up to a
    /// third, whichever broker it measured).
    async fn release(mut self, bye: &[u8], linger: Duration) -> u64 {
        self.sweep(false);
        let dropped = self.dropped;
        // A full send buffer (the broker stopped reading) gets no
        // DISCONNECT; the close still ends the connection.
        self.conns.retain(|s| writes(s, bye));
        let until = Instant::now() + linger;
        while !self.conns.is_empty() && Instant::now() < until {
            self.conns.retain(alive);
            if !self.conns.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        dropped
    }
}

/// How long the release waits for brokers to close after DISCONNECT.
const RELEASE_LINGER: Duration = Duration::from_secs(3);

/// Drains whatever the broker sent; false once it closed the connection.
/// Reading everything also keeps the close a FIN rather than a reset.
fn alive(s: &TcpStream) -> bool {
    let mut scrap = [0u8; 64];
    loop {
        match s.try_read(&mut scrap) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
}

/// Writes a whole small packet without waiting; false if the socket is
/// broken or too full to take it (a broker that stopped reading has
/// stopped serving the connection).
fn writes(s: &TcpStream, packet: &[u8]) -> bool {
    matches!(s.try_write(packet), Ok(n) if n == packet.len())
}

/// Runs the conn scenario: its figures, the broker's CPU time over the
/// connect phase (given `--broker-pid`) and client errors.
pub async fn conn(
    cfg: &BenchConfig,
    addr: SocketAddr,
    progress: &Progress,
    clock: Clock,
) -> Result<(ConnReport, Option<BrokerCpu>, Vec<String>), BenchError> {
    let want = cfg.connections as u64 + SPARE_FDS;
    let limit = midge_sys::raise_nofile(want);
    if limit < want {
        return Err(BenchError::Options(format!(
            "{} connections need about {want} open files, but the limit is {limit}: raise `ulimit -n`",
            cfg.connections,
        )));
    }
    // Grown now, before the clock starts: grown while connecting, each
    // doubling of the table stalls the tool for an RCU grace period.
    if let Err(e) = midge_sys::reserve_fd_table(want) {
        return Err(BenchError::Options(format!(
            "cannot size the descriptor table for {want} files: {e}"
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
    let template = ConnectTemplate::new(opts)?;
    let mut bye = BytesMut::new();
    let disconnect = Packet::Disconnect(Disconnect::new(ReasonCode::Success));
    encode_into(&disconnect, opts.protocol, &mut bye, "DISCONNECT")?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let mut tally = Tally::default();
    let sem = Arc::new(Semaphore::new(cfg.concurrency));
    let cpu_meter = match cfg.broker_pid {
        Some(pid) => Some(CpuMeter::start(pid)?),
        None => None,
    };
    let start = Instant::now();
    let start_ns = clock.now_ns();
    let mut idle = Idle::new(opts, start)?;
    let open_until = tokio::time::sleep_until(start + cfg.duration);
    tokio::pin!(open_until);
    let mut attempted = 0usize;
    let mut last_progress = start;

    'open: for i in 0..cfg.connections {
        if cfg.conn_rate > 0.0 {
            let at = start + Duration::from_secs_f64(i as f64 / cfg.conn_rate);
            if at >= start + cfg.duration {
                break;
            }
            let pace = tokio::time::sleep_until(at);
            tokio::pin!(pace);
            loop {
                tokio::select! {
                    _ = &mut pace => break,
                    _ = idle.tick(), if idle.pings() => {}
                }
            }
        }
        let permit = loop {
            tokio::select! {
                p = sem.clone().acquire_owned() => break p,
                _ = &mut open_until => break 'open,
                _ = idle.tick(), if idle.pings() => {}
            }
        };
        let Ok(permit) = permit else { break };
        let mut who = String::with_capacity(24);
        let _ = write!(who, "mb{tag}-c{i}");
        let mut connect = BytesMut::with_capacity(64);
        template.encode(&who, &mut connect)?;
        let tx = tx.clone();
        let (protocol, connect_timeout) = (opts.protocol, cfg.connect_timeout);
        tokio::spawn(async move {
            let t0 = Instant::now();
            let r = tokio::time::timeout(
                connect_timeout,
                handshake(addr, &who, &connect, protocol, false, HANDSHAKE_READ),
            )
            .await;
            drop(permit);
            let outcome = match r {
                Ok(Ok(opened)) => Outcome::Open {
                    stream: opened.stream,
                    took_ns: u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX),
                    at_ns: clock.now_ns(),
                },
                Ok(Err(e)) => Outcome::Failed(e.to_string()),
                Err(_) => Outcome::Failed(format!("{who}: handshake timed out")),
            };
            // The receiver is gone only if the run itself ended early.
            let _ = tx.send(outcome);
        });
        attempted += 1;
        // Taking outcomes as they come keeps the streams out of the
        // channel's memory; it never waits.
        while let Ok(o) = rx.try_recv() {
            tally.take(o, &mut idle);
        }
        if progress.is_visible() && last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            progress.set(conn_line(&tally, attempted, cfg.connections, start));
        }
    }
    // Only the tasks hold senders now: a closed channel means all ended.
    drop(tx);

    // Every attempt ends in a CONNACK, a failure or its handshake timeout.
    let settled_by = tokio::time::sleep(cfg.connect_timeout + Duration::from_secs(1));
    tokio::pin!(settled_by);
    let mut refresh = tokio::time::interval(PROGRESS_EVERY);
    let mut lost_tasks = 0u64;
    while tally.done() < attempted as u64 {
        tokio::select! {
            o = rx.recv() => match o {
                Some(o) => tally.take(o, &mut idle),
                None => {
                    lost_tasks = attempted as u64 - tally.done();
                    break;
                }
            },
            _ = &mut settled_by => break,
            _ = idle.tick(), if idle.pings() => {}
            _ = refresh.tick(), if progress.is_visible() => {
                progress.set(conn_line(&tally, attempted, cfg.connections, start));
            }
        }
    }
    let connected = tally.connected;
    let mut errors = Vec::new();
    let broker_cpu = cpu_meter.and_then(|m| {
        m.finish(CpuPhase::Connect, connected)
            .map_err(|e| errors.push(e.to_string()))
            .ok()
    });
    let connect_secs = tally.last_ok_ns.saturating_sub(start_ns) as f64 / 1e9;
    if lost_tasks > 0 {
        errors.push(format!(
            "{} connection tasks ended without a result",
            count(lost_tasks)
        ));
    }

    progress.set(format!("{} connections open; settling", count(connected)));
    idle.idle_until(Instant::now() + cfg.settle).await;
    let rss_after = match cfg.broker_pid {
        Some(pid) => Some(vm_rss_kib(pid)?),
        None => None,
    };
    if !cfg.hold.is_zero() {
        progress.set(format!("{} connections open; holding", count(connected)));
        idle.idle_until(Instant::now() + cfg.hold).await;
    }
    progress.set("disconnecting".into());
    // Handshakes still running past the settle limit: their connections
    // close with the channel.
    rx.close();
    while let Ok(o) = rx.try_recv() {
        tally.take(o, &mut idle);
    }
    let dropped = idle.release(&bye, RELEASE_LINGER).await;
    for (why, n) in tally.errors.iter().take(10) {
        errors.push(format!("{} connections: {why}", count(*n)));
    }
    let handshake = tally.handshake.summary();
    let live = connected.saturating_sub(dropped);
    let bytes_per_connection = match (rss_before, rss_after) {
        (Some(b), Some(a)) if live > 0 => Some(a.saturating_sub(b) as f64 * 1024.0 / live as f64),
        _ => None,
    };
    let report = ConnReport {
        requested: cfg.connections,
        attempted,
        connected,
        failed: tally.failed,
        dropped,
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

fn conn_line(tally: &Tally, attempted: usize, total: usize, start: Instant) -> String {
    let secs = start.elapsed().as_secs_f64().max(1e-3);
    format!(
        "attempted {}/{}  connected {} ({} conn/s)  failed {}",
        count(attempted as u64),
        count(total as u64),
        count(tally.connected),
        rate(tally.connected as f64 / secs),
        count(tally.failed)
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn opts(keep_alive: u16) -> ClientOptions {
        ClientOptions {
            protocol: midge_proto::Protocol::V3_1_1,
            keep_alive,
            persistent: false,
        }
    }

    /// `n` connected pairs: the idle side and the accepted (broker) side.
    async fn pairs(n: usize) -> (Idle, Vec<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut idle = Idle::new(opts(2), Instant::now()).unwrap();
        let mut servers = Vec::new();
        for _ in 0..n {
            idle.conns.push(TcpStream::connect(addr).await.unwrap());
            servers.push(listener.accept().await.unwrap().0);
        }
        (idle, servers)
    }

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        tokio::time::timeout(WAIT, s.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        got
    }

    #[tokio::test]
    async fn sweep_pings_the_open_and_counts_the_closed() {
        let (mut idle, mut servers) = pairs(3).await;
        // The broker closes the second connection and answers the third
        // with a PINGRESP nobody asked for.
        drop(servers.remove(1));
        servers[1].write_all(&[0xd0, 0]).await.unwrap();
        for s in &idle.conns[1..] {
            tokio::time::timeout(WAIT, s.readable())
                .await
                .unwrap()
                .unwrap();
        }
        idle.sweep(true);
        assert_eq!((idle.conns.len(), idle.dropped), (2, 1));
        for s in &mut servers {
            assert_eq!(read_exactly(s, 2).await, [0xc0, 0]);
        }
        // Nothing new from the broker: still open, no more counted.
        idle.sweep(false);
        assert_eq!((idle.conns.len(), idle.dropped), (2, 1));
    }

    #[tokio::test]
    async fn release_sends_disconnect_then_closes() {
        let (idle, mut servers) = pairs(2).await;
        // The "broker" closes after reading DISCONNECT, as brokers do; the
        // release waits for that, then closes its side.
        let brokers = tokio::spawn(async move {
            for s in &mut servers {
                assert_eq!(read_exactly(s, 2).await, [0xe0, 0]);
            }
            drop(servers);
        });
        let t0 = Instant::now();
        assert_eq!(idle.release(&[0xe0, 0], WAIT).await, 0);
        assert!(t0.elapsed() < WAIT, "release waited for its limit");
        tokio::time::timeout(WAIT, brokers).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn release_closes_by_itself_after_the_linger() {
        let (idle, mut servers) = pairs(1).await;
        // This broker never closes: the release gives up after its linger.
        assert_eq!(idle.release(&[0xe0, 0], Duration::from_millis(50)).await, 0);
        for s in &mut servers {
            assert_eq!(read_exactly(s, 2).await, [0xe0, 0]);
            let mut rest = Vec::new();
            let n = tokio::time::timeout(WAIT, s.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 0, "a FIN after the DISCONNECT");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_every_half_keep_alive() {
        let (mut idle, mut servers) = pairs(1).await;
        let t0 = Instant::now();
        // Keep alive 2 s: pings at 1 s and 2 s; none before.
        idle.idle_until(t0 + Duration::from_millis(2_500)).await;
        assert_eq!(read_exactly(&mut servers[0], 4).await, [0xc0, 0, 0xc0, 0]);
        assert_eq!(idle.dropped, 0);
        let none = Idle::new(opts(0), t0).unwrap();
        assert!(!none.pings());
    }
}
