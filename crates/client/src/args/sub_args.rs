//! `midge sub` options and their resolution into a [`SubConfig`].

use clap::Parser;
use midge_proto::QoS;

use super::common::{check_topic_filter, parse_qos, ConnArgs, Kind};
use crate::config::ConnectConfig;
use crate::format::Format;

const EXAMPLES: &str = "Examples:
  midge sub -t 'sensors/#' -v
  midge sub -t a -t b -q 1 -C 10 -W 30
  midge sub -L mqtts://user:pass@broker:8883/a/# --cafile ca.pem
  midge sub -L ws://localhost:8080/a/# -v
  midge sub -t '#' --json
  midge sub -t '#' -F '%I %t %p'
  midge sub -t 'old/#' --remove-retained --retained-only

Format (-F): %t topic, %p payload, %q QoS, %r retain, %l length, %m message id,
  %x/%X payload hex, %j JSON, %J JSON with the payload parsed as JSON,
  %I ISO 8601 time, %U Unix time, %C content type, %D correlation data,
  %E expiry interval, %F payload format, %R response topic, %S subscription id,
  %A topic alias, %P user properties, %% a '%'; @Y @m @d @H @M @S @N @s @z ...
  (strftime fields, UTC), @@ an '@'; \\n \\t \\r \\v \\a \\e \\0 \\\\ escapes;
  width and precision as in printf: %-20t %10.4p %05l.";

/// Subscribe to topics and print the messages (mosquitto_sub compatible).
#[derive(Debug, Parser)]
#[command(
    name = "midge sub",
    disable_help_flag = true,
    disable_version_flag = true,
    after_help = EXAMPLES
)]
pub struct SubArgs {
    /// Topic filter to subscribe to (repeatable)
    #[arg(
        short = 't',
        long = "topic",
        value_name = "FILTER",
        allow_hyphen_values = true
    )]
    pub topics: Vec<String>,
    /// Quality of service of the subscriptions: 0, 1 or 2
    #[arg(short = 'q', long = "qos", value_name = "QOS", value_parser = parse_qos, default_value = "0")]
    pub qos: QoS,
    /// Exit after printing this many messages
    #[arg(short = 'C', long = "count", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// Print the topic before each payload
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Do not print a newline after each message
    #[arg(short = 'N', long = "no-eol")]
    pub no_eol: bool,
    /// Do not print stale (retained) messages
    #[arg(short = 'R', long = "no-retained")]
    pub no_retained: bool,
    /// Only handle retained messages; exit at the first live one
    #[arg(long = "retained-only")]
    pub retained_only: bool,
    /// Clear each retained message received (publish an empty retained message)
    #[arg(long = "remove-retained")]
    pub remove_retained: bool,
    /// Topic filter whose messages are not printed (repeatable)
    #[arg(
        short = 'T',
        long = "filter-out",
        value_name = "FILTER",
        allow_hyphen_values = true
    )]
    pub filter_out: Vec<String>,
    /// Unsubscribe from this topic filter once connected (repeatable)
    #[arg(
        short = 'U',
        long = "unsubscribe",
        value_name = "FILTER",
        allow_hyphen_values = true
    )]
    pub unsubscribe: Vec<String>,
    /// Exit once the subscriptions are acknowledged
    #[arg(short = 'E', long = "exit-after-subscribe")]
    pub exit_after_subscribe: bool,
    /// Output format (see below)
    #[arg(
        short = 'F',
        long = "format",
        value_name = "FORMAT",
        allow_hyphen_values = true,
        conflicts_with = "json"
    )]
    pub format: Option<String>,
    /// Print one JSON object per message: topic, payload (text, or base64 when
    /// not UTF-8, as payload_encoding says), qos, retain, properties, time
    #[arg(long = "json")]
    pub json: bool,
    /// Pretty-print JSON output (--json, %j, %J)
    #[arg(long = "pretty")]
    pub pretty: bool,
    #[command(
        flatten,
        next_help_heading = "Connection, session, TLS and MQTT 5.0 options"
    )]
    pub conn: ConnArgs,
}

/// A `midge sub` run, resolved.
#[derive(Debug)]
pub struct SubConfig {
    pub connect: ConnectConfig,
    pub topics: Vec<String>,
    pub qos: QoS,
    pub count: Option<u64>,
    pub no_retained: bool,
    pub retained_only: bool,
    pub remove_retained: bool,
    pub filter_out: Vec<String>,
    pub unsubscribe: Vec<String>,
    pub exit_after_subscribe: bool,
    pub format: Format,
    pub eol: bool,
}

impl SubArgs {
    pub fn resolve(self, warn: &mut dyn FnMut(&str)) -> Result<SubConfig, String> {
        let resolved = self.conn.resolve(Kind::Sub, warn)?;
        let mut topics = self.topics;
        if let Some(t) = resolved.url_topic {
            topics.insert(0, t);
        }
        if topics.is_empty() && self.unsubscribe.is_empty() {
            return Err("no topic given: use -t FILTER or a -L URL with a topic".into());
        }
        for t in topics
            .iter()
            .chain(&self.filter_out)
            .chain(&self.unsubscribe)
        {
            check_topic_filter(t).map_err(|e| format!("invalid topic filter '{t}': {e}"))?;
        }
        let format = if self.json {
            Format::Json {
                pretty: self.pretty,
            }
        } else if let Some(f) = &self.format {
            Format::parse(f, self.pretty)?
        } else if self.verbose {
            Format::Verbose
        } else {
            Format::Payload
        };
        Ok(SubConfig {
            connect: resolved.config,
            topics,
            qos: self.qos,
            count: self.count,
            no_retained: self.no_retained,
            retained_only: self.retained_only,
            remove_retained: self.remove_retained,
            filter_out: self.filter_out,
            unsubscribe: self.unsubscribe,
            exit_after_subscribe: self.exit_after_subscribe,
            format,
            eol: !self.no_eol,
        })
    }
}
