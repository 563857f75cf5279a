//! midge pub / midge sub: command-line clients (being written).
use std::ffi::OsString;

/// Entry point of `midge pub ARGS...`; returns the process exit code.
pub fn run_pub(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("midge pub: not built yet");
    2
}

/// Entry point of `midge sub ARGS...`; returns the process exit code.
pub fn run_sub(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("midge sub: not built yet");
    2
}
