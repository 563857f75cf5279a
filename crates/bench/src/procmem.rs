//! The broker's resident memory, read from `/proc/PID/status` (Linux).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::BenchError;

/// The `VmRSS` line of `/proc/PID/status`, in KiB.
pub fn vm_rss_kib(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text =
        std::fs::read_to_string(&path).map_err(|e| BenchError::Memory(format!("{path}: {e}")))?;
    parse_vm_rss(&text).ok_or_else(|| BenchError::Memory(format!("{path}: no VmRSS line")))
}

/// Finds `VmRSS:   1234 kB` in the text of a status file.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line.split_whitespace().skip(1);
    let value: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// Broker memory over a run: at the start, the highest sample, at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RssSummary {
    pub pid: u32,
    pub start_kib: u64,
    pub peak_kib: u64,
    pub end_kib: u64,
}

/// Samples a process's VmRSS every `every` until stopped, keeping the peak.
#[derive(Debug)]
pub struct RssSampler {
    pid: u32,
    start: u64,
    peak: Arc<AtomicU64>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    /// Takes the first sample now (failing if the process cannot be read)
    /// and spawns the sampling task.
    pub fn start(pid: u32, every: Duration) -> Result<RssSampler, BenchError> {
        let start = vm_rss_kib(pid)?;
        let peak = Arc::new(AtomicU64::new(start));
        let stop = CancellationToken::new();
        let task = {
            let peak = peak.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => {
                            // The broker may have died: the last good peak stands
                            // and the final reading reports the error.
                            if let Ok(kib) = vm_rss_kib(pid) {
                                peak.fetch_max(kib, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
        };
        Ok(RssSampler {
            pid,
            start,
            peak,
            stop,
            task,
        })
    }

    /// The latest peak, for the progress line.
    pub fn peak_kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Stops sampling and takes the final reading.
    pub async fn finish(self) -> Result<RssSummary, BenchError> {
        self.stop.cancel();
        let _ = self.task.await;
        let end = vm_rss_kib(self.pid)?;
        Ok(RssSummary {
            pid: self.pid,
            start_kib: self.start,
            peak_kib: self.peak.load(Ordering::Relaxed).max(end),
            end_kib: end,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_text() {
        let text = "Name:\tmosquitto\nVmPeak:\t  9000 kB\nVmRSS:\t    5432 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(text), Some(5432));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots kB\n"), None);
    }

    #[test]
    fn reads_own_process() {
        let kib = vm_rss_kib(std::process::id()).unwrap();
        assert!(kib > 0);
        assert!(vm_rss_kib(u32::MAX).is_err());
    }
}
