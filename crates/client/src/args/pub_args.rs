//! `midge pub` options and their resolution into a [`PubConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Parser};
use midge_proto::QoS;

use super::common::{check_topic_name, parse_qos, ConnArgs, Kind};
use crate::config::ConnectConfig;

const EXAMPLES: &str = "Examples:
  midge pub -t sensors/1/temp -m 21.5
  midge pub -h broker -p 1883 -t a/b -q 1 -r -m on
  midge pub -L mqtts://user:pass@broker:8883/a/b --cafile ca.pem -m hi
  midge pub -L ws://localhost:8080/a/b -m hi
  tail -f log | midge pub -t logs -l -q 1
  midge pub -V 5 -t a -m x -D publish user-property k v -D publish message-expiry-interval 30";

/// Publish messages to an MQTT broker (mosquitto_pub compatible).
#[derive(Debug, Parser)]
#[command(
    name = "midge pub",
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = EXAMPLES,
    group(ArgGroup::new("source").args(["message", "file", "stdin_line", "stdin_file", "null_message"]).required(true).multiple(false))
)]
pub struct PubArgs {
    /// Topic to publish to
    #[arg(
        short = 't',
        long = "topic",
        value_name = "TOPIC",
        allow_hyphen_values = true
    )]
    pub topic: Option<String>,
    /// Message payload
    #[arg(
        short = 'm',
        long = "message",
        value_name = "MESSAGE",
        allow_hyphen_values = true
    )]
    pub message: Option<String>,
    /// Send the contents of a file as the message
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Read stdin and send one message per line (without its newline)
    #[arg(short = 'l', long = "stdin-line")]
    pub stdin_line: bool,
    /// Read stdin to its end and send it as one message
    #[arg(short = 's', long = "stdin-file")]
    pub stdin_file: bool,
    /// Send a null (zero length) message
    #[arg(short = 'n', long = "null-message")]
    pub null_message: bool,
    /// Quality of service: 0, 1 or 2
    #[arg(short = 'q', long = "qos", value_name = "QOS", value_parser = parse_qos, default_value = "0")]
    pub qos: QoS,
    /// Retain the message
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
    /// With -m, -f, -s or -n: publish the message N times
    #[arg(long = "repeat", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Seconds to wait between repeated publishes (fractions allowed)
    #[arg(long = "repeat-delay", value_name = "SECONDS", default_value_t = 0.0)]
    pub repeat_delay: f64,
    /// Maximum QoS 1/2 messages in flight at once
    #[arg(short = 'M', long = "max-inflight", value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..))]
    pub max_inflight: u16,
    #[command(
        flatten,
        next_help_heading = "Connection, session, TLS and MQTT 5.0 options"
    )]
    pub conn: ConnArgs,
}

/// Where the payloads come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// One payload (from -m, -f, -s or -n), published `repeat` times.
    Fixed {
        payload: Vec<u8>,
        repeat: u32,
        delay: Duration,
    },
    /// One message per line of stdin.
    Lines,
}

/// Payload not yet read: -f and -s are read by the caller with its I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadSpec {
    Bytes(Vec<u8>),
    File(PathBuf),
    StdinWhole,
    StdinLines,
}

/// A `midge pub` run, resolved.
#[derive(Debug)]
pub struct PubConfig {
    pub connect: ConnectConfig,
    pub topic: String,
    pub qos: QoS,
    pub retain: bool,
    pub payload: PayloadSpec,
    pub repeat: u32,
    pub repeat_delay: Duration,
    pub max_inflight: u16,
}

impl PubArgs {
    pub fn resolve(self, warn: &mut dyn FnMut(&str)) -> Result<PubConfig, String> {
        let resolved = self.conn.resolve(Kind::Pub, warn)?;
        let topic = self
            .topic
            .or(resolved.url_topic)
            .ok_or("no topic given: use -t TOPIC or a -L URL with a topic")?;
        check_topic_name(&topic).map_err(|e| format!("invalid topic '{topic}': {e}"))?;
        let payload = if let Some(m) = self.message {
            PayloadSpec::Bytes(m.into_bytes())
        } else if let Some(f) = self.file {
            PayloadSpec::File(f)
        } else if self.stdin_line {
            PayloadSpec::StdinLines
        } else if self.stdin_file {
            PayloadSpec::StdinWhole
        } else {
            PayloadSpec::Bytes(Vec::new())
        };
        if !(self.repeat_delay.is_finite() && self.repeat_delay >= 0.0) {
            return Err(format!("invalid --repeat-delay {}", self.repeat_delay));
        }
        if self.repeat > 1 && payload == PayloadSpec::StdinLines {
            warn("Warning: --repeat is ignored with -l");
        }
        Ok(PubConfig {
            connect: resolved.config,
            topic,
            qos: self.qos,
            retain: self.retain,
            payload,
            repeat: self.repeat,
            repeat_delay: Duration::from_secs_f64(self.repeat_delay),
            max_inflight: self.max_inflight,
        })
    }
}
