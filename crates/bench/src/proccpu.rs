//! The broker's CPU time over one phase of a run, read from `/proc`
//! (Linux), and what it cost per unit of work.
//!
//! The preferred source is the first field of `/proc/PID/task/TID/schedstat`
//! (nanoseconds on the CPU, per thread), summed over the threads: it has
//! nanosecond resolution, where a short connect phase of half a second is
//! only 50 ticks of `utime + stime`. Kernels without schedstat get
//! `utime + stime` of `/proc/PID/stat` (clock ticks) instead. A thread that
//! exits during the phase takes its schedstat time with it; brokers keep
//! their threads for the life of the process, so this does not matter in
//! practice, and the stat fallback (which keeps dead threads' time) has no
//! such gap.

use std::fs;
use std::time::Instant;

use serde::Serialize;

use crate::error::BenchError;

/// Where a CPU time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuSource {
    /// Sum over threads of `/proc/PID/task/*/schedstat`, field 1 (ns).
    Schedstat,
    /// `utime + stime` of `/proc/PID/stat` (clock ticks).
    Stat,
}

impl CpuSource {
    pub fn name(self) -> &'static str {
        match self {
            CpuSource::Schedstat => "schedstat",
            CpuSource::Stat => "stat",
        }
    }
}

/// The part of a run that the CPU time covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CpuPhase {
    /// conn: from the first connect to the last CONNACK.
    Connect,
    /// Message scenarios: from the first publish to the end of sending.
    Send,
}

/// One reading of a process's CPU time.
#[derive(Debug, Clone, Copy)]
pub struct CpuSample {
    pub source: CpuSource,
    /// CPU time of all threads so far, nanoseconds.
    pub cpu_ns: u64,
    pub at: Instant,
}

/// The first field of a schedstat file: time on the CPU, nanoseconds.
pub fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `utime + stime` (fields 14 and 15, clock ticks) of a `/proc/PID/stat`
/// line. The command name (field 2) is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_ticks(text: &str) -> Option<u64> {
    let (_, rest) = text.rsplit_once(')')?;
    // After the name: field 3 (state) is index 0, so field N is N - 3.
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Clock ticks to nanoseconds.
fn ticks_to_ns(ticks: u64, per_sec: u64) -> u64 {
    let ns = u128::from(ticks) * 1_000_000_000 / u128::from(per_sec.max(1));
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// The sum of the schedstat times of `pid`'s threads; `Ok(None)` when the
/// kernel has no schedstat files, an error when the process is gone.
fn schedstat_ns(pid: u32) -> Result<Option<u64>, BenchError> {
    let dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&dir).map_err(|e| BenchError::Cpu(format!("{dir}: {e}")))?;
    let mut total = 0u64;
    let mut read_any = false;
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let path = entry.path().join("schedstat");
        // A thread may exit between the listing and the read: skip it.
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let ns = parse_schedstat(&text)
            .ok_or_else(|| BenchError::Cpu(format!("{}: unexpected {text:?}", path.display())))?;
        total = total.saturating_add(ns);
        read_any = true;
    }
    Ok(read_any.then_some(total))
}

/// `utime + stime` of `pid`, in nanoseconds.
fn stat_ns(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| BenchError::Cpu(format!("{path}: {e}")))?;
    let ticks = parse_stat_ticks(&text)
        .ok_or_else(|| BenchError::Cpu(format!("{path}: no utime/stime fields")))?;
    Ok(ticks_to_ns(ticks, rustix::param::clock_ticks_per_second()))
}

/// Reads `pid`'s CPU time from `source`, or (with `None`) from schedstat if
/// the kernel has it, else from stat.
pub fn sample(pid: u32, source: Option<CpuSource>) -> Result<CpuSample, BenchError> {
    let (source, cpu_ns) = match source {
        Some(CpuSource::Stat) => (CpuSource::Stat, stat_ns(pid)?),
        Some(CpuSource::Schedstat) => match schedstat_ns(pid)? {
            Some(ns) => (CpuSource::Schedstat, ns),
            None => {
                return Err(BenchError::Cpu(format!(
                    "/proc/{pid}/task/*/schedstat: no thread readable"
                )))
            }
        },
        None => match schedstat_ns(pid)? {
            Some(ns) => (CpuSource::Schedstat, ns),
            None => (CpuSource::Stat, stat_ns(pid)?),
        },
    };
    Ok(CpuSample {
        source,
        cpu_ns,
        at: Instant::now(),
    })
}

/// Measures one phase: a reading at its start, another at its end (from
/// the same source, so that the two can be subtracted).
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: u32,
    start: CpuSample,
}

impl CpuMeter {
    /// Takes the first reading; fails if the process cannot be read.
    pub fn start(pid: u32) -> Result<CpuMeter, BenchError> {
        Ok(CpuMeter {
            pid,
            start: sample(pid, None)?,
        })
    }

    /// Takes the second reading and relates the CPU time to `work` units
    /// done in between (connections made, messages delivered).
    pub fn finish(self, phase: CpuPhase, work: u64) -> Result<BrokerCpu, BenchError> {
        let end = sample(self.pid, Some(self.start.source))?;
        Ok(BrokerCpu::between(self.pid, phase, &self.start, &end, work))
    }
}

/// The broker's CPU time over one phase of a run and what it cost per unit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BrokerCpu {
    pub pid: u32,
    pub source: CpuSource,
    pub phase: CpuPhase,
    /// Wall time between the two readings.
    pub wall_secs: f64,
    /// CPU time between the two readings, all threads.
    pub cpu_secs: f64,
    /// CPU time / wall time: 100 is one CPU busy all along (more than 100
    /// is possible for a broker with several threads on several CPUs).
    pub utilisation_pct: Option<f64>,
    /// Units of work in the phase: connections made (connect) or messages
    /// delivered (send).
    pub work: u64,
    /// CPU nanoseconds per unit of work.
    pub cpu_ns_per_work: Option<f64>,
}

impl BrokerCpu {
    /// The figures between two readings of the same source. A clock or
    /// counter going backwards (it cannot, but a stat reading can lag a
    /// schedstat one) counts as zero rather than wrapping.
    pub fn between(
        pid: u32,
        phase: CpuPhase,
        start: &CpuSample,
        end: &CpuSample,
        work: u64,
    ) -> BrokerCpu {
        let cpu_ns = end.cpu_ns.saturating_sub(start.cpu_ns);
        let wall_ns = end.at.saturating_duration_since(start.at).as_nanos() as f64;
        BrokerCpu {
            pid,
            source: start.source,
            phase,
            wall_secs: wall_ns / 1e9,
            cpu_secs: cpu_ns as f64 / 1e9,
            utilisation_pct: (wall_ns > 0.0).then(|| cpu_ns as f64 * 100.0 / wall_ns),
            work,
            cpu_ns_per_work: (work > 0).then(|| cpu_ns as f64 / work as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_schedstat_text() {
        assert_eq!(parse_schedstat("1234567 89 10\n"), Some(1_234_567));
        assert_eq!(parse_schedstat("18446744073709551615 0 0"), Some(u64::MAX));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2\n"), None);
    }

    #[test]
    fn parses_stat_text() {
        // A real line, with a command name holding spaces and a ')'.
        let line = "4242 (my (bro)ker) S 1 4242 4242 0 -1 4194560 1200 0 3 0 \
                    250 75 0 0 20 0 3 0 123456 987654 321 18446744073709551615 \
                    1 1 0 0 0 0 0 4096 0 0 0 17 0 0 0 0 0 0\n";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_ticks("no parenthesis here"), None);
        let bad = "1 (x) S 1 1 1 0 -1 0 0 0 0 0 lots 5 0 0";
        assert_eq!(parse_stat_ticks(bad), None);
    }

    #[test]
    fn converts_ticks() {
        assert_eq!(ticks_to_ns(325, 100), 3_250_000_000);
        assert_eq!(ticks_to_ns(1, 1000), 1_000_000);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ns(7, 0), 7_000_000_000);
    }

    fn at(start: Instant, ms: u64, cpu_ns: u64) -> CpuSample {
        CpuSample {
            source: CpuSource::Schedstat,
            cpu_ns,
            at: start + Duration::from_millis(ms),
        }
    }

    #[test]
    fn cost_per_unit_and_utilisation() {
        let t = Instant::now();
        // 10,000 connections in 500 ms, the broker busy 220 ms of them.
        let c = BrokerCpu::between(
            7,
            CpuPhase::Connect,
            &at(t, 0, 5_000_000),
            &at(t, 500, 225_000_000),
            10_000,
        );
        assert_eq!(
            (c.pid, c.source, c.phase),
            (7, CpuSource::Schedstat, CpuPhase::Connect)
        );
        assert!((c.wall_secs - 0.5).abs() < 1e-9, "{c:?}");
        assert!((c.cpu_secs - 0.22).abs() < 1e-9, "{c:?}");
        assert!((c.utilisation_pct.unwrap() - 44.0).abs() < 1e-9, "{c:?}");
        assert!(
            (c.cpu_ns_per_work.unwrap() - 22_000.0).abs() < 1e-9,
            "{c:?}"
        );
    }

    #[test]
    fn degenerate_phases_give_no_ratio() {
        let t = Instant::now();
        let c = BrokerCpu::between(1, CpuPhase::Send, &at(t, 0, 10), &at(t, 0, 10), 0);
        assert_eq!((c.utilisation_pct, c.cpu_ns_per_work), (None, None));
        // A counter that went backwards counts as no CPU, not 2^64 ns.
        let c = BrokerCpu::between(1, CpuPhase::Send, &at(t, 0, 10), &at(t, 100, 5), 4);
        assert_eq!(c.cpu_secs, 0.0);
        assert_eq!(c.cpu_ns_per_work, Some(0.0));
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let meter = CpuMeter::start(pid).unwrap();
        // Burn a little CPU so that the second reading is larger.
        let mut x = 0u64;
        let until = Instant::now() + Duration::from_millis(30);
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let c = meter.finish(CpuPhase::Send, 1).unwrap();
        assert!(c.cpu_secs > 0.0, "{c:?}");
        assert!(c.utilisation_pct.unwrap() > 0.0, "{c:?}");
        let s = sample(pid, Some(CpuSource::Stat)).unwrap();
        assert_eq!(s.source, CpuSource::Stat);
        assert!(CpuMeter::start(u32::MAX).is_err());
    }
}
