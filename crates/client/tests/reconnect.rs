//! `midge sub` after a lost connection, as mosquitto_sub: it reconnects to a
//! restarted broker (the same port), subscribes again, keeps counting `-C`
//! across connections, and stops retrying only at `-W` or at a CONNACK
//! refusal. The first connect failing still ends the run at once.
//!
//! The broker is mosquitto on a fixed port, restarted by the test: killed
//! (by its PID) and started again with the same or another configuration.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A mosquitto that keeps its port across restarts. Persistence is off, so
/// a restarted broker knows no session, subscription or retained message:
/// whatever reaches the subscriber afterwards came through a new SUBSCRIBE.
struct Restartable {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    starts: u32,
}

impl Restartable {
    fn start() -> Restartable {
        let mut b = Restartable {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port: free_port(),
            starts: 0,
        };
        b.launch("allow_anonymous true");
        b
    }

    fn exe() -> &'static str {
        ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (apt-get install mosquitto; scripts/test does)")
    }

    fn log_path(&self) -> PathBuf {
        self.dir
            .path()
            .join(format!("mosquitto-{}.log", self.starts))
    }

    /// Starts mosquitto with `auth` as its access line; waits until the port
    /// accepts connections.
    fn launch(&mut self, auth: &str) {
        self.starts += 1;
        // As root, mosquitto would switch to the user 'mosquitto', who cannot
        // read the private temporary directory; when not root the line is ignored.
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\n{auth}\nuser root\npersistence false\n\
                 log_dest stderr\nlog_type all\n",
                self.port
            ),
        )
        .unwrap();
        let child = Command::new(Self::exe())
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("mosquitto exited ({status}) at startup:\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto not listening on {}:\n{}",
                self.port,
                self.logs()
            );
            // Polling a port that is not open yet: mosquitto gives no other
            // readiness signal. Bounded by the deadline above.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills our mosquitto (by its handle), as a crash or a power cut would:
    /// no DISCONNECT, the subscriber sees the connection reset or closed.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn restart(&mut self, auth: &str) {
        self.stop();
        self.launch(auth);
    }

    fn logs(&self) -> String {
        (1..=self.starts)
            .map(|i| {
                let p = self.dir.path().join(format!("mosquitto-{i}.log"));
                let text = std::fs::read_to_string(p).unwrap_or_default();
                format!("--- mosquitto start #{i} ---\n{text}")
            })
            .collect()
    }

    fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publishes `payload` at QoS 1 until `out` shows `expect`: the subscriber
/// needs its reconnect delay (1 s) and a new SUBSCRIBE before a message
/// reaches it. Each round waits on the output with a timeout; the number of
/// rounds is bounded.
fn publish_until_seen(port: &str, topic: &str, payload: &str, out: &Capture, expect: &str) {
    for _ in 0..20 {
        let o = publish_with_stdin(&["-p", port, "-t", topic, "-q", "1", "-m", payload], b"");
        // A refused connection is the broker still starting: the next round
        // tries again.
        if o.code == 0 && out.wait_for(expect, Duration::from_millis(500)) {
            return;
        }
    }
    panic!(
        "{expect:?} never reached the subscriber; it printed {:?}",
        out.text()
    );
}

#[test]
fn resubscribes_after_the_broker_restarts_and_counts_across_connections() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    // No -d: a retained message tells when the subscription is in place,
    // and stderr must stay empty through the reconnection, as mosquitto_sub's.
    publish_ok(&["-p", &port, "-t", "re/t", "-q", "1", "-r", "-m", "one"]);
    let s = sub_plain(&["-p", &port, "-t", "re/t", "-q", "1", "-C", "2"]);
    assert!(
        s.stdout.wait_for("one\n", READY_LIMIT),
        "no first message: {}",
        s.stderr.text()
    );
    b.restart("allow_anonymous true");
    publish_until_seen(&port, "re/t", "two", &s.stdout, "one\ntwo\n");
    let o = s.finish();
    assert_eq!(
        (o.code, o.out().as_str(), o.stderr.as_str()),
        (0, "one\ntwo\n", ""),
        "{}",
        b.logs()
    );
}

#[test]
fn debug_tells_of_the_reconnection_and_subscribe_and_unsubscribe_are_sent_again() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let s = sub(&[
        "-p", &port, "-t", "re/a", "-t", "re/b", "-U", "re/old", "-q", "1", "-C", "2", "-i",
        "re-debug",
    ]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-t", "re/a", "-q", "1", "-m", "before"]);
    assert!(s.stdout.wait_for("before\n", READY_LIMIT));
    b.restart("allow_anonymous true");
    publish_until_seen(&port, "re/b", "after", &s.stdout, "before\nafter\n");
    let o = s.finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "before\nafter\n"),
        "{}",
        o.stderr
    );
    let err = &o.stderr;
    assert!(
        err.contains("Client re-debug connection lost (") && err.contains("reconnecting in 1 s"),
        "{err}"
    );
    // A retry may find the port still closed: no CONNECT sent then.
    assert!(
        err.matches("Client re-debug sending CONNECT").count() >= 2,
        "{err}"
    );
    for line in [
        "Client re-debug sending SUBSCRIBE (Mid: 1, Topic: re/b, QoS: 1, Options: 0x00)",
        "Client re-debug sending UNSUBSCRIBE (Mid: 2, Topic: re/old)",
        "Subscribed (mid: 1): 1, 1",
    ] {
        assert_eq!(err.matches(line).count(), 2, "{line:?} twice in:\n{err}");
    }
}

#[test]
fn first_connect_failure_exits_at_once() {
    let dead = free_port().to_string();
    let started = Instant::now();
    let o = sub_plain(&["-p", &dead, "-t", "a", "-d"]).finish();
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("Error: Connection refused"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("reconnect"), "{}", o.stderr);
    // No retry delay was taken (it is 1 s).
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn w_bounds_the_retries_and_keeps_its_whole_run_deadline() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let started = Instant::now();
    let s = sub(&["-p", &port, "-t", "re/w", "-W", "3"]);
    s.wait_subscribed();
    b.stop();
    let o = s.finish();
    let took = started.elapsed();
    assert_eq!(o.code, 27, "{}", o.stderr);
    assert!(o.stderr.ends_with("Timed out\n"), "{}", o.stderr);
    // The retries happened, each failing on the closed port.
    assert!(o.stderr.contains("reconnect failed ("), "{}", o.stderr);
    // -W counts from the first CONNACK, not from the loss.
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}

#[test]
fn a_connack_refusal_on_reconnect_ends_the_run_with_its_code() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let s = sub(&["-p", &port, "-t", "re/r"]);
    s.wait_subscribed();
    // The same broker, back without anonymous access: CONNACK 5.
    b.restart("allow_anonymous false");
    let o = s.finish();
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr
            .ends_with("Connection error: Connection Refused: not authorised.\n"),
        "{}",
        o.stderr
    );
}
