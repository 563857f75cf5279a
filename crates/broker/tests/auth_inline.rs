//! A hook that says its `authenticate` answers at once for a request is
//! called on the connection's task (no blocking-pool hand-off per CONNECT);
//! otherwise, as by default, on the blocking pool. Tests run on a
//! current-thread runtime: the connection tasks run on the test's thread.

mod common;

use std::sync::Arc;
use std::thread::ThreadId;

use common::*;
use midge_broker::{AuthDecision, AuthRequest, BrokerConfig, Hooks};
use midge_proto::Protocol;
use parking_lot::Mutex;

/// Records the thread `authenticate` ran on; fast for user "fast" only.
#[derive(Default)]
struct Where {
    seen: Mutex<Vec<(String, ThreadId)>>,
}

impl Hooks for Where {
    fn authenticate(&self, req: &AuthRequest<'_>) -> AuthDecision {
        self.seen.lock().push((
            req.username.unwrap_or_default().to_owned(),
            std::thread::current().id(),
        ));
        AuthDecision::Allow {
            username: req.username.map(str::to_owned),
        }
    }

    fn authenticate_may_block(&self, req: &AuthRequest<'_>) -> bool {
        req.username != Some("fast")
    }
}

#[tokio::test]
async fn quick_hooks_run_on_the_connection_task() {
    let hooks = Arc::new(Where::default());
    let t = start_with(BrokerConfig::default(), Some(hooks.clone())).await;
    for user in ["fast", "slow"] {
        let mut c = connect_packet(Protocol::V3_1_1, user, true);
        c.username = Some(user.into());
        let (_r, ack) = Raw::connect_with(t.addr, c).await;
        assert!(!ack.reason.is_error(), "{user}: {ack:?}");
    }
    let here = std::thread::current().id();
    let seen = hooks.seen.lock().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        seen[0],
        ("fast".to_owned(), here),
        "inline for a quick answer"
    );
    assert_eq!(seen[1].0, "slow");
    assert_ne!(seen[1].1, here, "on the blocking pool otherwise");
}
