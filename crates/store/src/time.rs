//! Wall-clock time as the store keeps it: UNIX seconds and milliseconds
//! (a monotonic `Instant` does not survive a restart).

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in UNIX milliseconds (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Now, in UNIX seconds.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}
