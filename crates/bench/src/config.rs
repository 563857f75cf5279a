//! What a run does: the scenario and every knob, with each scenario's
//! defaults. The command line fills this in; tests build it directly.

use std::time::Duration;

use midge_proto::{Protocol, QoS};
use serde::Serialize;

use crate::error::BenchError;
use crate::payload::HEADER_LEN;

/// The load shapes `midge bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// N publishers on distinct topics, one subscriber on a wildcard.
    FanIn,
    /// One publisher, M subscribers on its topic.
    FanOut,
    /// N publisher/subscriber pairs on N topics.
    Pairs,
    /// A paced rate through one wildcard subscriber; latency percentiles.
    Latency,
    /// K idle connections opened at a rate: connect rate and memory.
    Conn,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::FanIn => "fan-in",
            Scenario::FanOut => "fan-out",
            Scenario::Pairs => "pairs",
            Scenario::Latency => "latency",
            Scenario::Conn => "conn",
        }
    }
}

/// Every setting of a run. [`BenchConfig::new`] gives the scenario's
/// defaults (the same as the command line's).
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub scenario: Scenario,
    /// The broker, e.g. `mqtt://127.0.0.1:1883`. All traffic goes there.
    pub url: String,
    pub protocol: Protocol,
    /// How long publishers send (or the conn scenario keeps opening).
    pub duration: Duration,
    /// Hard limit on the whole run; `None` derives one from the others.
    pub timeout: Option<Duration>,
    /// Sample this process's resident memory during the run.
    pub broker_pid: Option<u32>,
    /// Show the live progress line on stderr (only if it is a terminal).
    pub progress: bool,

    pub qos: QoS,
    /// Payload bytes per message (at least the 24-byte bench header).
    pub size: usize,
    pub publishers: usize,
    pub subscribers: usize,
    /// Messages per publisher; the run ends when all are sent (or at
    /// `duration`, whichever comes first).
    pub count: Option<u64>,
    /// Total publish rate in messages per second over all publishers.
    pub rate: Option<f64>,
    /// Publishers never wait for deliveries (no window).
    pub open_loop: bool,
    /// Closed-loop window: sent but undelivered messages allowed, in total
    /// (fan-in, latency) or per subscriber (fan-out, pairs).
    pub max_undelivered: u64,
    /// Unacknowledged QoS 1/2 messages per publisher.
    pub inflight: u16,
    /// After sending stops, how long to wait for deliveries and acks.
    pub drain: Duration,
    /// A window with no delivery for this long is forced open (see
    /// [`crate::flow`]).
    pub stall_after: Duration,
    /// Topic prefix; a unique one per run by default.
    pub topic_prefix: Option<String>,
    /// Limit on connecting (and subscribing) all clients of the run.
    pub connect_timeout: Duration,
    /// Subscribers keep their session (clean start off; 5.0: Session Expiry
    /// Interval [`PERSISTENT_EXPIRY`]), so that a durable broker stores
    /// what they are sent.
    pub persistent_subscribers: bool,

    /// conn: connections to open.
    pub connections: usize,
    /// conn: connections opened per second; 0 for as fast as possible.
    pub conn_rate: f64,
    /// conn: connection handshakes in progress at once.
    pub concurrency: usize,
    /// Keep alive of conn's idle connections, seconds.
    pub keep_alive: u16,
    /// conn: wait after the last CONNACK before reading the broker memory.
    pub settle: Duration,
    /// conn: keep the connections open this much longer.
    pub hold: Duration,
}

/// Session Expiry Interval of persistent subscribers (5.0), seconds: their
/// sessions do not pile up in the broker for long after the run.
pub const PERSISTENT_EXPIRY: u32 = 300;

impl BenchConfig {
    /// The defaults of `scenario`.
    pub fn new(scenario: Scenario) -> Self {
        let (publishers, subscribers, max_undelivered, rate) = match scenario {
            Scenario::FanIn => (10, 1, 5_000, None),
            Scenario::FanOut => (1, 100, 100, None),
            Scenario::Pairs => (10, 10, 1_000, None),
            Scenario::Latency => (1, 1, 5_000, Some(5_000.0)),
            Scenario::Conn => (0, 0, 0, None),
        };
        BenchConfig {
            scenario,
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: Protocol::V3_1_1,
            duration: Duration::from_secs(10),
            timeout: None,
            broker_pid: None,
            progress: true,
            qos: QoS::AtMostOnce,
            size: 64,
            publishers,
            subscribers,
            count: None,
            rate,
            open_loop: false,
            max_undelivered,
            inflight: 100,
            drain: Duration::from_secs(5),
            stall_after: Duration::from_secs(1),
            topic_prefix: None,
            connect_timeout: Duration::from_secs(20),
            persistent_subscribers: false,
            connections: 1_000,
            conn_rate: 1_000.0,
            concurrency: 100,
            keep_alive: 60,
            settle: Duration::from_secs(1),
            hold: Duration::ZERO,
        }
    }

    /// The limit on the whole run: the explicit one, or the sum of every
    /// phase's own limit plus a margin.
    pub fn hard_timeout(&self) -> Duration {
        self.timeout.unwrap_or_else(|| {
            let phases = match self.scenario {
                Scenario::Conn => self.duration + self.connect_timeout + self.settle + self.hold,
                _ => self.connect_timeout * 2 + self.duration + self.drain,
            };
            phases + Duration::from_secs(15)
        })
    }

    /// Refuses settings that cannot make a meaningful run.
    pub fn validate(&self) -> Result<(), BenchError> {
        let bad = |m: &str| Err(BenchError::Options(m.to_owned()));
        if self.duration.is_zero() {
            return bad("--duration must be positive");
        }
        if self.scenario == Scenario::Conn {
            if self.connections == 0 {
                return bad("--connections must be at least 1");
            }
            if self.concurrency == 0 {
                return bad("--concurrency must be at least 1");
            }
            if !(self.conn_rate >= 0.0 && self.conn_rate.is_finite()) {
                return bad("--rate must be a non-negative number");
            }
            return Ok(());
        }
        if self.publishers == 0 || self.subscribers == 0 {
            return bad("need at least one publisher and one subscriber");
        }
        if self.publishers > u32::MAX as usize {
            return bad("too many publishers");
        }
        if self.size < HEADER_LEN {
            return Err(BenchError::Options(format!(
                "--size must be at least {HEADER_LEN} bytes (the bench header)"
            )));
        }
        if let Some(r) = self.rate {
            if !(r > 0.0 && r.is_finite()) {
                return bad("--rate must be a positive number");
            }
        }
        if self.inflight == 0 {
            return bad("--inflight must be at least 1");
        }
        if !self.open_loop && self.max_undelivered == 0 {
            return bad("--max-undelivered must be at least 1 (or use --open-loop)");
        }
        if self.count == Some(0) {
            return bad("--count must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bounded() {
        for s in [
            Scenario::FanIn,
            Scenario::FanOut,
            Scenario::Pairs,
            Scenario::Latency,
            Scenario::Conn,
        ] {
            let c = BenchConfig::new(s);
            c.validate().unwrap();
            assert!(c.hard_timeout() > c.duration);
            assert!(c.hard_timeout() < Duration::from_secs(120));
        }
    }

    #[test]
    fn refuses_nonsense() {
        let mut c = BenchConfig::new(Scenario::FanIn);
        c.size = 10;
        assert!(c.validate().is_err());
        let mut c = BenchConfig::new(Scenario::FanOut);
        c.max_undelivered = 0;
        assert!(c.validate().is_err());
        c.open_loop = true;
        c.validate().unwrap();
        let mut c = BenchConfig::new(Scenario::Latency);
        c.rate = Some(-1.0);
        assert!(c.validate().is_err());
    }
}
