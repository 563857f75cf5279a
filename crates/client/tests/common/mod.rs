//! Test harness: a broker per test (mosquitto with its own config, or
//! midge; free loopback ports; killed by PID on drop), `midge pub` / `midge sub` run in-process
//! through `run_pub_with` / `run_sub_with` with captured standard streams,
//! a cuttable TCP proxy, and test certificates made with rcgen.
//!
//! Every wait has a deadline; nothing sleeps and hopes.
#![allow(dead_code, clippy::unwrap_used)]

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use midge_client::{run_pub_with, run_sub_with, Io};

/// How long any single client run may take before the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);
/// How long to wait for a subscriber to be subscribed.
pub const READY_LIMIT: Duration = Duration::from_secs(10);

/// A free TCP port on 127.0.0.1 (bound and released; the broker takes it
/// next, a small race that a test retry would not hide: startup fails loudly).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One broker process: mosquitto, or midge for [`Broker::plain`] when
/// `CLIENT_TEST_BROKER=midge` (after `cargo build -p midge`).
pub struct Broker {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    log: PathBuf,
    pub is_midge: bool,
}

impl Broker {
    /// A broker with one plain listener (anonymous allowed). mosquitto's
    /// queue limit is lifted: it drops QoS 1/2 messages past 1,000 queued
    /// even for a connected subscriber that lags behind a fast publisher.
    pub fn plain() -> Broker {
        match std::env::var("CLIENT_TEST_BROKER").as_deref() {
            Ok("midge") => Broker::midge(),
            _ => {
                Broker::start(
                    |_dir, port| {
                        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\n")
                    },
                    &[],
                )
            }
        }
    }

    /// `target/debug/midge serve` on a free port, learnt from its stdout.
    pub fn midge() -> Broker {
        let exe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/midge");
        assert!(
            exe.exists(),
            "{} missing: cargo build -p midge",
            exe.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("midge.log");
        let mut child = Command::new(&exe)
            .args(["serve", "--mqtt", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(port) = line
                    .strip_prefix("midge listening mqtt://127.0.0.1:")
                    .and_then(|p| p.trim().parse::<u16>().ok())
                {
                    let _ = tx.send(port);
                }
            }
        });
        let mut b = Broker {
            child,
            dir,
            port: 0,
            log,
            is_midge: true,
        };
        b.port = rx
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("midge did not announce its port:\n{}", b.log()));
        b
    }

    /// Starts mosquitto with the config made by `config(dir, port)`, and
    /// waits until `port` and every port of `more_ports` accept connections.
    pub fn start(config: impl FnOnce(&Path, u16) -> String, more_ports: &[u16]) -> Broker {
        let exe = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("mosquitto is not installed (apt-get install mosquitto; scripts/test does)");
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // As root, mosquitto would switch to the user 'mosquitto', who cannot
        // read the private temporary directory; when not root this line is ignored.
        let text = format!(
            "{}\nuser root\npersistence false\nlog_dest stderr\nlog_type all\n",
            config(dir.path(), port)
        );
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(&conf, text).unwrap();
        let log = dir.path().join("mosquitto.log");
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut m = Broker {
            child,
            dir,
            port,
            log,
            is_midge: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for p in std::iter::once(port).chain(more_ports.iter().copied()) {
            loop {
                if TcpStream::connect(("127.0.0.1", p)).is_ok() {
                    break;
                }
                if let Ok(Some(status)) = m.child.try_wait() {
                    panic!("mosquitto exited ({status}) at startup:\n{}", m.log());
                }
                assert!(
                    Instant::now() < deadline,
                    "mosquitto not listening on {p}:\n{}",
                    m.log()
                );
                // Polling a port that is not open yet: mosquitto gives no other
                // readiness signal. Bounded by the deadline above.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        m
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Only the process this test started, by its handle (PID).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A writer whose contents tests can read and wait on.
#[derive(Clone, Default)]
pub struct Capture(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (data, cv) = &*self.0;
        data.lock().unwrap().extend_from_slice(buf);
        cv.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub fn bytes(&self) -> Vec<u8> {
        self.0 .0.lock().unwrap().clone()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Waits until the captured text contains `needle`; false on timeout.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let (data, cv) = &*self.0;
        let deadline = Instant::now() + limit;
        let mut guard = data.lock().unwrap();
        loop {
            if String::from_utf8_lossy(&guard).contains(needle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = cv.wait_timeout(guard, deadline - now).unwrap().0;
        }
    }
}

/// The result of one client run.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Outcome {
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn argv(command: &str, args: &[&str]) -> Vec<OsString> {
    std::iter::once(command)
        .chain(args.iter().copied())
        .map(OsString::from)
        .collect()
}

/// A client running on its own thread.
pub struct Running {
    done: mpsc::Receiver<i32>,
    pub stdout: Capture,
    pub stderr: Capture,
    what: String,
}

impl Running {
    /// Waits (with a deadline) until a `-d` subscriber is subscribed.
    pub fn wait_subscribed(&self) -> &Self {
        assert!(
            self.stderr.wait_for("Subscribed (mid:", READY_LIMIT),
            "{} did not subscribe:\n{}",
            self.what,
            self.stderr.text()
        );
        self
    }

    /// Waits for the run to end and returns what it did.
    pub fn finish(self) -> Outcome {
        let code = self.done.recv_timeout(RUN_LIMIT).unwrap_or_else(|_| {
            panic!(
                "{} did not finish within {RUN_LIMIT:?}\nstdout: {}\nstderr: {}",
                self.what,
                self.stdout.text(),
                self.stderr.text()
            )
        });
        Outcome {
            code,
            stdout: self.stdout.bytes(),
            stderr: self.stderr.text(),
        }
    }
}

fn spawn(command: &'static str, args: &[&str], stdin: Vec<u8>) -> Running {
    let stdout = Capture::default();
    let stderr = Capture::default();
    let io = Io {
        stdin: Box::new(std::io::Cursor::new(stdin)),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
        handle_ctrl_c: false,
    };
    let args = argv(command, args);
    let what = format!("{command} {:?}", &args[1..]);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let code = if command == "midge pub" {
            run_pub_with(args, io)
        } else {
            run_sub_with(args, io)
        };
        let _ = tx.send(code);
    });
    Running {
        done: rx,
        stdout,
        stderr,
        what,
    }
}

/// Starts `midge sub ARGS -d` (debug output tells when it is subscribed).
pub fn sub(args: &[&str]) -> Running {
    let mut all = args.to_vec();
    all.push("-d");
    spawn("midge sub", &all, Vec::new())
}

/// Starts `midge sub ARGS` without adding `-d`.
pub fn sub_plain(args: &[&str]) -> Running {
    spawn("midge sub", args, Vec::new())
}

/// Runs `midge pub ARGS` with `stdin` to its end.
pub fn publish_with_stdin(args: &[&str], stdin: &[u8]) -> Outcome {
    spawn("midge pub", args, stdin.to_vec()).finish()
}

/// Runs `midge pub ARGS` and asserts it succeeded.
pub fn publish_ok(args: &[&str]) -> Outcome {
    let o = publish_with_stdin(args, b"");
    assert_eq!(o.code, 0, "midge pub {args:?} failed: {}", o.stderr);
    o
}

/// A one-connection TCP proxy to 127.0.0.1:`target` that the test can cut,
/// so that the broker sees the client vanish without DISCONNECT.
pub struct Proxy {
    pub port: u16,
    sockets: Arc<Mutex<Vec<TcpStream>>>,
    connected: mpsc::Receiver<()>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (tx, rx) = mpsc::channel();
        let held = sockets.clone();
        std::thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let Ok(upstream) = TcpStream::connect(("127.0.0.1", target)) else {
                return;
            };
            let pairs = [
                (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                (upstream.try_clone().unwrap(), client.try_clone().unwrap()),
            ];
            held.lock().unwrap().extend([client, upstream]);
            for (mut from, mut to) in pairs {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
            let _ = tx.send(());
        });
        Proxy {
            port,
            sockets,
            connected: rx,
        }
    }

    /// Closes both sides at once, as a network failure would.
    pub fn cut(&self) {
        self.connected
            .recv_timeout(READY_LIMIT)
            .expect("nobody connected through the proxy");
        for s in self.sockets.lock().unwrap().iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// A test PKI: a CA, a server certificate for `localhost`/127.0.0.1, one for
/// another name, and a client certificate, as PEM files in `dir`.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub wrong_cert: PathBuf,
    pub wrong_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "midge test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            params
                .subject_alt_names
                .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let (server, server_key) = leaf(vec!["localhost".into()], "localhost");
        let (client, client_key) = leaf(vec!["client".into()], "client");
        let key = rcgen::KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["wrong.example".into()]).unwrap();
        let wrong = params.signed_by(&key, &ca, &ca_key).unwrap();
        Pki {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server),
            server_key: write("server.key", &server_key),
            wrong_cert: write("wrong.pem", &wrong.pem()),
            wrong_key: write("wrong.key", &key.serialize_pem()),
            client_cert: write("client.pem", &client),
            client_key: write("client.key", &client_key),
        }
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}
