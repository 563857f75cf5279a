//! `midge serve` (being written).
use std::ffi::OsString;

pub fn main(args: Vec<OsString>) -> i32 {
    let _ = args;
    eprintln!("midge serve: not built yet");
    2
}
