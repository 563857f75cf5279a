//! What a run measured: the JSON object of `--json` and the summary table.

use std::fmt::Write;

use serde::Serialize;

use crate::latency::LatencySummary;
use crate::proccpu::{BrokerCpu, CpuPhase};
use crate::procmem::RssSummary;

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub url: String,
    pub protocol: &'static str,
    /// Wall clock start, milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub traffic: Option<TrafficReport>,
    pub conn: Option<ConnReport>,
    /// The broker's resident memory, given `--broker-pid`.
    pub broker_rss: Option<RssSummary>,
    /// The broker's CPU time over the measured phase (conn: connecting;
    /// message scenarios: sending), given `--broker-pid`.
    pub broker_cpu: Option<BrokerCpu>,
    /// Failures of individual clients (the first few, with a count).
    pub errors: Vec<String>,
}

/// Figures of the message scenarios (fan-in, fan-out, pairs, latency).
#[derive(Debug, Clone, Serialize)]
pub struct TrafficReport {
    pub publishers: usize,
    pub subscribers: usize,
    pub qos: u8,
    pub payload_bytes: usize,
    pub open_loop: bool,
    /// The closed-loop window, when not open loop.
    pub max_undelivered: Option<u64>,
    pub inflight: Option<u16>,
    /// Target total publish rate, when paced.
    pub target_rate: Option<f64>,
    /// From the first send to the last write of a publisher.
    pub send_secs: f64,
    pub sent: u64,
    pub sent_per_sec: f64,
    /// Deliveries owed: each message times the subscribers that should get it.
    pub expected: u64,
    /// Distinct messages delivered (duplicates not counted).
    pub delivered: u64,
    /// From the first send to the last delivery.
    pub deliver_secs: f64,
    pub delivered_per_sec: f64,
    /// Deliveries owed that never happened (`expected - delivered`).
    pub lost: u64,
    /// The part of `lost` skipped over by later messages of the same
    /// publisher: dropped by the broker.
    pub lost_in_gaps: u64,
    /// The rest: after the last message that arrived from its publisher;
    /// dropped, or still queued when the drain time ran out.
    pub lost_at_end: u64,
    pub lost_pct: f64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// PUBLISH packets without this run's bench payload.
    pub foreign: u64,
    /// QoS 1/2 publishes acknowledged; and refused by the broker.
    pub acked: u64,
    pub rejected: u64,
    /// Times a closed-loop window stayed shut with no delivery for the stall
    /// time and was forced open (non-zero means the broker lost messages or
    /// stopped delivering).
    pub window_stalls: u64,
    pub latency: Option<LatencySummary>,
    /// Broker CPU nanoseconds per message delivered during the send phase
    /// (given `--broker-pid`).
    pub broker_cpu_ns_per_message: Option<f64>,
    /// Broker CPU time / wall time over the send phase, percent of one CPU.
    pub broker_cpu_pct: Option<f64>,
}

/// Figures of the conn scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ConnReport {
    pub requested: usize,
    pub attempted: usize,
    pub connected: u64,
    pub failed: u64,
    /// Connections the broker closed while they were idle.
    pub dropped: u64,
    pub keep_alive: u16,
    pub target_rate: Option<f64>,
    /// From the first attempt to the last successful CONNACK.
    pub connect_secs: f64,
    pub connects_per_sec: f64,
    /// TCP connect + CONNECT/CONNACK handshake time.
    pub handshake: Option<LatencySummary>,
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// Broker memory growth divided by the connections open.
    pub bytes_per_connection: Option<f64>,
    /// Broker CPU microseconds per connection made, from the first connect
    /// to the last CONNACK (given `--broker-pid`).
    pub broker_cpu_us_per_connection: Option<f64>,
    /// Broker CPU time / wall time over the connect phase, percent of one CPU.
    pub broker_cpu_pct: Option<f64>,
}

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A rate with thousands separators and one decimal below 100.
pub fn rate(per_sec: f64) -> String {
    if per_sec < 100.0 {
        format!("{per_sec:.1}")
    } else {
        count(per_sec.round() as u64)
    }
}

/// Microseconds in the unit that suits them.
pub fn micros(us: f64) -> String {
    if us < 1_000.0 {
        format!("{us:.0} µs")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1_000.0)
    } else {
        format!("{:.2} s", us / 1_000_000.0)
    }
}

/// KiB in MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn latency_line(out: &mut String, label: &str, l: &Option<LatencySummary>) {
    if let Some(l) = l {
        let _ = writeln!(
            out,
            "  {label:<14}p50 {}  p99 {}  p99.9 {}  max {}  (n={})",
            micros(l.p50_us),
            micros(l.p99_us),
            micros(l.p999_us),
            micros(l.max_us),
            count(l.samples)
        );
    }
}

/// Nanoseconds in the unit that suits them.
pub fn nanos(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 100_000.0 {
        format!("{:.1} µs", ns / 1_000.0)
    } else {
        micros(ns / 1_000.0)
    }
}

fn cpu_line(out: &mut String, c: &BrokerCpu) {
    let (per, phase) = match c.phase {
        CpuPhase::Connect => ("connection", "connect phase"),
        CpuPhase::Send => ("delivered message", "send phase"),
    };
    let cost = c
        .cpu_ns_per_work
        .map(|ns| format!("{} per {per}", nanos(ns)))
        .unwrap_or_else(|| format!("n/a (no {per})"));
    let busy = c
        .utilisation_pct
        .map(|p| format!("{p:.0}% of a CPU"))
        .unwrap_or_else(|| "n/a".into());
    let _ = writeln!(
        out,
        "  {:<14}{cost}, {busy} ({:.3} s CPU over the {:.2} s {phase}; pid {}, {})",
        "broker CPU",
        c.cpu_secs,
        c.wall_secs,
        c.pid,
        c.source.name()
    );
}

impl Report {
    /// The human summary printed at the end of a run.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "midge bench {} -> {} (MQTT {})",
            self.scenario, self.url, self.protocol
        );
        if let Some(t) = &self.traffic {
            let lp = match (t.open_loop, t.max_undelivered) {
                (true, _) | (false, None) => "open loop".to_owned(),
                (false, Some(m)) => format!("closed loop, max {} undelivered", count(m)),
            };
            let paced = t
                .target_rate
                .map(|r| format!(", paced at {} msg/s", rate(r)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {:<14}{} pub -> {} sub, QoS {}, {} B payload, {lp}{paced}",
                "setup", t.publishers, t.subscribers, t.qos, t.payload_bytes
            );
            let _ = writeln!(
                o,
                "  {:<14}{:>14} msg  {:>12} msg/s  over {:.2} s",
                "sent",
                count(t.sent),
                rate(t.sent_per_sec),
                t.send_secs
            );
            let _ = writeln!(
                o,
                "  {:<14}{:>14} msg  {:>12} msg/s  over {:.2} s  (expected {})",
                "delivered",
                count(t.delivered),
                rate(t.delivered_per_sec),
                t.deliver_secs,
                count(t.expected)
            );
            let _ = writeln!(
                o,
                "  {:<14}{} ({:.3}%)   duplicated {}   out of order {}",
                "lost",
                count(t.lost),
                t.lost_pct,
                count(t.duplicated),
                count(t.out_of_order)
            );
            if t.lost > 0 {
                let _ = writeln!(
                    o,
                    "  {:<14}{} skipped (dropped), {} after the last arrival (dropped or still queued)",
                    "",
                    count(t.lost_in_gaps),
                    count(t.lost_at_end)
                );
            }
            if t.qos > 0 {
                let _ = writeln!(
                    o,
                    "  {:<14}{} acked, {} refused",
                    "acks",
                    count(t.acked),
                    count(t.rejected)
                );
            }
            if t.window_stalls > 0 || t.foreign > 0 {
                let _ = writeln!(
                    o,
                    "  {:<14}{} window stalls, {} foreign messages",
                    "anomalies",
                    count(t.window_stalls),
                    count(t.foreign)
                );
            }
            latency_line(&mut o, "latency", &t.latency);
        }
        if let Some(c) = &self.conn {
            let _ = writeln!(
                o,
                "  {:<14}{} of {} connected, {} failed, {} dropped (keep alive {} s)",
                "connections",
                count(c.connected),
                count(c.requested as u64),
                count(c.failed),
                count(c.dropped),
                c.keep_alive
            );
            let _ = writeln!(
                o,
                "  {:<14}{} conn/s over {:.2} s",
                "connect rate",
                rate(c.connects_per_sec),
                c.connect_secs
            );
            latency_line(&mut o, "handshake", &c.handshake);
            if let (Some(b), Some(a)) = (c.rss_before_kib, c.rss_after_kib) {
                let per = c
                    .bytes_per_connection
                    .map(|x| format!("{:.0} B per connection", x))
                    .unwrap_or_else(|| "n/a".into());
                let _ = writeln!(o, "  {:<14}{} -> {}: {per}", "broker RSS", mib(b), mib(a));
            }
        }
        if let Some(r) = &self.broker_rss {
            let _ = writeln!(
                o,
                "  {:<14}start {}  peak {}  end {}  (pid {})",
                "broker RSS",
                mib(r.start_kib),
                mib(r.peak_kib),
                mib(r.end_kib),
                r.pid
            );
        }
        if let Some(c) = &self.broker_cpu {
            cpu_line(&mut o, c);
        }
        for e in &self.errors {
            let _ = writeln!(o, "  error: {e}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rate(12.345), "12.3");
        assert_eq!(rate(123_456.7), "123,457");
        assert_eq!(micros(12.4), "12 µs");
        assert_eq!(micros(1_500.0), "1.50 ms");
        assert_eq!(micros(2_500_000.0), "2.50 s");
        assert_eq!(mib(2048), "2.0 MiB");
        assert_eq!(nanos(850.4), "850 ns");
        assert_eq!(nanos(22_140.0), "22.1 µs");
        assert_eq!(nanos(2_500_000.0), "2.50 ms");
    }

    #[test]
    fn summary_shows_broker_cpu() {
        let report = Report {
            scenario: "conn",
            url: "mqtt://127.0.0.1:1883".into(),
            protocol: "3.1.1",
            started_unix_ms: 0,
            traffic: None,
            conn: None,
            broker_rss: None,
            broker_cpu: Some(BrokerCpu {
                pid: 42,
                source: crate::proccpu::CpuSource::Schedstat,
                phase: CpuPhase::Connect,
                wall_secs: 0.5,
                cpu_secs: 0.22,
                utilisation_pct: Some(44.0),
                work: 10_000,
                cpu_ns_per_work: Some(22_000.0),
            }),
            errors: Vec::new(),
        };
        let text = report.table();
        assert!(
            text.contains("broker CPU    22.0 µs per connection, 44% of a CPU"),
            "{text}"
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["broker_cpu"]["phase"], "connect");
        assert_eq!(json["broker_cpu"]["source"], "schedstat");
        assert_eq!(json["broker_cpu"]["cpu_ns_per_work"], 22_000.0);
    }
}
