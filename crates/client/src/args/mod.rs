//! Command-line parsing of `midge pub` and `midge sub` (clap), mirroring
//! mosquitto_pub/mosquitto_sub: `-h` is the host, help is `--help` only.

pub mod common;
pub mod pub_args;
pub mod sub_args;

pub use common::{ConnArgs, Kind, Resolved};
pub use pub_args::PubArgs;
pub use sub_args::SubArgs;
