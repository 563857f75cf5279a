//! The completion of a submitted batch: a future that resolves once the
//! batch is durable as the fsync policy says (or failed), so that the
//! broker sends PUBACK/PUBREC only then. A waiter costs one small channel;
//! one commit completes all the waiters it carried.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::CommitError;

pub(crate) type Waiter = oneshot::Sender<Result<(), CommitError>>;

/// Resolves to `Ok(())` once the batch is durable (policy `never`: once
/// applied), or to the reason it is not.
#[derive(Debug)]
#[must_use = "a commit does nothing unless awaited or waited on; use submit_detached to not wait"]
pub struct Commit {
    state: State,
}

#[derive(Debug)]
enum State {
    Ready(Option<Result<(), CommitError>>),
    Waiting(oneshot::Receiver<Result<(), CommitError>>),
}

impl Commit {
    /// An already resolved commit.
    pub fn ready(result: Result<(), CommitError>) -> Commit {
        Commit {
            state: State::Ready(Some(result)),
        }
    }

    /// A commit that resolves when the returned [`Completer`] says so: for
    /// `Store` implementations outside this crate (and tests).
    pub fn pending() -> (Completer, Commit) {
        let (waiter, commit) = Commit::channel();
        (Completer(waiter), commit)
    }

    pub(crate) fn channel() -> (Waiter, Commit) {
        let (tx, rx) = oneshot::channel();
        (
            tx,
            Commit {
                state: State::Waiting(rx),
            },
        )
    }

    /// Blocks the thread until the commit resolves. For threads outside an
    /// async runtime (tools, tests, benches); async code awaits instead.
    pub fn wait(self) -> Result<(), CommitError> {
        match self.state {
            State::Ready(r) => r.unwrap_or(Err(CommitError::Closed)),
            State::Waiting(rx) => rx.blocking_recv().unwrap_or(Err(CommitError::Closed)),
        }
    }

    /// The result if already known, without waiting.
    pub fn try_result(&mut self) -> Option<Result<(), CommitError>> {
        match &mut self.state {
            State::Ready(r) => r.take(),
            State::Waiting(rx) => match rx.try_recv() {
                Ok(r) => Some(r),
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => Some(Err(CommitError::Closed)),
            },
        }
    }
}

/// Resolves the [`Commit`] made with it by [`Commit::pending`]; dropping it
/// unused resolves that commit to [`CommitError::Closed`].
#[derive(Debug)]
pub struct Completer(Waiter);

impl Completer {
    pub fn complete(self, result: Result<(), CommitError>) {
        let _ = self.0.send(result);
    }
}

impl Future for Commit {
    type Output = Result<(), CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            State::Ready(r) => Poll::Ready(r.take().unwrap_or(Err(CommitError::Closed))),
            State::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(CommitError::Closed))),
        }
    }
}
