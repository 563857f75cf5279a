//! The broker's one background task: delayed wills, session expiry,
//! retained-message expiry and `$SYS` publishing, sleeping until the next
//! deadline.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::sys::SysState;

/// Expired retained messages are purged this often (they are already
/// skipped when matched).
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// Longest sleep, so that clock surprises heal.
const MAX_SLEEP: Duration = Duration::from_secs(5);

pub(crate) async fn run(broker: Broker, shutdown: CancellationToken) {
    let inner = &broker.inner;
    let interval = inner.config.sys_interval;
    let mut sys = SysState::default();
    let mut next_sys = (!interval.is_zero()).then(Instant::now);
    let mut next_purge = Instant::now() + PURGE_EVERY;
    loop {
        let now = Instant::now();
        inner.fire_timers(now);
        if let Some(at) = next_sys.filter(|at| *at <= now) {
            sys.publish(&broker, interval);
            // Skip ticks missed while busy rather than bursting.
            let mut next = at + interval;
            if next <= now {
                next = now + interval;
            }
            next_sys = Some(next);
        }
        if next_purge <= now {
            inner.retained.write().purge_expired(now);
            inner.persist_purge();
            next_purge = now + PURGE_EVERY;
        }
        let mut wake = (now + MAX_SLEEP).min(next_purge);
        if let Some(t) = next_sys {
            wake = wake.min(t);
        }
        if let Some(t) = inner.next_deadline() {
            wake = wake.min(t);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {}
            _ = inner.timers_changed.notified() => {}
        }
    }
}
