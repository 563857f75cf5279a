//! Telling a connection task to close (takeover, shutdown, administrative
//! disconnect) with a reason. One small allocation per connection: a
//! `Notify` and the first reason given. (A bounded channel did the same job
//! with a cache-padded half kilobyte per connection.)

use std::sync::Arc;

use midge_proto::ReasonCode;
use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    notify: Notify,
    // parking_lot: one byte read or written, never held across an await.
    reason: Mutex<Option<ReasonCode>>,
}

/// Both ends: the broker keeps a clone per live connection to kick it;
/// the connection waits on [`Kick::recv`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Kick(Arc<Inner>);

impl Kick {
    pub fn new() -> Kick {
        Kick::default()
    }

    /// Asks the connection to close with `reason`. The first reason given
    /// wins; later ones are ignored. Never blocks. (Returns a `Result` like
    /// the channel it replaced; it cannot fail.)
    pub fn try_send(&self, reason: ReasonCode) -> Result<(), ReasonCode> {
        {
            let mut r = self.0.reason.lock();
            if r.is_none() {
                *r = Some(reason);
            }
        }
        // Stores a permit if the connection is not waiting yet: no kick is
        // lost between its checks.
        self.0.notify.notify_one();
        Ok(())
    }

    /// Waits until the connection is kicked; returns the reason.
    pub async fn recv(&self) -> ReasonCode {
        loop {
            if let Some(r) = *self.0.reason.lock() {
                return r;
            }
            self.0.notify.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn first_reason_wins_and_none_is_lost() {
        let k = Kick::new();
        let waiting = k.clone();
        let t = tokio::spawn(async move { waiting.recv().await });
        // Kicked before or after the task waits: either way it wakes.
        k.try_send(ReasonCode::SessionTakenOver).unwrap();
        k.try_send(ReasonCode::ServerShuttingDown).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), t)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, ReasonCode::SessionTakenOver);
        // Kicked before anybody waits.
        let k = Kick::new();
        k.try_send(ReasonCode::AdministrativeAction).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), k.recv()).await;
        assert_eq!(got.ok(), Some(ReasonCode::AdministrativeAction));
    }

    #[tokio::test]
    async fn not_kicked_keeps_waiting() {
        let k = Kick::new();
        let r = tokio::time::timeout(Duration::from_millis(50), k.recv()).await;
        assert!(r.is_err());
    }
}
