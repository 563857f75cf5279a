//! Telling a connection task to close (takeover, shutdown, administrative
//! disconnect) with a reason. The kick is also the connection's waker (rung
//! by its session when messages are queued), so a connection waits on one
//! signal for both, and both live in one small allocation per connection.
//! (A bounded channel did this job with a cache-padded half kilobyte per
//! connection; a `Notify` costs a 64-byte `Notified` future in every
//! connection task, where only one task ever waits: a waker slot will do.)

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use midge_proto::ReasonCode;

#[derive(Debug, Default)]
struct Shared {
    /// The connection task, when it waits.
    waker: AtomicWaker,
    /// A wake-up not yet seen (queued messages or a kick). Several collapse
    /// into one: the connection drains everything when it wakes.
    woken: AtomicBool,
    /// 0: not kicked; else the reason code plus one. An atomic, so that
    /// the connection can look at it on every turn of its loop for free.
    reason: AtomicU16,
}

/// A connection's waker and kick, shared by the connection task, its
/// session (to wake it for queued messages) and the broker (to kick it).
/// The connection checks [`Kick::reason`] whenever it wakes. Only one task
/// may wait on it.
#[derive(Debug, Clone, Default)]
pub struct Kick(Arc<Shared>);

impl Kick {
    pub fn new() -> Kick {
        Kick::default()
    }

    /// Wakes the connection (messages were queued). If it is not waiting
    /// yet, its next [`Kick::poll_woken`] is ready at once: no wake-up is
    /// lost between its checks.
    pub fn notify_one(&self) {
        // Release: what was queued before is seen by the woken task.
        self.0.woken.store(true, Ordering::Release);
        self.0.waker.wake();
    }

    /// Ready once after each run of [`Kick::notify_one`] calls; registers
    /// the task to be woken otherwise.
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.woken.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.0.waker.register(cx.waker());
        // A wake-up between the check and the registration would be lost
        // without this second look.
        if self.0.woken.swap(false, Ordering::Acquire) {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Waits for the next wake-up (see [`Kick::poll_woken`]).
    pub async fn woken(&self) {
        poll_fn(|cx| self.poll_woken(cx)).await
    }

    /// Asks the connection to close with `reason`. The first reason given
    /// wins; later ones are ignored. Never blocks. (Returns a `Result` like
    /// the channel it replaced; it cannot fail.)
    pub(crate) fn try_send(&self, reason: ReasonCode) -> Result<(), ReasonCode> {
        let code = u16::from(reason as u8) + 1;
        // Release: pairs with the Acquire in `reason`.
        let _ = self
            .0
            .reason
            .compare_exchange(0, code, Ordering::Release, Ordering::Relaxed);
        self.notify_one();
        Ok(())
    }

    /// The reason, once kicked.
    pub fn reason(&self) -> Option<ReasonCode> {
        match self.0.reason.load(Ordering::Acquire) {
            0 => None,
            code => u8::try_from(code - 1).ok().and_then(ReasonCode::from_u8),
        }
    }

    /// Waits until the connection is kicked; returns the reason. Wake-ups
    /// for queued messages are consumed on the way: only for use before
    /// the connection drains its queue (it starts by draining anyway).
    pub(crate) async fn recv(&self) -> ReasonCode {
        loop {
            if let Some(r) = self.reason() {
                return r;
            }
            self.woken().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn kick() -> Kick {
        Kick::new()
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
        k.notify_one();
        let r = tokio::time::timeout(Duration::from_millis(50), k.recv()).await;
        assert!(r.is_err());
        assert_eq!(k.reason(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wake_ups_collapse_into_one_and_none_is_lost() {
        let k = kick();
        // Before anybody waits: kept, and two make one.
        k.notify_one();
        k.notify_one();
        let first = tokio::time::timeout(Duration::from_secs(5), k.woken()).await;
        assert!(first.is_ok());
        let second = tokio::time::timeout(Duration::from_millis(50), k.woken()).await;
        assert!(second.is_err(), "a second wake-up was left behind");
        // While a task on another thread waits.
        for _ in 0..100 {
            let waiting = k.clone();
            let t = tokio::spawn(async move { waiting.woken().await });
            k.notify_one();
            let got = tokio::time::timeout(Duration::from_secs(5), t).await;
            assert!(matches!(got, Ok(Ok(()))), "a wake-up was lost");
        }
    }
}
