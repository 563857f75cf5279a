//! midge bench: a load generator for MQTT brokers, in the spirit of
//! emqtt-bench, built on midge's own codec over tokio.
//!
//! Scenarios ([`Scenario`]): fan-in, fan-out, pairs, latency (message
//! runs, see [`run`](mod@run)) and conn (idle connections, see [`conns`]).
//! Each message carries a [`payload::Stamp`]; subscribers account loss,
//! duplicates and reordering ([`accounting`]) and end-to-end latency
//! ([`latency`]). [`execute`] runs one configured scenario and returns its
//! [`Report`]; [`run`](fn@run) is the `midge bench` command.

// Unit tests assert with unwrap: a panic is the failure report there.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accounting;
pub mod cli;
pub mod client;
pub mod config;
pub mod conns;
pub mod error;
pub mod flow;
pub mod latency;
pub mod payload;
pub mod plan;
pub mod proccpu;
pub mod procmem;
pub mod progress;
pub mod publisher;
pub mod report;
pub mod run;
pub mod subscriber;
pub mod target;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use config::{BenchConfig, Scenario};
pub use error::BenchError;
pub use report::Report;

use payload::Clock;
use procmem::RssSampler;
use progress::Progress;
use target::Target;

/// How often the broker's memory is sampled during a message run.
const RSS_EVERY: Duration = Duration::from_millis(100);

/// Entry point of `midge bench ARGS...`; returns the process exit code:
/// 0 after a run (whatever it measured), 1 when the run failed or a client
/// hit an error, 2 for bad arguments.
pub fn run(args: Vec<OsString>) -> i32 {
    let parsed = match cli::parse(args) {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("midge bench: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let progress = Arc::new(Progress::new(parsed.config.progress && !parsed.quiet));
    let config = parsed.config;
    let run_progress = progress.clone();
    // The run goes on a worker thread: driven by block_on from the main
    // thread, every wake-up between the run and its connection tasks
    // crossed threads (a futex call and a context switch each, 8% of the
    // conn scenario's CPU on one core).
    let outcome = runtime.block_on(async move {
        tokio::spawn(async move { execute_with(&config, &run_progress).await })
            .await
            .unwrap_or_else(|e| Err(BenchError::Task(e.to_string())))
    });
    progress.finish();
    match outcome {
        Ok(report) => {
            if parsed.json {
                match serde_json::to_string(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("midge bench: cannot write JSON: {e}");
                        return 1;
                    }
                }
            } else {
                print!("{}", report.table());
            }
            if report.errors.is_empty() {
                0
            } else {
                1
            }
        }
        Err(e) => {
            if parsed.json {
                println!("{}", serde_json::json!({ "error": e.to_string() }));
            }
            eprintln!("midge bench: {e}");
            match e {
                BenchError::Options(_) | BenchError::Target(_) => 2,
                _ => 1,
            }
        }
    }
}

/// Runs one scenario without a progress line. Must be called inside a
/// tokio runtime with time and I/O enabled.
pub async fn execute(cfg: &BenchConfig) -> Result<Report, BenchError> {
    execute_with(cfg, &Progress::hidden()).await
}

/// Runs one scenario, bounded by its hard timeout.
pub async fn execute_with(cfg: &BenchConfig, progress: &Progress) -> Result<Report, BenchError> {
    cfg.validate()?;
    let target = Target::parse(&cfg.url)?;
    let limit = cfg.hard_timeout();
    match tokio::time::timeout(limit, execute_inner(cfg, &target, progress)).await {
        Ok(r) => r,
        Err(_) => Err(BenchError::Timeout {
            what: format!("the {} run (hard timeout)", cfg.scenario.name()),
            secs: limit.as_secs_f64(),
        }),
    }
}

async fn execute_inner(
    cfg: &BenchConfig,
    target: &Target,
    progress: &Progress,
) -> Result<Report, BenchError> {
    let addr = resolve(target).await?;
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let clock = Clock::new();
    let mut report = Report {
        scenario: cfg.scenario.name(),
        url: target.to_string(),
        protocol: cli::protocol_name(cfg.protocol),
        started_unix_ms,
        traffic: None,
        conn: None,
        broker_rss: None,
        broker_cpu: None,
        errors: Vec::new(),
    };
    match cfg.scenario {
        Scenario::Conn => {
            let (c, cpu, errors) = conns::conn(cfg, addr, progress, clock).await?;
            report.conn = Some(c);
            report.broker_cpu = cpu;
            report.errors = summarize(errors);
        }
        _ => {
            let sampler = match cfg.broker_pid {
                Some(pid) => Some(RssSampler::start(pid, RSS_EVERY)?),
                None => None,
            };
            let (t, cpu, errors) = run::traffic(cfg, addr, progress, clock).await?;
            report.traffic = Some(t);
            report.broker_cpu = cpu;
            report.errors = summarize(errors);
            if let Some(s) = sampler {
                match s.finish().await {
                    Ok(r) => report.broker_rss = Some(r),
                    Err(e) => report.errors.push(e.to_string()),
                }
            }
        }
    }
    Ok(report)
}

/// The first address of the target; every connection of the run uses it.
async fn resolve(target: &Target) -> Result<SocketAddr, BenchError> {
    let resolve_err = |source| BenchError::Resolve {
        host: target.host.clone(),
        port: target.port,
        source,
    };
    let mut addrs = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(resolve_err)?;
    addrs.next().ok_or_else(|| {
        resolve_err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })
}

/// Keeps the first few distinct client errors and says how many there were.
fn summarize(mut errors: Vec<String>) -> Vec<String> {
    const KEEP: usize = 5;
    let total = errors.len();
    errors.dedup();
    if errors.len() > KEEP {
        errors.truncate(KEEP);
        errors.push(format!("({total} client errors in all)"));
    }
    errors
}
