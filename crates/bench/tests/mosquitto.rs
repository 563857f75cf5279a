//! End-to-end: midge bench against Debian's mosquitto on a free loopback
//! port. Skipped, with the reason printed, when mosquitto is not installed.

// A panic is the failure report in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use midge_bench::proccpu::CpuPhase;
use midge_bench::{execute, BenchConfig, BenchError, Scenario};
use midge_proto::QoS;

/// A mosquitto child process, killed (by its own PID) when dropped.
struct Mosquitto {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_mosquitto() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts mosquitto and waits (bounded) until it accepts connections.
fn start(bin: &Path, name: &str) -> Mosquitto {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("midge-bench-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    // An unbounded queue: these tests check our accounting, not the broker's
    // drop policy (its default of 1,000 queued QoS 1 messages drops some).
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
             max_queued_messages 0\nlog_dest none\n"
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn mosquitto");
    let m = Mosquitto { child, port, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "mosquitto did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}

fn config(scenario: Scenario, port: u16) -> BenchConfig {
    let mut c = BenchConfig::new(scenario);
    c.url = format!("mqtt://127.0.0.1:{port}");
    c.progress = false;
    c.duration = Duration::from_millis(1500);
    c.drain = Duration::from_secs(5);
    c.stall_after = Duration::from_secs(3);
    c.timeout = Some(Duration::from_secs(30));
    c
}

macro_rules! mosquitto_or_skip {
    ($name:expr) => {
        match find_mosquitto() {
            Some(bin) => start(&bin, $name),
            None => {
                eprintln!("skipping: mosquitto is not installed");
                return;
            }
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_in_qos1_loses_nothing() {
    let broker = mosquitto_or_skip!("fanin");
    let mut c = config(Scenario::FanIn, broker.port);
    c.qos = QoS::AtLeastOnce;
    c.publishers = 4;
    c.inflight = 20;
    c.max_undelivered = 1_000;
    c.broker_pid = Some(broker.child.id());
    let r = execute(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let t = r.traffic.expect("traffic figures");
    assert!(t.sent > 100, "{t:?}");
    assert_eq!(t.expected, t.sent);
    assert_eq!(t.delivered, t.sent, "{t:?}");
    assert_eq!((t.lost, t.duplicated, t.foreign), (0, 0, 0), "{t:?}");
    assert_eq!(t.acked, t.sent);
    assert!(t.delivered_per_sec > 0.0);
    let rss = r.broker_rss.expect("broker memory");
    assert!(rss.start_kib > 0 && rss.peak_kib >= rss.start_kib);
    let cpu = r.broker_cpu.expect("broker CPU");
    assert_eq!(cpu.phase, CpuPhase::Send);
    assert!(cpu.work > 0 && cpu.work <= t.delivered, "{cpu:?}");
    assert!(cpu.cpu_secs > 0.0 && cpu.wall_secs > 0.0, "{cpu:?}");
    assert_eq!(t.broker_cpu_ns_per_message, cpu.cpu_ns_per_work);
    assert!(t.broker_cpu_ns_per_message.unwrap() > 0.0);
    assert_eq!(t.broker_cpu_pct, cpu.utilisation_pct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_measured_at_a_paced_rate() {
    let broker = mosquitto_or_skip!("latency");
    let mut c = config(Scenario::Latency, broker.port);
    c.duration = Duration::from_secs(1);
    c.rate = Some(2_000.0);
    let r = execute(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let t = r.traffic.expect("traffic figures");
    // Paced: about 2,000 in one second (timer granularity allows slack).
    assert!((1_500..=2_600).contains(&t.sent), "{t:?}");
    assert_eq!(t.lost, 0, "{t:?}");
    let l = t.latency.expect("latency");
    assert_eq!(l.samples, t.delivered);
    assert!(l.p50_us > 0.0 && l.p99_us >= l.p50_us && l.max_us >= l.p999_us);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_qos2_and_idle_connections() {
    let broker = mosquitto_or_skip!("fanout");
    let mut c = config(Scenario::FanOut, broker.port);
    c.qos = QoS::ExactlyOnce;
    // mosquitto closes a 3.1.1 client with more than its 20 (default
    // max_inflight_messages) incoming QoS 2 messages unreleased.
    c.inflight = 10;
    c.subscribers = 3;
    c.duration = Duration::from_secs(1);
    let r = execute(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let t = r.traffic.expect("traffic figures");
    assert!(t.sent > 10, "{t:?}");
    assert_eq!(t.expected, 3 * t.sent);
    assert_eq!(
        (t.delivered, t.lost, t.duplicated),
        (3 * t.sent, 0, 0),
        "{t:?}"
    );

    let mut c = config(Scenario::Conn, broker.port);
    c.connections = 200;
    c.conn_rate = 0.0;
    c.settle = Duration::from_millis(200);
    c.broker_pid = Some(broker.child.id());
    let r = execute(&c).await.expect("run");
    let k = r.conn.expect("conn figures");
    assert_eq!((k.connected, k.failed, k.dropped), (200, 0, 0), "{k:?}");
    assert!(k.connects_per_sec > 0.0);
    assert!(k.bytes_per_connection.is_some());
    assert_eq!(k.handshake.expect("handshakes").samples, 200);
    let cpu = r.broker_cpu.expect("broker CPU");
    assert_eq!((cpu.phase, cpu.work), (CpuPhase::Connect, 200), "{cpu:?}");
    let per = k.broker_cpu_us_per_connection.expect("CPU per connection");
    assert!(per > 0.0 && per < 10_000.0, "{k:?}");
    assert!(k.broker_cpu_pct.is_some());
}

/// Idle connections outlive the broker's keep alive check (1.5 times the
/// keep alive without a packet; mosquitto checks about once a second, so
/// it closed silent clients after 3 to 5 s) only if the pings go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_kept_alive() {
    let broker = mosquitto_or_skip!("keepalive");
    let mut c = config(Scenario::Conn, broker.port);
    c.connections = 50;
    c.conn_rate = 0.0;
    c.keep_alive = 2;
    c.settle = Duration::from_millis(100);
    c.hold = Duration::from_secs(7);
    let r = execute(&c).await.expect("run");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    let k = r.conn.expect("conn figures");
    assert_eq!((k.connected, k.dropped), (50, 0), "{k:?}");
}

#[tokio::test]
async fn unsupported_transport_is_refused() {
    let mut c = BenchConfig::new(Scenario::FanIn);
    c.url = "ws://127.0.0.1:8080/mqtt".into();
    match execute(&c).await {
        Err(BenchError::Target(e)) => assert!(e.to_string().contains("not supported")),
        other => panic!("expected an unsupported-transport error, got {other:?}"),
    }
}
