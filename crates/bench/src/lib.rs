//! midge bench: load generator (being written).
use std::ffi::OsString;

/// Entry point of `midge bench ARGS...`; returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("midge bench: not built yet");
    2
}
