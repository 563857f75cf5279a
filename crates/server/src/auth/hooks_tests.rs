//! Tests of [`AuthHooks`]: CONNECT decisions, rate limiting, reload, ACL
//! delegation, and that logs never carry the password.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex as StdMutex;

use midge_broker::{ConnectionInfo, Transport};
use midge_proto::Protocol;

use super::*;
use crate::auth::ratelimit::RateLimitConfig;

/// `mosquitto_passwd -H sha512` output for "pass": cheap to verify.
const PASS_6: &str = "$6$lo7jfyGRKLBFdm7B$DUDo9iYjWjQ/pEKHQuZ2+W5NPfSfRjDvY66PBSm+EHYdLONNF3RpwV3WQrkT4hW844xIK9vMNNYVKpUrKVeVzA==";

struct Fixture {
    dir: tempfile::TempDir,
    config: AuthConfig,
}

impl Fixture {
    fn new(passwd: Option<&str>, acl: Option<&str>) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = AuthConfig::default();
        if let Some(text) = passwd {
            let p = dir.path().join("passwd");
            std::fs::write(&p, text).expect("write passwd");
            config.password_file = Some(p);
        }
        if let Some(text) = acl {
            let p = dir.path().join("acl");
            std::fs::write(&p, text).expect("write acl");
            config.acl_file = Some(p);
        }
        Fixture { dir, config }
    }

    fn hooks(&self) -> AuthHooks {
        AuthHooks::new(&self.config).expect("auth loads")
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.dir.path().join(name), text).expect("rewrite");
    }
}

fn info(addr: &str) -> ConnectionInfo {
    let remote: Option<SocketAddr> = Some(addr.parse().expect("socket address"));
    ConnectionInfo::new(remote, "mqtt:test", Transport::Tcp)
}

fn connect(
    hooks: &AuthHooks,
    info: &ConnectionInfo,
    user: Option<&str>,
    password: Option<&str>,
) -> AuthDecision {
    hooks.authenticate(&AuthRequest {
        client_id: "client-1",
        username: user,
        password: password.map(str::as_bytes),
        info,
        protocol: Protocol::V3_1_1,
    })
}

fn allowed(user: &str) -> AuthDecision {
    AuthDecision::Allow {
        username: Some(user.to_owned()),
    }
}

const BAD: AuthDecision = AuthDecision::Deny(ReasonCode::BadUserNameOrPassword);

#[test]
fn password_checks_and_reason_codes() {
    let f = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None);
    let h = f.hooks();
    let at = info("192.0.2.10:5000");
    assert_eq!(
        connect(&h, &at, Some("alice"), Some("pass")),
        allowed("alice")
    );
    assert_eq!(connect(&h, &at, Some("alice"), Some("nope")), BAD);
    assert_eq!(connect(&h, &at, Some("alice"), None), BAD);
    assert_eq!(connect(&h, &at, Some("mallory"), Some("pass")), BAD);
    // Anonymous is off by default once a password file is configured.
    assert_eq!(
        connect(&h, &at, None, None),
        AuthDecision::Deny(ReasonCode::NotAuthorized)
    );
    assert_eq!(
        connect(&h, &at, None, Some("pass")),
        AuthDecision::Deny(ReasonCode::NotAuthorized)
    );
    // The broker maps these to 3.1.1 CONNACK return codes 4 and 5.
    assert_eq!(ReasonCode::BadUserNameOrPassword.to_v3_connack(), 4);
    assert_eq!(ReasonCode::NotAuthorized.to_v3_connack(), 5);
    assert_eq!(ReasonCode::BadUserNameOrPassword as u8, 0x86);
    assert_eq!(ReasonCode::NotAuthorized as u8, 0x87);
}

#[test]
fn anonymous_settings() {
    let open = Fixture::new(None, None).hooks();
    let at = info("192.0.2.10:5000");
    assert_eq!(
        connect(&open, &at, None, None),
        AuthDecision::Allow { username: None }
    );
    // Without a password file a username is an unchecked identity.
    assert_eq!(
        connect(&open, &at, Some("anyone"), Some("x")),
        allowed("anyone")
    );

    let mut f = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None);
    f.config.allow_anonymous = Some(true);
    let h = f.hooks();
    assert_eq!(
        connect(&h, &at, None, None),
        AuthDecision::Allow { username: None }
    );
    assert_eq!(
        connect(&h, &at, Some("alice"), Some("nope")),
        BAD,
        "a username is still checked"
    );

    let mut f = Fixture::new(None, None);
    f.config.allow_anonymous = Some(false);
    assert_eq!(
        connect(&f.hooks(), &at, None, None),
        AuthDecision::Deny(ReasonCode::NotAuthorized)
    );
}

#[test]
fn repeated_failures_put_the_address_in_back_off() {
    let mut f = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None);
    f.config.rate_limit = RateLimitConfig {
        max_failures: 3,
        window_secs: 60,
        backoff_secs: 600,
        max_tracked: 100,
    };
    let h = f.hooks();
    let attacker = info("198.51.100.1:40000");
    let other_port = info("198.51.100.1:40001");
    let neighbour = info("198.51.100.2:40000");
    for _ in 0..3 {
        assert_eq!(connect(&h, &attacker, Some("alice"), Some("guess")), BAD);
    }
    // Refused even with the right password, from any port of that address.
    let limited = AuthDecision::Deny(ReasonCode::ConnectionRateExceeded);
    assert_eq!(connect(&h, &attacker, Some("alice"), Some("pass")), limited);
    assert_eq!(
        connect(&h, &other_port, Some("alice"), Some("pass")),
        limited
    );
    assert_eq!(connect(&h, &other_port, None, None), limited);
    assert_eq!(
        connect(&h, &neighbour, Some("alice"), Some("pass")),
        allowed("alice")
    );
    // Refused anonymous clients are not password guesses: no back-off.
    for _ in 0..5 {
        assert_eq!(
            connect(&h, &neighbour, None, None),
            AuthDecision::Deny(ReasonCode::NotAuthorized)
        );
    }
    assert_eq!(
        connect(&h, &neighbour, Some("alice"), Some("pass")),
        allowed("alice")
    );
}

#[test]
fn connections_without_an_address_are_not_limited() {
    let mut f = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None);
    f.config.rate_limit.max_failures = 1;
    let h = f.hooks();
    let internal = ConnectionInfo::new(None, "internal", Transport::Internal);
    assert_eq!(connect(&h, &internal, Some("alice"), Some("x")), BAD);
    assert_eq!(
        connect(&h, &internal, Some("alice"), Some("pass")),
        allowed("alice")
    );
}

#[test]
fn reload_swaps_both_files_or_neither() {
    let f = Fixture::new(
        Some(&format!("alice:{PASS_6}\n")),
        Some("user alice\ntopic readwrite a/#\n"),
    );
    let h = f.hooks();
    let at = info("192.0.2.10:5000");
    let alice = ClientRef {
        client_id: "c",
        username: Some("alice"),
    };
    let bob = ClientRef {
        client_id: "c",
        username: Some("bob"),
    };
    assert!(h.authorize_publish(&alice, "a/x"));
    assert!(!h.authorize_publish(&alice, "b/x"));

    f.write("passwd", &format!("bob:{PASS_6}\n"));
    f.write("acl", "user bob\ntopic readwrite b/#\n");
    h.reload().expect("reload");
    assert_eq!(connect(&h, &at, Some("alice"), Some("pass")), BAD);
    assert_eq!(connect(&h, &at, Some("bob"), Some("pass")), allowed("bob"));
    assert!(!h.authorize_publish(&alice, "a/x"));
    assert!(h.authorize_publish(&bob, "b/x"));

    // A good password file with a broken ACL: nothing changes.
    f.write("passwd", &format!("carol:{PASS_6}\n"));
    f.write("acl", "user carol\ntopic sideways c/#\n");
    let err = h.reload().expect_err("broken ACL");
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(connect(&h, &at, Some("carol"), Some("pass")), BAD);
    assert_eq!(connect(&h, &at, Some("bob"), Some("pass")), allowed("bob"));
    assert!(h.authorize_publish(&bob, "b/x"));
}

#[test]
fn acl_questions_are_delegated() {
    let f = Fixture::new(
        None,
        Some("topic read #\ntopic deny secret/#\npattern write out/%c\n"),
    );
    let h = f.hooks();
    let anon = ClientRef {
        client_id: "dev1",
        username: None,
    };
    assert!(h.authorize_subscribe(&anon, "#"));
    assert!(h.authorize_deliver(&anon, "news"));
    assert!(!h.authorize_deliver(&anon, "secret/x"));
    assert!(h.authorize_publish(&anon, "out/dev1"));
    assert!(!h.authorize_publish(&anon, "out/dev2"));
    assert!(!h.authorize_subscribe(&anon, "secret/#"));
}

#[test]
fn without_an_acl_everything_is_authorized() {
    let h = Fixture::new(None, None).hooks();
    let c = ClientRef {
        client_id: "c",
        username: None,
    };
    assert!(h.authorize_publish(&c, "any/topic"));
    assert!(h.authorize_subscribe(&c, "#"));
    assert!(h.authorize_deliver(&c, "any/topic"));
}

#[test]
fn load_errors_name_file_and_line() {
    let f = Fixture::new(Some("ok:$6$x\n"), None);
    let err = AuthHooks::new(&f.config).expect_err("bad hash");
    let text = err.to_string();
    assert!(text.contains("passwd, line 1"), "{text}");
    let missing = AuthConfig {
        acl_file: Some(Path::new("/nonexistent/midge.acl").to_owned()),
        ..AuthConfig::default()
    };
    let err = AuthHooks::new(&missing).expect_err("missing ACL");
    assert!(err.to_string().contains("/nonexistent/midge.acl"), "{err}");
}

/// A `tracing` writer that keeps everything written, for inspection.
#[derive(Clone, Default)]
struct Captured(Arc<StdMutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut v) => v.extend_from_slice(buf),
            Err(poisoned) => poisoned.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn failures_are_logged_without_the_password() {
    let mut f = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None);
    f.config.rate_limit.max_failures = 2;
    let h = f.hooks();
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let at = info("203.0.113.5:1234");
        assert_eq!(connect(&h, &at, Some("alice"), Some("hunter2-secret")), BAD);
        assert_eq!(connect(&h, &at, Some("alice"), Some("hunter2-secret")), BAD);
        let _ = connect(&h, &at, Some("alice"), Some("hunter2-secret"));
        let _ = connect(&h, &info("203.0.113.6:1"), None, Some("hunter2-secret"));
    });
    let bytes = captured.0.lock().map(|v| v.clone()).unwrap_or_default();
    let log = String::from_utf8_lossy(&bytes);
    assert!(log.contains("authentication failed"), "{log}");
    assert!(log.contains("alice"), "{log}");
    assert!(log.contains("203.0.113.5"), "{log}");
    assert!(log.contains("too many failed logins"), "{log}");
    assert!(log.contains("anonymous access is off"), "{log}");
    assert!(
        !log.contains("hunter2"),
        "password leaked into the log: {log}"
    );
}

fn request<'a>(
    info: &'a ConnectionInfo,
    user: Option<&'a str>,
    pass: Option<&'a str>,
) -> AuthRequest<'a> {
    AuthRequest {
        client_id: "client-1",
        username: user,
        password: pass.map(str::as_bytes),
        info,
        protocol: Protocol::V3_1_1,
    }
}

#[test]
fn only_a_password_check_may_block() {
    let req = request;
    let tcp = info("192.0.2.10:5000");
    let internal = ConnectionInfo::new(None, "http", Transport::Internal);
    let with_file = Fixture::new(Some(&format!("alice:{PASS_6}\n")), None).hooks();
    assert!(with_file.authenticate_may_block(&req(&tcp, Some("alice"), Some("pass"))));
    assert!(with_file.authenticate_may_block(&req(&tcp, Some("alice"), None)));
    assert!(!with_file.authenticate_may_block(&req(&tcp, None, None)));
    assert!(!with_file.authenticate_may_block(&req(&internal, Some("alice"), None)));
    let no_file = Fixture::new(None, Some("topic read #\n")).hooks();
    assert!(!no_file.authenticate_may_block(&req(&tcp, Some("alice"), Some("pass"))));
}
