//! `midge pub`: connect, publish the message(s) with a bounded window of
//! QoS 1/2 messages in flight, wait for every acknowledgement, disconnect.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::QoS;
use tokio::sync::mpsc;

use crate::args::pub_args::{PayloadSpec, PubConfig};
use crate::conn::{write_line, SharedWriter};
use crate::error::ClientError;
use crate::reason::reason_string;
use crate::runner::{self, interrupted, sleep_until};

/// Lines read ahead of the network at most (bounds memory for huge inputs).
const LINE_QUEUE: usize = 1024;
/// Messages queued per write at most, so acknowledgements are read often.
const BATCH: usize = 256;

/// Where payloads come from while publishing.
enum Source {
    Fixed {
        payload: Bytes,
        remaining: u32,
        delay: Duration,
        next_at: Option<Instant>,
    },
    Lines(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl Source {
    /// The next payload, `None` at the end. Cancel-safe: the repeat delay is
    /// kept as a deadline and a channel receive loses nothing.
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        match self {
            Source::Fixed {
                payload,
                remaining,
                delay,
                next_at,
            } => {
                if *remaining == 0 {
                    return None;
                }
                if let Some(at) = *next_at {
                    tokio::time::sleep_until(at.into()).await;
                }
                *remaining -= 1;
                *next_at = (!delay.is_zero()).then(|| Instant::now() + *delay);
                Some(Ok(payload.clone()))
            }
            Source::Lines(rx) => rx.recv().await,
        }
    }

    /// The next payload if one is ready without waiting.
    fn try_next(&mut self) -> Option<Option<std::io::Result<Bytes>>> {
        match self {
            Source::Fixed {
                payload,
                remaining,
                next_at,
                ..
            } => {
                if next_at.is_some() {
                    return None;
                }
                if *remaining == 0 {
                    return Some(None);
                }
                *remaining -= 1;
                Some(Some(Ok(payload.clone())))
            }
            Source::Lines(rx) => match rx.try_recv() {
                Ok(line) => Some(Some(line)),
                Err(mpsc::error::TryRecvError::Empty) => None,
                Err(mpsc::error::TryRecvError::Disconnected) => Some(None),
            },
        }
    }
}

/// Reads stdin line by line on a thread of its own (stdin reads block) and
/// hands the lines over through a bounded channel.
fn spawn_line_reader(stdin: Box<dyn Read + Send>) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(LINE_QUEUE);
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdin);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(_) => {
                    // As mosquitto_pub: only the '\n' is removed ('\r' stays).
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if tx.blocking_send(Ok(Bytes::from(line))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    rx
}

/// Loads the payload before connecting (so a missing file fails fast) and
/// builds the source.
fn make_source(cfg: &PubConfig, stdin: Box<dyn Read + Send>) -> Result<Source, ClientError> {
    let fixed = |payload: Vec<u8>| Source::Fixed {
        payload: Bytes::from(payload),
        remaining: cfg.repeat,
        delay: cfg.repeat_delay,
        next_at: None,
    };
    Ok(match &cfg.payload {
        PayloadSpec::Bytes(b) => fixed(b.clone()),
        PayloadSpec::File(path) => {
            fixed(std::fs::read(path).map_err(|source| ClientError::File {
                path: path.display().to_string(),
                source,
            })?)
        }
        PayloadSpec::StdinWhole => {
            let mut buf = Vec::new();
            let mut stdin = stdin;
            stdin.read_to_end(&mut buf)?;
            fixed(buf)
        }
        PayloadSpec::StdinLines => Source::Lines(spawn_line_reader(stdin)),
    })
}

/// Runs `midge pub`.
pub async fn run(
    cfg: PubConfig,
    stdin: Box<dyn Read + Send>,
    stderr: SharedWriter,
    handle_ctrl_c: bool,
) -> Result<(), ClientError> {
    let mut source = make_source(&cfg, stdin)?;
    let mut session = runner::connect(&cfg.connect, &stderr).await?;
    let deadline = cfg.connect.timeout.map(|w| Instant::now() + w);
    let limits = session.limits;
    if cfg.qos > limits.maximum_qos {
        return Err(ClientError::Usage(format!(
            "the broker supports QoS up to {}",
            limits.maximum_qos as u8
        )));
    }
    if cfg.retain && !limits.retain_available {
        return Err(ClientError::Usage(
            "the broker does not support retained messages".into(),
        ));
    }
    let props = cfg.connect.props.publish.clone();
    if let Some(alias) = props.topic_alias {
        if alias > limits.topic_alias_maximum {
            return Err(ClientError::Usage(format!(
                "topic alias {alias} is over the broker's maximum of {}",
                limits.topic_alias_maximum
            )));
        }
    }
    let window = usize::from(cfg.max_inflight.min(limits.receive_maximum));
    let topic = ByteString::from(cfg.topic.clone());
    let mut alias_set_up = false;
    let mut inflight = 0usize;
    let mut failed = 0usize;
    let mut source_done = false;
    let mut interrupt = std::pin::pin!(interrupted(handle_ctrl_c));

    loop {
        if source_done && inflight == 0 {
            break;
        }
        let can_send = !source_done && (cfg.qos == QoS::AtMostOnce || inflight < window);
        let keep_alive = session.keep_alive_deadline();
        tokio::select! {
            event = session.next_event() => {
                if let crate::session::Event::Acked { pkid, reason } = event? {
                    inflight = inflight.saturating_sub(1);
                    if reason.is_error() {
                        failed += 1;
                        write_line(&stderr, &format!(
                            "Warning: Publish {pkid} failed: {}.", reason_string(&reason)));
                    }
                }
            }
            item = source.next(), if can_send => {
                let mut item = item;
                let mut batch = 0;
                loop {
                    match item {
                        None => {
                            source_done = true;
                            break;
                        }
                        Some(Err(e)) => return Err(ClientError::Io(e)),
                        Some(Ok(payload)) => {
                            // 5.0 topic alias: the first PUBLISH carries topic and
                            // alias, the later ones the alias only.
                            let t = if props.topic_alias.is_some() && alias_set_up {
                                ByteString::new()
                            } else {
                                alias_set_up = true;
                                topic.clone()
                            };
                            session.queue_publish(t, payload, cfg.qos, cfg.retain, props.clone())?;
                            if cfg.qos != QoS::AtMostOnce {
                                inflight += 1;
                            }
                        }
                    }
                    batch += 1;
                    if batch >= BATCH || (cfg.qos != QoS::AtMostOnce && inflight >= window) {
                        break;
                    }
                    match source.try_next() {
                        Some(next) => item = next,
                        None => break,
                    }
                }
            }
            _ = sleep_until(keep_alive) => session.on_keep_alive()?,
            _ = sleep_until(deadline) => {
                // Leave cleanly (no will) before reporting the timeout.
                session.disconnect().await;
                return Err(ClientError::Timeout);
            }
            _ = &mut interrupt, if !source_done => source_done = true,
        }
        session.flush().await?;
    }
    session.disconnect().await;
    if failed > 0 {
        return Err(ClientError::PublishFailed(failed));
    }
    Ok(())
}
