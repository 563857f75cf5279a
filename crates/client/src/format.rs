//! How `midge sub` prints a message: payload only, `-v`, `--json`, or a
//! mosquitto `-F` template (parsed once, rendered per message).

use midge_proto::Publish;

use crate::json::{midge_json, mosquitto_json};
use crate::time::Timestamp;

/// A message as received, with its resolved topic and arrival time.
#[derive(Debug, Clone)]
pub struct Received {
    pub publish: Publish,
    /// The topic, resolved from a topic alias when the PUBLISH had none.
    pub topic: String,
    pub time: Timestamp,
}

/// Output format of `midge sub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Format {
    /// The payload (default).
    Payload,
    /// `-v`: topic, a space, the payload (`(null)` when empty).
    Verbose,
    /// `--json`: midge's JSON lines.
    Json { pretty: bool },
    /// `-F`: a mosquitto format template.
    Template { pieces: Vec<Piece>, pretty: bool },
}

/// One part of a `-F` template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    /// `%[-][0][width][.precision]conv`.
    Field {
        conv: char,
        spec: Spec,
    },
    /// `@conv`: a strftime field of the arrival time.
    Time(char),
}

/// printf-like flags of a `%` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spec {
    pub left: bool,
    pub zero: bool,
    pub width: Option<usize>,
    pub precision: Option<usize>,
}

const FIELDS: &str = "%ACDEFIjJlmpPqrRStUxX";
const NUMERIC: &str = "AEFlmqrS";

impl Format {
    /// Parses a `-F` template; the error names the bad specifier.
    pub fn parse(template: &str, pretty: bool) -> Result<Format, String> {
        let mut pieces = Vec::new();
        let mut lit = Vec::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let mut spec = Spec::default();
                    while let Some(&f) = chars.peek() {
                        match f {
                            '-' => spec.left = true,
                            '0' => spec.zero = true,
                            _ => break,
                        }
                        chars.next();
                    }
                    spec.width = take_number(&mut chars);
                    if chars.peek() == Some(&'.') {
                        chars.next();
                        spec.precision = Some(take_number(&mut chars).unwrap_or(0));
                    }
                    let conv = chars
                        .next()
                        .ok_or("invalid format: '%' at the end of the template")?;
                    if !FIELDS.contains(conv) {
                        return Err(format!("invalid format specifier '%{conv}'"));
                    }
                    if conv == '%' {
                        lit.push(b'%');
                        continue;
                    }
                    flush_literal(&mut pieces, &mut lit);
                    pieces.push(Piece::Field { conv, spec });
                }
                '@' => match chars.next() {
                    Some('@') => lit.push(b'@'),
                    Some(t) => {
                        flush_literal(&mut pieces, &mut lit);
                        pieces.push(Piece::Time(t));
                    }
                    None => lit.push(b'@'),
                },
                '\\' => match chars.next() {
                    Some('\\') => lit.push(b'\\'),
                    Some('0') => lit.push(0),
                    Some('a') => lit.push(0x07),
                    Some('e') => lit.push(0x1b),
                    Some('n') => lit.push(b'\n'),
                    Some('r') => lit.push(b'\r'),
                    Some('t') => lit.push(b'\t'),
                    Some('v') => lit.push(0x0b),
                    Some(other) => {
                        lit.push(b'\\');
                        push_char(&mut lit, other);
                    }
                    None => lit.push(b'\\'),
                },
                other => push_char(&mut lit, other),
            }
        }
        flush_literal(&mut pieces, &mut lit);
        Ok(Format::Template { pieces, pretty })
    }

    /// Appends the rendering of `msg` to `out`, with a newline when `eol`.
    pub fn render(&self, msg: &Received, eol: bool, out: &mut Vec<u8>) {
        let payload = &msg.publish.payload;
        match self {
            Format::Payload => {
                out.extend_from_slice(payload);
                if eol {
                    out.push(b'\n');
                }
            }
            Format::Verbose => {
                // mosquitto prints "(null)" for an empty payload, and
                // nothing at all for it under -N.
                if !payload.is_empty() {
                    out.extend_from_slice(msg.topic.as_bytes());
                    out.push(b' ');
                    out.extend_from_slice(payload);
                    if eol {
                        out.push(b'\n');
                    }
                } else if eol {
                    out.extend_from_slice(msg.topic.as_bytes());
                    out.extend_from_slice(b" (null)\n");
                }
            }
            Format::Json { pretty } => {
                out.extend_from_slice(midge_json(msg, *pretty).as_bytes());
                if eol {
                    out.push(b'\n');
                }
            }
            Format::Template { pieces, pretty } => {
                for piece in pieces {
                    match piece {
                        Piece::Literal(bytes) => out.extend_from_slice(bytes),
                        Piece::Time(c) => match msg.time.strftime(*c) {
                            Some(s) => out.extend_from_slice(s.as_bytes()),
                            None => {
                                out.push(b'@');
                                push_char(out, *c);
                            }
                        },
                        Piece::Field { conv, spec } => {
                            let value = field(msg, *conv, *pretty);
                            apply_spec(&value, *spec, NUMERIC.contains(*conv), out);
                        }
                    }
                }
                if eol {
                    out.push(b'\n');
                }
            }
        }
    }
}

/// The raw bytes of one `%` field.
fn field(msg: &Received, conv: char, pretty: bool) -> Vec<u8> {
    let p = &msg.publish;
    let props = &p.properties;
    let num = |n: Option<u64>| n.map(|n| n.to_string().into_bytes()).unwrap_or_default();
    let text = |s: Option<&str>| s.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
    match conv {
        't' => msg.topic.as_bytes().to_vec(),
        'p' => p.payload.to_vec(),
        'q' => num(Some(p.qos as u64)),
        'r' => num(Some(u64::from(p.retain))),
        'l' => num(Some(p.payload.len() as u64)),
        'm' => num(Some(u64::from(p.pkid))),
        'x' => hex(&p.payload, false),
        'X' => hex(&p.payload, true),
        'I' => msg.time.iso8601().into_bytes(),
        'U' => msg.time.unix().into_bytes(),
        'j' => mosquitto_json(msg, false, pretty).into_bytes(),
        'J' => mosquitto_json(msg, true, pretty).into_bytes(),
        'A' => num(props.topic_alias.map(u64::from)),
        'C' => text(props.content_type.as_deref()),
        'D' => props
            .correlation_data
            .as_ref()
            .map(|d| d.to_vec())
            .unwrap_or_default(),
        'E' => num(props.message_expiry_interval.map(u64::from)),
        'F' => num(props.payload_format_indicator.map(u64::from)),
        'R' => text(props.response_topic.as_deref()),
        'S' => props
            .subscription_identifiers
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
            .into_bytes(),
        'P' => props
            .user_properties
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(" ")
            .into_bytes(),
        // `parse` only lets the characters of FIELDS through.
        _ => Vec::new(),
    }
}

/// Applies precision (max bytes of text, min digits of a number) and width.
fn apply_spec(value: &[u8], spec: Spec, numeric: bool, out: &mut Vec<u8>) {
    let mut v: Vec<u8> = value.to_vec();
    if let Some(prec) = spec.precision {
        if numeric {
            if !v.is_empty() && v.len() < prec {
                let mut padded = vec![b'0'; prec - v.len()];
                padded.extend_from_slice(&v);
                v = padded;
            }
        } else {
            v.truncate(prec);
        }
    }
    let width = spec.width.unwrap_or(0);
    let pad = width.saturating_sub(v.len());
    if spec.left {
        out.extend_from_slice(&v);
        out.extend(std::iter::repeat_n(b' ', pad));
    } else {
        let fill = if spec.zero && numeric && spec.precision.is_none() {
            b'0'
        } else {
            b' '
        };
        out.extend(std::iter::repeat_n(fill, pad));
        out.extend_from_slice(&v);
    }
}

fn hex(bytes: &[u8], upper: bool) -> Vec<u8> {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(digits[usize::from(b >> 4)]);
        out.push(digits[usize::from(b & 0x0f)]);
    }
    out
}

fn take_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        // Widths beyond a few thousand are nonsense; saturate rather than overflow.
        n = Some(
            n.unwrap_or(0)
                .saturating_mul(10)
                .saturating_add(d as usize)
                .min(65_535),
        );
        chars.next();
    }
    n
}

fn flush_literal(pieces: &mut Vec<Piece>, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        pieces.push(Piece::Literal(std::mem::take(lit)));
    }
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use bytestring::ByteString;
    use midge_proto::{Properties, QoS};

    fn msg(payload: &'static [u8]) -> Received {
        let properties = Properties {
            content_type: Some(ByteString::from_static("text/plain")),
            message_expiry_interval: Some(30),
            user_properties: vec![
                (ByteString::from_static("k1"), ByteString::from_static("v1")),
                (ByteString::from_static("k2"), ByteString::from_static("v2")),
            ],
            correlation_data: Some(Bytes::from_static(b"abc")),
            ..Properties::default()
        };
        Received {
            publish: Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: ByteString::from_static("a/b"),
                pkid: 7,
                payload: Bytes::from_static(payload),
                properties,
            },
            topic: "a/b".into(),
            time: Timestamp {
                secs: 1_795_307_258,
                nanos: 861_506_123,
            },
        }
    }

    fn render(f: &Format, m: &Received, eol: bool) -> Vec<u8> {
        let mut out = Vec::new();
        f.render(m, eol, &mut out);
        out
    }

    #[test]
    fn plain_and_verbose() {
        let m = msg(b"hello");
        assert_eq!(render(&Format::Payload, &m, true), b"hello\n");
        assert_eq!(render(&Format::Payload, &m, false), b"hello");
        assert_eq!(render(&Format::Verbose, &m, true), b"a/b hello\n");
        let empty = msg(b"");
        assert_eq!(render(&Format::Verbose, &empty, true), b"a/b (null)\n");
        assert_eq!(render(&Format::Verbose, &empty, false), b"");
    }

    #[test]
    fn template_fields() {
        let m = msg(b"hello");
        let f = Format::parse(
            "%t|%p|%q|%r|%l|%m|%C|%E|%R|%D|%P|%S|%F|%x|%X|%I|%U|%A|%%",
            false,
        )
        .unwrap();
        let out = String::from_utf8(render(&f, &m, true)).unwrap();
        assert_eq!(
            out,
            "a/b|hello|1|1|5|7|text/plain|30||abc|k1:v1 k2:v2|||68656c6c6f|68656C6C6F|\
             2026-11-22T00:27:38+0000|1795307258.861506123||%\n"
        );
    }

    #[test]
    fn width_precision_escapes_time() {
        let m = msg(b"hello");
        let f = Format::parse(
            "[%-6t][%6t][%.2p][%05l][%.3l]\\t@Y-@m-@d @@ @H:@M:@S.@N",
            false,
        )
        .unwrap();
        let out = String::from_utf8(render(&f, &m, false)).unwrap();
        assert_eq!(
            out,
            "[a/b   ][   a/b][he][00005][005]\t2026-11-22 @ 00:27:38.861506123"
        );
    }

    #[test]
    fn json_outputs() {
        let m = msg(b"{\"a\":1}");
        let f = Format::parse("%j", false).unwrap();
        let out = String::from_utf8(render(&f, &m, false)).unwrap();
        assert_eq!(
            out,
            "{\"tst\":\"2026-11-22T00:27:38.861506Z+0000\",\"topic\":\"a/b\",\"qos\":1,\"retain\":1,\
             \"payloadlen\":7,\"mid\":7,\"properties\":{\"message-expiry-interval\":30,\
             \"content-type\":\"text/plain\",\"correlation-data\":\"abc\",\
             \"user-properties\":{\"k1\":\"v1\",\"k2\":\"v2\"}},\"payload\":\"{\\\"a\\\":1}\"}"
        );
        let f = Format::parse("%J", false).unwrap();
        let out = String::from_utf8(render(&f, &m, false)).unwrap();
        assert!(out.ends_with(",\"payload\":{\"a\":1}}"), "{out}");

        let binary = msg(&[0xff, 0xfe]);
        let out =
            String::from_utf8(render(&Format::Json { pretty: false }, &binary, true)).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["payload_encoding"], "base64");
        assert_eq!(v["payload"], "//4=");
        assert_eq!(v["topic"], "a/b");
        assert_eq!(v["qos"], 1);
        assert_eq!(v["retain"], true);
        assert_eq!(v["time"], "2026-11-22T00:27:38.861506Z");
        assert_eq!(v["properties"]["content_type"], "text/plain");
        assert_eq!(v["properties"]["correlation_data"], "abc");
        assert_eq!(v["properties"]["user_properties"][1][0], "k2");
        let text = msg(b"hi");
        let out = String::from_utf8(render(&Format::Json { pretty: false }, &text, true)).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(
            (v["payload_encoding"].as_str(), v["payload"].as_str()),
            (Some("utf8"), Some("hi"))
        );
    }

    #[test]
    fn bad_templates() {
        assert!(Format::parse("%z", false).is_err());
        assert!(Format::parse("abc%", false).is_err());
        assert!(Format::parse("%-5", false).is_err());
    }
}
