//! `midge serve`: flags, logging, signals; the server itself lives in
//! midge-server.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use midge_server::{Config, ListenerConfig, ListenerKind, Server};

/// Run the midge broker.
#[derive(Debug, Parser)]
#[command(name = "midge serve", version)]
pub struct ServeArgs {
    /// TOML config file; flags below override it.
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// MQTT over TCP listener (repeatable) [default: 0.0.0.0:1883].
    /// Listener flags replace the config file's listeners.
    #[arg(long, value_name = "ADDR")]
    mqtt: Vec<SocketAddr>,
    /// HTTP listener: MQTT over WebSocket on /mqtt, web pages and API
    /// (repeatable) [default: 0.0.0.0:8080].
    #[arg(long, value_name = "ADDR")]
    http: Vec<SocketAddr>,
    /// MQTT over TLS listener (repeatable); needs --cert and --key.
    #[arg(long, value_name = "ADDR", requires_all = ["cert", "key"])]
    mqtts: Vec<SocketAddr>,
    /// HTTPS listener (WebSocket over TLS) (repeatable); needs --cert and --key.
    #[arg(long, value_name = "ADDR", requires_all = ["cert", "key"])]
    https: Vec<SocketAddr>,
    /// Certificate chain (PEM) for --mqtts/--https.
    #[arg(long, value_name = "PEM")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for --mqtts/--https.
    #[arg(long, value_name = "PEM")]
    key: Option<PathBuf>,
    /// CA (PEM) to verify client certificates against.
    #[arg(long, value_name = "PEM")]
    cafile: Option<PathBuf>,
    /// Refuse TLS clients without a valid certificate (needs --cafile).
    #[arg(long, requires = "cafile")]
    require_certificate: bool,
    /// Directory for durable state [default: ./midge-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace (or a tracing directive).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
    /// Password file (`midge passwd` or mosquitto_passwd format).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// ACL file in Mosquitto's syntax.
    #[arg(long, value_name = "FILE")]
    acl_file: Option<PathBuf>,
    /// Let clients without a username in [default: true, false with --password-file].
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    allow_anonymous: Option<bool>,
    /// Largest keep alive accepted, seconds (MQTT 5 Server Keep Alive); 0 = no cap.
    #[arg(long, value_name = "SECS")]
    max_keepalive: Option<u16>,
    /// Maximum concurrent connections; 0 = unlimited.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds between $SYS updates; 0 = off.
    #[arg(long, value_name = "SECS")]
    sys_interval: Option<u64>,
    /// Largest packet accepted from a client, bytes.
    #[arg(long, value_name = "BYTES")]
    max_packet_size: Option<u32>,
    /// Messages queued per session.
    #[arg(long, value_name = "N")]
    max_queued: Option<usize>,
    /// QoS 1/2 messages in flight to one client.
    #[arg(long, value_name = "N")]
    max_inflight: Option<u16>,
    /// When store writes reach the disk: always, batch (group commit) or
    /// never [default: batch].
    #[arg(long, value_name = "POLICY")]
    fsync: Option<midge_store::FsyncPolicy>,
    /// Where durable state lives: disk (in --data-dir) or memory (lost on
    /// restart) [default: disk].
    #[arg(long, value_name = "ENGINE")]
    store: Option<midge_server::StoreEngine>,
}

impl ServeArgs {
    /// Listeners named on the command line; when any is, they are the
    /// whole set, so `--mqtt 127.0.0.1:0` alone opens nothing else.
    fn listeners_from_flags(&self) -> Vec<ListenerConfig> {
        let tls = |kind, addr: &SocketAddr| ListenerConfig {
            cert: self.cert.clone(),
            key: self.key.clone(),
            cafile: self.cafile.clone(),
            require_certificate: self.require_certificate,
            ..ListenerConfig::new(kind, *addr)
        };
        let mut out: Vec<ListenerConfig> =
            self.mqtt.iter().map(|a| ListenerConfig::mqtt(*a)).collect();
        out.extend(
            self.http
                .iter()
                .map(|a| ListenerConfig::new(ListenerKind::Ws, *a)),
        );
        out.extend(self.mqtts.iter().map(|a| tls(ListenerKind::Mqtts, a)));
        out.extend(self.https.iter().map(|a| tls(ListenerKind::Wss, a)));
        out
    }

    /// The file's configuration (or the defaults) with the flags applied.
    fn effective_config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        let from_flags = self.listeners_from_flags();
        if !from_flags.is_empty() {
            config.listeners = from_flags;
        }
        if let Some(d) = &self.data_dir {
            config.data_dir = d.clone();
        }
        if let Some(l) = &self.log_level {
            config.log_level = l.clone();
        }
        if let Some(p) = &self.password_file {
            config.auth.password_file = Some(p.clone());
        }
        if let Some(p) = &self.acl_file {
            config.auth.acl_file = Some(p.clone());
        }
        if let Some(a) = self.allow_anonymous {
            config.auth.allow_anonymous = Some(a);
        }
        let limits = &mut config.limits;
        if let Some(v) = self.max_keepalive {
            limits.max_keepalive = v;
        }
        if let Some(v) = self.max_connections {
            limits.max_connections = v;
        }
        if let Some(v) = self.max_packet_size {
            limits.max_packet_size = v;
        }
        if let Some(v) = self.max_queued {
            limits.max_queued_messages = v;
        }
        if let Some(v) = self.max_inflight {
            limits.max_inflight = v;
        }
        if let Some(v) = self.sys_interval {
            config.mqtt.sys_interval_secs = v;
        }
        if let Some(v) = self.fsync {
            config.store.fsync = v;
        }
        if let Some(v) = self.store {
            config.store.engine = v;
        }
        config.validate()?;
        Ok(config)
    }
}

pub fn main(args: Vec<OsString>) -> i32 {
    let args = match ServeArgs::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("midge serve: {e:#}");
            1
        }
    }
}

fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.effective_config()?;
    if args.print_config {
        print!("{}", config.to_toml());
        return Ok(());
    }
    init_logging(&config.log_level)?;
    prepare_descriptors();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("midge")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Signal handlers first: a script may send SIGTERM the moment it
        // reads the listening lines.
        let mut signals = Signals::install()?;
        let server = Server::start(&config).await?;
        {
            // Tests and scripts read these lines to learn the bound ports.
            let mut out = std::io::stdout().lock();
            for l in server.listeners() {
                writeln!(out, "midge listening {}", l.url())?;
            }
            out.flush()?;
        }
        signals.wait(&server).await;
        tracing::info!("shutting down");
        server.shutdown(Duration::from_secs(5)).await;
        Ok(())
    })
}

/// Open-file limit most brokers need: the kernel's default ceiling
/// (`fs.nr_open`); the hard limit caps it further.
const WANT_OPEN_FILES: u64 = 1 << 20;
/// Descriptor-table slots grown at start-up (see `midge_sys`): enough for
/// a 60,000-connection burst without the table growing under it, about
/// 0.5 MiB of kernel memory.
const RESERVED_FD_SLOTS: u64 = 65_536;

/// Raises the open-file limit as far as allowed, like Mosquitto's
/// packagers do with `LimitNOFILE`, and grows the descriptor table before
/// the runtime's threads exist, while growing it is still cheap.
fn prepare_descriptors() {
    let limit = midge_sys::raise_nofile(WANT_OPEN_FILES);
    match midge_sys::reserve_fd_table(RESERVED_FD_SLOTS) {
        Ok(slots) => tracing::debug!(
            open_file_limit = limit,
            fd_table = slots,
            "descriptors ready"
        ),
        Err(e) => {
            tracing::warn!(open_file_limit = limit, error = %e, "cannot pre-size the descriptor table")
        }
    }
    if limit < 4096 {
        tracing::warn!(
            open_file_limit = limit,
            "the open-file limit caps connections at about this many; raise it with `ulimit -n`"
        );
    }
}

fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid log level '{level}'"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// SIGINT and SIGTERM stop the server; SIGHUP reloads certificates, the
/// password file and the ACL without dropping anyone.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?,
        })
    }

    async fn wait(&mut self, server: &Server) {
        loop {
            tokio::select! {
                _ = self.term.recv() => return,
                _ = self.int.recv() => return,
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    server.reload();
                }
            }
        }
    }
}
