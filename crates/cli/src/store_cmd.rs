//! `midge store check | repair | info --data-dir DIR`: the offline tools of
//! the data directory. Argument parsing and output only; the work is in
//! midge-store. They take the directory's lock, so `midge serve` must be
//! stopped first (they say so if it is not).
//!
//! Exit codes: 0 fine, 1 damage found (check) or the command failed,
//! 2 usage error.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "midge store",
    about = "Inspect and repair the data directory of a stopped midge",
    after_help = "A damaged store is refused at start with a message naming these commands.\n\
                  `check` says what is wrong; `repair` keeps what is readable and moves the \n\
                  damaged file aside (store.redb.corrupt-<time>) instead of deleting it."
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Verify every page and record checksum and the references between
    /// records; exit 1 if anything is damaged.
    Check(Dir),
    /// Keep what is readable: remove damaged rows, or copy the readable
    /// rows of a damaged file into a fresh one.
    Repair(Dir),
    /// Count what the store holds (fast, verifies nothing).
    Info(Dir),
}

#[derive(clap::Args, Debug)]
struct Dir {
    /// The data directory (as `midge serve --data-dir`).
    #[arg(long, value_name = "DIR", default_value = "midge-data")]
    data_dir: PathBuf,
}

pub fn main(args: Vec<OsString>) -> i32 {
    let args = match Args::try_parse_from(args) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match args.command {
        Command::Check(d) => match midge_store::check(&d.data_dir) {
            Ok(report) => {
                println!("{report}");
                i32::from(!report.is_ok())
            }
            Err(e) => fail("check", &e),
        },
        Command::Info(d) => match midge_store::info(&d.data_dir) {
            Ok(report) => {
                println!("{report}");
                0
            }
            Err(e) => fail("info", &e),
        },
        Command::Repair(d) => {
            // Reading a damaged file may make redb panic on pages it finds
            // impossible; repair catches that per table, and the default
            // hook's backtraces would only bury the report.
            let hook = std::panic::take_hook();
            std::panic::set_hook(Box::new(|_| {}));
            let result = midge_store::repair(&d.data_dir);
            std::panic::set_hook(hook);
            match result {
                Ok(report) => {
                    println!("{report}");
                    0
                }
                Err(e) => fail("repair", &e),
            }
        }
    }
}

fn fail(what: &str, e: &midge_store::StoreError) -> i32 {
    eprintln!("midge store {what}: {e}");
    1
}
