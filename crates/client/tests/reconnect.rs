//! `midge sub` and `midge pub -l` after a lost connection, as mosquitto_sub
//! and mosquitto_pub's line mode: they reconnect to a restarted broker (the
//! same port); sub subscribes again and keeps counting `-C` across
//! connections; pub sends its unacknowledged QoS 1/2 messages again (DUP,
//! same ids) and what stdin gave meanwhile. Both stop retrying only at
//! `-W` or at a CONNACK refusal; the first connect failing still ends the
//! run at once.
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

// ---------------------------------------------------------------- midge pub -l
// mosquitto_pub in line mode runs libmosquitto's threaded loop: it keeps
// reading stdin while the connection is down, reconnects every 1 s, and
// sends again (DUP, same packet id) what was not acknowledged.

use std::io::{PipeWriter, Write as _};
use std::sync::mpsc;

use midge_client::{run_pub_with, Io};

/// `midge pub ARGS` on its own thread, its stdin a real pipe the test writes
/// lines into; closing it is EOF.
struct PipedPub {
    stdin: Option<PipeWriter>,
    done: mpsc::Receiver<i32>,
    stderr: Capture,
}

impl PipedPub {
    fn start(args: &[&str]) -> PipedPub {
        let (reader, writer) = std::io::pipe().unwrap();
        let stderr = Capture::default();
        let io = Io {
            stdin: Box::new(reader),
            stdout: Box::new(Capture::default()),
            stderr: Box::new(stderr.clone()),
            handle_ctrl_c: false,
        };
        let argv: Vec<std::ffi::OsString> = std::iter::once("midge pub")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        let (tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(run_pub_with(argv, io));
        });
        PipedPub {
            stdin: Some(writer),
            done,
            stderr,
        }
    }

    fn line(&mut self, text: &str) {
        let w = self.stdin.as_mut().expect("stdin already closed");
        w.write_all(format!("{text}\n").as_bytes()).unwrap();
    }

    /// Waits for `needle` on stderr (`-d` output), failing the test after
    /// [`READY_LIMIT`].
    fn expect(&self, needle: &str) {
        assert!(
            self.stderr.wait_for(needle, READY_LIMIT),
            "no {needle:?} from midge pub:\n{}",
            self.stderr.text()
        );
    }

    /// Closes stdin (EOF) and waits for the exit code.
    fn finish(mut self) -> (i32, String) {
        self.stdin = None;
        let code = self.done.recv_timeout(RUN_LIMIT).unwrap_or_else(|_| {
            panic!(
                "midge pub did not finish within {RUN_LIMIT:?}:\n{}",
                self.stderr.text()
            )
        });
        (code, self.stderr.text())
    }

    /// Waits for the exit code with stdin still open: the run must end on
    /// its own.
    fn exits_by_itself(&self, limit: Duration) -> i32 {
        self.done.recv_timeout(limit).unwrap_or_else(|_| {
            panic!(
                "midge pub still running after {limit:?}:\n{}",
                self.stderr.text()
            )
        })
    }
}

impl Restartable {
    /// Stops our mosquitto (SIGSTOP, by its PID) and waits until the kernel
    /// reports it stopped: from then on it reads and answers nothing, so a
    /// message sent now stays unacknowledged.
    fn freeze(&self) {
        let pid = self.child.as_ref().unwrap().id();
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let stat = format!("/proc/{pid}/stat");
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let text = std::fs::read_to_string(&stat).unwrap();
            // The state follows the parenthesised command name.
            let state = text.rsplit(") ").next().unwrap().chars().next();
            if state == Some('T') {
                return;
            }
            assert!(Instant::now() < deadline, "mosquitto not stopped: {text}");
            // No event tells when a signal took effect; bounded by the deadline.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn pub_lines_resends_the_unacknowledged_line_after_the_broker_restarts() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let s = sub(&["-p", &port, "-t", "re/l", "-q", "1", "-C", "2"]);
    s.wait_subscribed();
    let mut p = PipedPub::start(&[
        "-p", &port, "-t", "re/l", "-q", "1", "-r", "-l", "-d", "-i", "re-pub",
    ]);
    p.line("one");
    p.expect("received PUBACK (Mid: 1, RC:0)");
    assert!(s.stdout.wait_for("one\n", READY_LIMIT));
    // Line 2 reaches a broker that will never answer: it dies with it.
    b.freeze();
    p.line("two");
    p.expect("sending PUBLISH (d0, q1, r1, m2, 're/l', ... (3 bytes))");
    b.restart("allow_anonymous true");
    p.expect("sending PUBLISH (d1, q1, r1, m2, 're/l', ... (3 bytes))");
    p.expect("received PUBACK (Mid: 2, RC:0)");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}\n{}", b.logs());
    assert!(
        err.contains("Client re-pub connection lost (") && err.contains("reconnecting in 1 s"),
        "{err}"
    );
    assert_eq!(err.matches("received CONNACK (0)").count(), 2, "{err}");
    assert_eq!(err.matches("m2, 're/l'").count(), 2, "{err}");
    // The restarted broker knows no session and no retained message: line 2
    // reaches the (resubscribed) subscriber live or as retained, once.
    let o = s.finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "one\ntwo\n"),
        "{}",
        o.stderr
    );
}

#[test]
fn pub_lines_read_while_disconnected_are_sent_after_the_reconnection() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let mut p = PipedPub::start(&[
        "-p", &port, "-t", "re/q", "-q", "1", "-r", "-l", "-d", "-i", "re-q",
    ]);
    p.line("one");
    p.expect("received PUBACK (Mid: 1, RC:0)");
    b.stop();
    p.expect("connection lost (");
    p.line("two");
    // The retries meet the closed port, with line 2 read and waiting.
    p.expect("Client re-q reconnect failed (");
    b.launch("allow_anonymous true");
    // A first attempt at the new connection, numbered on from line 1.
    p.expect("sending PUBLISH (d0, q1, r1, m2, 're/q', ... (3 bytes))");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("received PUBACK (Mid: 2, RC:0)"), "{err}");
    assert!(!err.contains("(d1,"), "nothing was resent:\n{err}");
    let o = sub_plain(&["-p", &port, "-t", "re/q", "-C", "1", "-W", "5"]).finish();
    assert_eq!((o.code, o.out().as_str()), (0, "two\n"), "{}", o.stderr);
}

#[test]
fn pub_lines_first_connect_failure_exits_at_once() {
    let dead = free_port().to_string();
    let started = Instant::now();
    let p = PipedPub::start(&["-p", &dead, "-t", "a", "-l", "-q", "1", "-d"]);
    // stdin stays open: only the failed connection can end the run.
    let code = p.exits_by_itself(Duration::from_secs(5));
    let err = p.stderr.text();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Error: Connection refused"), "{err}");
    assert!(!err.contains("reconnect"), "{err}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn pub_lines_ends_with_the_code_of_a_connack_refusal_on_reconnect() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let p = PipedPub::start(&["-p", &port, "-t", "re/r", "-l", "-q", "1", "-d"]);
    p.expect("received CONNACK (0)");
    b.restart("allow_anonymous false");
    let code = p.exits_by_itself(RUN_LIMIT);
    let err = p.stderr.text();
    assert_eq!(code, 5, "{err}");
    assert!(
        err.ends_with("Connection error: Connection Refused: not authorised.\n"),
        "{err}"
    );
}

#[test]
fn pub_lines_w_bounds_the_retries() {
    let mut b = Restartable::start();
    let port = b.port_arg();
    let started = Instant::now();
    let mut p = PipedPub::start(&["-p", &port, "-t", "re/w", "-l", "-q", "1", "-d", "-W", "3"]);
    p.expect("received CONNACK (0)");
    b.stop();
    p.line("never sent");
    let code = p.exits_by_itself(Duration::from_secs(10));
    let took = started.elapsed();
    let err = p.stderr.text();
    assert_eq!(code, 27, "{err}");
    assert!(err.ends_with("Timed out\n"), "{err}");
    assert!(err.contains("reconnect failed ("), "{err}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(6),
        "{took:?}"
    );
}
