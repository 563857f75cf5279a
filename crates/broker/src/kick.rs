//! Telling a connection task to close (takeover, shutdown, administrative
//! disconnect) with a reason. The kick shares the connection's waker (the
//! `Notify` its session rings when messages are queued), so a connection
//! waits on one notification for both, and a kick costs one small
//! allocation: the reason. (A bounded channel did this job with a
//! cache-padded half kilobyte per connection.)

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

use midge_proto::ReasonCode;
use tokio::sync::Notify;

/// Both ends: the broker keeps a clone per live connection to kick it; the
/// connection checks [`Kick::reason`] whenever its waker fires.
#[derive(Debug, Clone)]
pub(crate) struct Kick {
    waker: Arc<Notify>,
    /// 0: not kicked; else the reason code plus one. An atomic, so that
    /// the connection can look at it on every turn of its loop for free.
    reason: Arc<AtomicU16>,
}

impl Kick {
    /// A kick that rings `waker`, the connection's own.
    pub fn new(waker: Arc<Notify>) -> Kick {
        Kick {
            waker,
            reason: Arc::default(),
        }
    }

    /// Asks the connection to close with `reason`. The first reason given
    /// wins; later ones are ignored. Never blocks. (Returns a `Result` like
    /// the channel it replaced; it cannot fail.)
    pub fn try_send(&self, reason: ReasonCode) -> Result<(), ReasonCode> {
        let code = u16::from(reason as u8) + 1;
        // Release: pairs with the Acquire in `reason`.
        let _ = self
            .reason
            .compare_exchange(0, code, Ordering::Release, Ordering::Relaxed);
        // Stores a permit if the connection is not waiting yet: no kick is
        // lost between its checks.
        self.waker.notify_one();
        Ok(())
    }

    /// The connection's waker (rung for queued messages and kicks).
    pub fn waker(&self) -> &Notify {
        &self.waker
    }

    /// The reason, once kicked.
    pub fn reason(&self) -> Option<ReasonCode> {
        match self.reason.load(Ordering::Acquire) {
            0 => None,
            code => u8::try_from(code - 1).ok().and_then(ReasonCode::from_u8),
        }
    }

    /// Waits until the connection is kicked; returns the reason. Wake-ups
    /// for queued messages are consumed on the way: only for use before
    /// the connection drains its queue (it starts by draining anyway).
    pub async fn recv(&self) -> ReasonCode {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            self.waker.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kick() -> Kick {
        Kick::new(Arc::new(Notify::new()))
    }

    #[tokio::test]
    async fn first_reason_wins_and_none_is_lost() {
        let k = kick();
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
        let k = kick();
        k.try_send(ReasonCode::AdministrativeAction).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), k.recv()).await;
        assert_eq!(got.ok(), Some(ReasonCode::AdministrativeAction));
    }

    #[tokio::test]
    async fn not_kicked_keeps_waiting() {
        let k = kick();
        // A queue wake-up is not a kick.
        k.waker.notify_one();
        let r = tokio::time::timeout(Duration::from_millis(50), k.recv()).await;
        assert!(r.is_err());
        assert_eq!(k.reason(), None);
    }
}
