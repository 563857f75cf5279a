//! `midge pub` and `midge sub`: MQTT command-line clients with the options
//! of mosquitto_pub and mosquitto_sub, for MQTT 3.1, 3.1.1 and 5.0 over TCP,
//! TLS, WebSocket, secure WebSocket and Unix sockets, built on midge-proto.
//!
//! Layers, bottom up: [`transport`] (byte stream) → [`conn`] (packets) →
//! [`session`] (MQTT client state) → [`publisher`] / [`subscriber`] (the
//! commands), with [`args`] turning the command line into their config and
//! [`format`] / [`json`] printing messages.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod args;
pub mod config;
pub mod conn;
pub mod error;
pub mod format;
pub mod json;
pub mod props;
pub mod publisher;
pub mod reason;
pub mod runner;
pub mod session;
pub mod subscriber;
pub mod time;
pub mod transport;
pub mod url;

use std::ffi::OsString;
use std::io::Write;
use std::sync::{Arc, Mutex};

pub use error::ClientError;
pub use runner::Io;

use conn::{write_line, SharedWriter};

/// Entry point of `midge pub ARGS...`; returns the process exit code.
pub fn run_pub(args: Vec<OsString>) -> i32 {
    run_pub_with(args, Io::process())
}

/// Entry point of `midge sub ARGS...`; returns the process exit code.
pub fn run_sub(args: Vec<OsString>) -> i32 {
    run_sub_with(args, Io::process())
}

/// `midge pub` with the given standard streams.
pub fn run_pub_with(args: Vec<OsString>, io: Io) -> i32 {
    let Io {
        stdin,
        mut stdout,
        stderr,
        handle_ctrl_c,
    } = io;
    let stderr: SharedWriter = Arc::new(Mutex::new(stderr));
    let parsed = match args::common::parse_from(args, |a: &mut args::PubArgs| &mut a.conn) {
        Ok(p) => p,
        Err(e) => return clap_exit(e, "midge pub", &mut stdout, &stderr),
    };
    let quiet = parsed.conn.quiet;
    let mut warn = |w: &str| {
        if !quiet {
            write_line(&stderr, w)
        }
    };
    let cfg = match parsed.resolve(&mut warn) {
        Ok(c) => c,
        Err(msg) => return usage_error(&msg, "midge pub", quiet, &stderr),
    };
    let result = runtime()
        .and_then(|rt| rt.block_on(publisher::run(cfg, stdin, stderr.clone(), handle_ctrl_c)));
    finish(result, quiet, &stderr)
}

/// `midge sub` with the given standard streams.
pub fn run_sub_with(args: Vec<OsString>, io: Io) -> i32 {
    let Io {
        mut stdout,
        stderr,
        handle_ctrl_c,
        ..
    } = io;
    let stderr: SharedWriter = Arc::new(Mutex::new(stderr));
    let parsed = match args::common::parse_from(args, |a: &mut args::SubArgs| &mut a.conn) {
        Ok(p) => p,
        Err(e) => return clap_exit(e, "midge sub", &mut stdout, &stderr),
    };
    let quiet = parsed.conn.quiet;
    let mut warn = |w: &str| {
        if !quiet {
            write_line(&stderr, w)
        }
    };
    let cfg = match parsed.resolve(&mut warn) {
        Ok(c) => c,
        Err(msg) => return usage_error(&msg, "midge sub", quiet, &stderr),
    };
    let result = runtime().and_then(|rt| {
        rt.block_on(subscriber::run(
            cfg,
            &mut *stdout,
            stderr.clone(),
            handle_ctrl_c,
        ))
    });
    finish(result, quiet, &stderr)
}

/// One thread is plenty for one connection, and leaves the cores to the broker.
fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Io)
}

fn finish(result: Result<(), ClientError>, quiet: bool, stderr: &SharedWriter) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            if !quiet {
                write_line(stderr, &e.to_string());
            }
            e.exit_code()
        }
    }
}

fn usage_error(msg: &str, command: &str, quiet: bool, stderr: &SharedWriter) -> i32 {
    let e = ClientError::Usage(msg.to_owned());
    if !quiet {
        write_line(
            stderr,
            &format!("{e}\nUse '{command} --help' to see usage."),
        );
    }
    e.exit_code()
}

/// `--help` prints to stdout and exits 0; a parse error prints to stderr
/// and exits 1, as mosquitto's clients do.
fn clap_exit(
    e: clap::Error,
    command: &str,
    stdout: &mut Box<dyn Write + Send>,
    stderr: &SharedWriter,
) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = writeln!(stdout, "{}", e.render().to_string().trim_end());
            let _ = stdout.flush();
            0
        }
        _ => {
            let rendered = e.render().to_string();
            // clap's own "try '--help'" hint is replaced by mosquitto's line.
            let text: Vec<&str> = rendered
                .lines()
                .filter(|l| !l.starts_with("For more information"))
                .collect();
            let text = text.join("\n");
            let text = text.trim_end().trim_start_matches("error: ");
            write_line(
                stderr,
                &format!("Error: {text}\nUse '{command} --help' to see usage."),
            );
            1
        }
    }
}
