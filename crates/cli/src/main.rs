//! The `midge` binary: argument parsing and dispatch only.
//!
//! `serve` is parsed here; `pub`, `sub` and `bench` own their parsers (their
//! option sets mirror mosquitto_pub/sub and emqtt-bench, where `-h` is a host,
//! not help), so they receive the raw arguments.

mod passwd;
mod serve;
mod store_cmd;

use std::ffi::OsString;
use std::process::ExitCode;

const USAGE: &str = "midge: the real-time IoT messaging platform

Usage: midge <COMMAND> [OPTIONS]

Commands:
  serve    Run the broker (MQTT on 1883, HTTP/WebSocket on 8080 by default)
  pub      Publish messages (like mosquitto_pub)
  sub      Subscribe and print messages (like mosquitto_sub)
  passwd   Manage a password file (like mosquitto_passwd)
  store    Check, repair or describe a data directory (midge store --help)
  bench    Load-test an MQTT broker
  help     Show this text

Run `midge <COMMAND> --help` for the options of a command.
With no command, `midge` runs `midge serve` with the defaults.";

fn main() -> ExitCode {
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let program = args
        .first()
        .cloned()
        .unwrap_or_else(|| OsString::from("midge"));
    let command = args.get(1).and_then(|a| a.to_str()).map(str::to_owned);
    let code = match command.as_deref() {
        None => serve::main(vec![program]),
        Some("serve") => serve::main(tail(&mut args, "midge serve")),
        Some("pub") => midge_client::run_pub(tail(&mut args, "midge pub")),
        Some("sub") => midge_client::run_sub(tail(&mut args, "midge sub")),
        Some("passwd") => passwd::main(tail(&mut args, "midge passwd")),
        Some("store") => store_cmd::main(tail(&mut args, "midge store")),
        Some("bench") => midge_bench::run(tail(&mut args, "midge bench")),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            0
        }
        Some("--version" | "-V") => {
            println!("midge {}", env!("CARGO_PKG_VERSION"));
            0
        }
        // `midge --mqtt ...` with no command: flags of serve.
        Some(flag) if flag.starts_with('-') => serve::main(args),
        Some(other) => {
            eprintln!("midge: unknown command '{other}'\n\n{USAGE}");
            2
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// The arguments after the command name, with the program name replaced by
/// "midge <command>" so that usage messages read naturally.
fn tail(args: &mut Vec<OsString>, name: &str) -> Vec<OsString> {
    let mut rest = args.split_off(2);
    rest.insert(0, OsString::from(name));
    rest
}
