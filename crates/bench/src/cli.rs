//! The `midge bench` command line: one subcommand per scenario, shared
//! option groups, each scenario's own defaults.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use midge_proto::{Protocol, QoS};

use crate::config::{BenchConfig, Scenario};

#[derive(Debug, Parser)]
#[command(
    name = "midge bench",
    about = "Load-test an MQTT broker with midge's own codec",
    long_about = "Load-test an MQTT broker with midge's own codec.\n\n\
        Every message carries (publisher, sequence, send time); subscribers \
        count lost, duplicated and out-of-order messages and end-to-end \
        latency. A progress line goes to stderr on a terminal; the summary \
        (or one JSON object with --json) goes to stdout.",
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    scenario: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// N publishers on distinct topics -> one subscriber on a wildcard.
    FanIn(FanIn),
    /// One publisher -> M subscribers on its topic.
    FanOut(FanOut),
    /// N publisher/subscriber pairs, each on its own topic.
    Pairs(Pairs),
    /// A paced publish rate; end-to-end latency percentiles.
    Latency(LatencyCmd),
    /// Open K idle connections at a rate; connect rate and broker memory.
    Conn(ConnCmd),
}

/// Options of every scenario.
#[derive(Debug, Args)]
struct Common {
    /// The broker (mqtt://host:port; mqtts:// and ws:// are not supported yet).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    url: String,
    /// How long to send (e.g. 10s, 500ms, 2m).
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Hard limit on the whole run (default: derived from the other limits).
    #[arg(long, value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Limit on connecting and subscribing all clients.
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// MQTT version: 3.1, 3.1.1 or 5.
    #[arg(short = 'V', long = "protocol", default_value = "3.1.1", value_parser = parse_protocol)]
    protocol: Protocol,
    /// Sample this process's resident memory (/proc/PID/status) during the run.
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
    /// Print one JSON object instead of the summary table.
    #[arg(long)]
    json: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// Options of the message scenarios.
#[derive(Debug, Args)]
struct Messages {
    /// QoS of publishes and subscriptions.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Payload size in bytes (at least 24).
    #[arg(short = 's', long, default_value_t = 64)]
    size: usize,
    /// Messages per publisher (the run still ends at --duration).
    #[arg(short = 'n', long)]
    count: Option<u64>,
    /// Publishers never wait for deliveries (overload mode).
    #[arg(long)]
    open_loop: bool,
    /// Unacknowledged QoS 1/2 messages per publisher (capped by a 5.0
    /// broker's Receive Maximum; mosquitto closes 3.1.1 clients with more
    /// than 20 unreleased QoS 2 publishes).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    inflight: u16,
    /// After sending, how long to wait for deliveries and acks.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    drain: Duration,
    /// Force a closed-loop window open after this long without deliveries.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    stall_after: Duration,
    /// Topic prefix (default: midge-bench/<unique run tag>).
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Subscribers keep their sessions (clean start off; 5.0: Session
    /// Expiry Interval 300 s), so that a durable broker stores their
    /// messages.
    #[arg(long)]
    persistent: bool,
}

#[derive(Debug, Args)]
struct FanIn {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    messages: Messages,
    /// Publishers.
    #[arg(short = 'c', long, default_value_t = 10)]
    publishers: usize,
    /// Closed loop: publishers pause while this many messages are undelivered in total.
    #[arg(long, default_value_t = 5_000)]
    max_undelivered: u64,
    /// Total publish rate, msg/s (default: as fast as the window allows).
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, Args)]
struct FanOut {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    messages: Messages,
    /// Subscribers.
    #[arg(short = 'c', long, default_value_t = 100)]
    subscribers: usize,
    /// Closed loop: the publisher pauses while the slowest subscriber lacks this many.
    #[arg(long, default_value_t = 100)]
    max_undelivered: u64,
    /// Publish rate, msg/s (default: as fast as the window allows).
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, Args)]
struct Pairs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    messages: Messages,
    /// Publisher/subscriber pairs.
    #[arg(short = 'c', long, default_value_t = 10)]
    pairs: usize,
    /// Closed loop: each publisher pauses while its subscriber lacks this many.
    #[arg(long, default_value_t = 1_000)]
    max_undelivered: u64,
    /// Total publish rate, msg/s (default: as fast as the windows allow).
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Debug, Args)]
struct LatencyCmd {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    messages: Messages,
    /// Publishers (all heard by one wildcard subscriber).
    #[arg(short = 'c', long, default_value_t = 1)]
    publishers: usize,
    /// Total publish rate, msg/s.
    #[arg(long, default_value_t = 5_000.0)]
    rate: f64,
    /// Closed-loop window, as in fan-in.
    #[arg(long, default_value_t = 5_000)]
    max_undelivered: u64,
}

#[derive(Debug, Args)]
struct ConnCmd {
    #[command(flatten)]
    common: Common,
    /// Connections to open.
    #[arg(short = 'c', long, default_value_t = 1_000)]
    connections: usize,
    /// Connections per second (0: as fast as --concurrency allows).
    #[arg(long, default_value_t = 1_000.0)]
    rate: f64,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 100)]
    concurrency: usize,
    /// Keep alive of the idle connections, seconds.
    #[arg(long, default_value_t = 60)]
    keep_alive: u16,
    /// Wait after the last CONNACK before reading the broker's memory.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    settle: Duration,
    /// Keep the connections open this much longer.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    hold: Duration,
}

/// A parsed command line.
#[derive(Debug)]
pub struct Parsed {
    pub config: BenchConfig,
    pub json: bool,
    pub quiet: bool,
}

/// Parses `midge bench ARGS...` (args[0] is the program name).
pub fn parse(args: Vec<OsString>) -> Result<Parsed, clap::Error> {
    let cli = Cli::try_parse_from(args)?;
    let (common, cfg) = match cli.scenario {
        Command::FanIn(a) => {
            let mut c = with_messages(Scenario::FanIn, &a.messages);
            c.publishers = a.publishers;
            c.max_undelivered = a.max_undelivered;
            c.rate = a.rate;
            (a.common, c)
        }
        Command::FanOut(a) => {
            let mut c = with_messages(Scenario::FanOut, &a.messages);
            c.subscribers = a.subscribers;
            c.max_undelivered = a.max_undelivered;
            c.rate = a.rate;
            (a.common, c)
        }
        Command::Pairs(a) => {
            let mut c = with_messages(Scenario::Pairs, &a.messages);
            c.publishers = a.pairs;
            c.subscribers = a.pairs;
            c.max_undelivered = a.max_undelivered;
            c.rate = a.rate;
            (a.common, c)
        }
        Command::Latency(a) => {
            let mut c = with_messages(Scenario::Latency, &a.messages);
            c.publishers = a.publishers;
            c.rate = Some(a.rate);
            c.max_undelivered = a.max_undelivered;
            (a.common, c)
        }
        Command::Conn(a) => {
            let mut c = BenchConfig::new(Scenario::Conn);
            c.connections = a.connections;
            c.conn_rate = a.rate;
            c.concurrency = a.concurrency;
            c.keep_alive = a.keep_alive;
            c.settle = a.settle;
            c.hold = a.hold;
            (a.common, c)
        }
    };
    let mut config = cfg;
    config.url = common.url;
    config.duration = common.duration;
    config.timeout = common.timeout;
    config.connect_timeout = common.connect_timeout;
    config.protocol = common.protocol;
    config.broker_pid = common.broker_pid;
    config.progress = !common.quiet;
    Ok(Parsed {
        config,
        json: common.json,
        quiet: common.quiet,
    })
}

fn with_messages(scenario: Scenario, m: &Messages) -> BenchConfig {
    let mut c = BenchConfig::new(scenario);
    c.qos = QoS::from_u8(m.qos).unwrap_or_default();
    c.size = m.size;
    c.count = m.count;
    c.open_loop = m.open_loop;
    c.inflight = m.inflight;
    c.drain = m.drain;
    c.stall_after = m.stall_after;
    c.topic_prefix = m.topic_prefix.clone();
    c.persistent_subscribers = m.persistent;
    c
}

/// `10`, `10s`, `1.5s`, `500ms`, `2m` as a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 10s, 500ms, 2m)"))?;
    if !(v >= 0.0 && v.is_finite()) {
        return Err(format!("'{s}' is not a non-negative duration"));
    }
    Duration::try_from_secs_f64(v * scale).map_err(|e| format!("'{s}': {e}"))
}

fn parse_protocol(s: &str) -> Result<Protocol, String> {
    match s {
        "3.1" | "3" => Ok(Protocol::V3_1),
        "3.1.1" | "4" => Ok(Protocol::V3_1_1),
        "5" | "5.0" => Ok(Protocol::V5),
        _ => Err(format!("unknown MQTT version '{s}' (use 3.1, 3.1.1 or 5)")),
    }
}

/// The protocol's usual name.
pub fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::V3_1 => "3.1",
        Protocol::V3_1_1 => "3.1.1",
        Protocol::V5 => "5.0",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<OsString> {
        std::iter::once("midge bench")
            .chain(s.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn fan_in_options() {
        let p = parse(args(
            "fan-in --url mqtt://127.0.0.1:1999 -c 50 -q 1 --inflight 20 -d 2s --json --quiet",
        ))
        .unwrap();
        let c = p.config;
        assert_eq!(c.scenario, Scenario::FanIn);
        assert_eq!(c.publishers, 50);
        assert_eq!(c.qos, QoS::AtLeastOnce);
        assert_eq!(c.inflight, 20);
        assert_eq!(c.max_undelivered, 5_000);
        assert_eq!(c.duration, Duration::from_secs(2));
        assert!(p.json && p.quiet && !c.progress);
        assert!(!c.persistent_subscribers);
        let p = parse(args("fan-in -q 1 --persistent")).unwrap();
        assert!(p.config.persistent_subscribers);
    }

    #[test]
    fn scenario_defaults_differ() {
        let c = parse(args("fan-out")).unwrap().config;
        assert_eq!(
            (c.publishers, c.subscribers, c.max_undelivered),
            (1, 100, 100)
        );
        let c = parse(args("latency -V 5")).unwrap().config;
        assert_eq!(c.rate, Some(5_000.0));
        assert_eq!(c.protocol, Protocol::V5);
        let c = parse(args("pairs -c 7 --open-loop")).unwrap().config;
        assert_eq!((c.publishers, c.subscribers, c.open_loop), (7, 7, true));
        let c = parse(args("conn -c 10000 --rate 0 --broker-pid 42"))
            .unwrap()
            .config;
        assert_eq!(
            (c.connections, c.conn_rate, c.broker_pid),
            (10_000, 0.0, Some(42))
        );
    }

    #[test]
    fn rejects_bad_arguments() {
        assert!(parse(args("fan-in -q 3")).is_err());
        assert!(parse(args("nope")).is_err());
        assert!(parse(args("fan-in --inflight 0")).is_err());
    }
}
