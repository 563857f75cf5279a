//! `midge pub`: connect, publish the message(s) with a bounded window of
//! QoS 1/2 messages in flight, wait for every acknowledgement, disconnect.
//!
//! In line mode (`-l`) a connection lost after the first CONNACK is not the
//! end, as with mosquitto_pub (libmosquitto's threaded loop): stdin is still
//! read, a second later midge connects again with the same options, sends
//! again what was not acknowledged, and goes on with the lines. The other
//! modes publish once and end at a lost connection, as mosquitto_pub's.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Publish, QoS};
use tokio::sync::mpsc;

use crate::args::pub_args::{PayloadSpec, PubConfig};
use crate::conn::{write_line, SharedWriter};
use crate::error::ClientError;
use crate::reason::reason_string;
use crate::runner::{self, lost, sleep_until, CtrlC, End};
use crate::session::{Event, Session};

/// Lines read ahead of the network at most: this bounds memory for huge
/// inputs, and is the queue that holds the lines read while the connection
/// is down (beyond it, stdin is not read until the broker is back).
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

/// A QoS 1/2 message sent and not yet acknowledged.
struct Unacked {
    /// Order of first sending, so that a new connection sends them again in
    /// the order they were read.
    seq: u64,
    payload: Bytes,
    /// QoS 2: PUBREC came, PUBREL was sent; only PUBCOMP is missing.
    released: bool,
}

/// What to send on a new connection in place of a lost one's.
enum Resend {
    Publish(Bytes),
    Release,
}

/// The QoS 1/2 messages not yet acknowledged, by packet id, kept for a
/// reconnection to send them again. Holds at most `-M` messages.
#[derive(Default)]
struct Outbox {
    unacked: HashMap<u16, Unacked>,
    next_seq: u64,
    /// On a new connection: the packet ids still to send again, oldest first.
    resend: VecDeque<u16>,
}

impl Outbox {
    fn sent(&mut self, pkid: u16, payload: Bytes) {
        self.unacked.insert(
            pkid,
            Unacked {
                seq: self.next_seq,
                payload,
                released: false,
            },
        );
        self.next_seq += 1;
    }

    fn released(&mut self, pkid: u16) {
        if let Some(u) = self.unacked.get_mut(&pkid) {
            u.released = true;
        }
    }

    /// The flow of `pkid` is over; false if it was not ours.
    fn acked(&mut self, pkid: u16) -> bool {
        let ours = self.unacked.remove(&pkid).is_some();
        if ours && !self.resend.is_empty() {
            self.resend.retain(|p| *p != pkid);
        }
        ours
    }

    fn is_empty(&self) -> bool {
        self.unacked.is_empty()
    }

    /// Messages sent on this connection and not yet acknowledged.
    fn in_flight(&self) -> usize {
        self.unacked.len() - self.resend.len()
    }

    /// A new connection. What was not acknowledged is sent again, oldest
    /// first, with the same packet ids, as libmosquitto does whether or not
    /// the session was kept. Only a broker that kept the session (CONNACK
    /// session present) still knows the QoS 2 flows it answered with PUBREC:
    /// it gets their PUBREL again. A broker without the session has those
    /// messages already and nothing left to complete: they are done.
    fn reconnected(&mut self, session_present: bool) {
        if !session_present {
            self.unacked.retain(|_, u| !u.released);
        }
        let mut order: Vec<(u64, u16)> = self.unacked.iter().map(|(p, u)| (u.seq, *p)).collect();
        order.sort_unstable();
        self.resend = order.into_iter().map(|(_, p)| p).collect();
    }

    /// The next message to send again on this connection.
    fn next_resend(&mut self) -> Option<(u16, Resend)> {
        while let Some(pkid) = self.resend.pop_front() {
            if let Some(u) = self.unacked.get(&pkid) {
                let what = if u.released {
                    Resend::Release
                } else {
                    Resend::Publish(u.payload.clone())
                };
                return Some((pkid, what));
            }
        }
        None
    }
}

/// Progress of one run, kept across reconnections.
struct State {
    outbox: Outbox,
    /// Publishes the broker refused (5.0 reason codes).
    failed: usize,
    /// No more payloads will be read: the source ended, or Ctrl-C.
    source_done: bool,
    /// Ctrl-C was pressed once: a second press stops waiting for acks.
    interrupted: bool,
}

impl State {
    fn done(&self) -> bool {
        self.source_done && self.outbox.is_empty()
    }

    /// The exit status of a run that ends now.
    fn result(&self) -> Result<(), ClientError> {
        if self.failed > 0 {
            return Err(ClientError::PublishFailed(self.failed));
        }
        Ok(())
    }
}

/// What one connection may send, from the broker's CONNACK.
struct Conn {
    window: usize,
    /// 5.0 topic alias: the first PUBLISH on a connection carries topic and
    /// alias, the later ones the alias only.
    alias_set_up: bool,
}

/// Runs `midge pub`.
pub async fn run(
    cfg: PubConfig,
    stdin: Box<dyn Read + Send>,
    stderr: SharedWriter,
    handle_ctrl_c: bool,
) -> Result<(), ClientError> {
    let mut source = make_source(&cfg, stdin)?;
    // mosquitto_pub reconnects in line mode only: the others run
    // libmosquitto's plain loop, which ends at the first error.
    let reconnects = matches!(source, Source::Lines(_));
    // Only this first attempt fails the run at once, as mosquitto_pub's.
    let mut session = runner::connect(&cfg.connect, &stderr).await?;
    let deadline = cfg.connect.timeout.map(|w| Instant::now() + w);
    let mut ctrl_c = CtrlC::new(handle_ctrl_c);
    let mut state = State {
        outbox: Outbox::default(),
        failed: 0,
        source_done: false,
        interrupted: false,
    };
    loop {
        let end = serve(
            &cfg,
            &mut session,
            &mut state,
            &mut source,
            deadline,
            &mut ctrl_c,
            &stderr,
        )
        .await?;
        let why = match end {
            End::Finished => {
                session.disconnect().await;
                return state.result();
            }
            End::TimedOut => {
                // Leave cleanly (no will) before reporting the timeout.
                session.disconnect().await;
                return Err(ClientError::Timeout);
            }
            End::Lost(_) if state.done() => return state.result(),
            End::Lost(why) if !reconnects => return Err(ClientError::ConnectionLost(why)),
            End::Lost(why) => why,
        };
        runner::debug_lost(&cfg.connect, &stderr, &session.client_id, &why);
        let Some(mut next) =
            runner::reconnect(&cfg.connect, &stderr, deadline, &mut ctrl_c).await?
        else {
            // Ctrl-C while disconnected: nothing to close.
            return state.result();
        };
        next.continue_packet_ids(&session);
        session = next;
        state.outbox.reconnected(session.session_present);
    }
}

/// Checks what the options need against what the broker's CONNACK allows;
/// returns the in-flight window for this connection.
fn check_limits(cfg: &PubConfig, session: &Session) -> Result<usize, ClientError> {
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
    if let Some(alias) = cfg.connect.props.publish.topic_alias {
        if alias > limits.topic_alias_maximum {
            return Err(ClientError::Usage(format!(
                "topic alias {alias} is over the broker's maximum of {}",
                limits.topic_alias_maximum
            )));
        }
    }
    Ok(usize::from(cfg.max_inflight.min(limits.receive_maximum)))
}

/// The PUBLISH of `payload`, before its packet id is known.
fn publish_packet(cfg: &PubConfig, conn: &mut Conn, payload: Bytes) -> Publish {
    let properties = cfg.connect.props.publish.clone();
    let topic = if properties.topic_alias.is_some() && conn.alias_set_up {
        ByteString::new()
    } else {
        conn.alias_set_up = true;
        ByteString::from(cfg.topic.clone())
    };
    Publish {
        dup: false,
        qos: cfg.qos,
        retain: cfg.retain,
        topic,
        pkid: 0,
        payload,
        properties,
    }
}

/// Publishes on one connection until everything is sent and acknowledged,
/// `-W` expires, or the connection is lost.
async fn serve(
    cfg: &PubConfig,
    session: &mut Session,
    state: &mut State,
    source: &mut Source,
    deadline: Option<Instant>,
    ctrl_c: &mut CtrlC,
    stderr: &SharedWriter,
) -> Result<End, ClientError> {
    let mut conn = Conn {
        window: check_limits(cfg, session)?,
        alias_set_up: false,
    };
    loop {
        if state.done() {
            return Ok(End::Finished);
        }
        // What a lost connection left unacknowledged goes first, within the
        // window of this one.
        while state.outbox.in_flight() < conn.window {
            let Some((pkid, what)) = state.outbox.next_resend() else {
                break;
            };
            match what {
                Resend::Publish(payload) => {
                    let packet = publish_packet(cfg, &mut conn, payload);
                    session.requeue_publish(pkid, packet)?;
                }
                Resend::Release => session.requeue_pubrel(pkid)?,
            }
        }
        if let Err(e) = session.flush().await {
            return lost(e);
        }
        let window_open = cfg.qos == QoS::AtMostOnce || state.outbox.in_flight() < conn.window;
        let can_send = !state.source_done && state.outbox.resend.is_empty() && window_open;
        let keep_alive = session.keep_alive_deadline();
        let step = tokio::select! {
            event = session.next_event() => {
                event.map(|e| acknowledged(e, state, stderr))
            }
            item = source.next(), if can_send => {
                publish_batch(item, cfg, &mut conn, session, state, source)
            }
            _ = sleep_until(keep_alive) => session.on_keep_alive(),
            _ = sleep_until(deadline) => return Ok(End::TimedOut),
            _ = ctrl_c.pressed() => {
                // The first Ctrl-C stops reading and lets what is in flight
                // be acknowledged; a second one does not wait.
                if state.interrupted {
                    return Ok(End::Finished);
                }
                state.interrupted = true;
                state.source_done = true;
                Ok(())
            }
        };
        if let Err(e) = step {
            return lost(e);
        }
    }
}

/// Notes an acknowledgement of one of our publishes.
fn acknowledged(event: Event, state: &mut State, stderr: &SharedWriter) {
    match event {
        Event::Acked { pkid, reason } => {
            // An id that is not ours (a broker's mistake) counts for nothing.
            let ours = state.outbox.acked(pkid);
            if ours && reason.is_error() {
                state.failed += 1;
                write_line(
                    stderr,
                    &format!(
                        "Warning: Publish {pkid} failed: {}.",
                        reason_string(&reason)
                    ),
                );
            }
        }
        Event::Released { pkid } => state.outbox.released(pkid),
        _ => {}
    }
}

/// Queues `first` and whatever else the source has ready, up to a batch and
/// the window.
fn publish_batch(
    first: Option<std::io::Result<Bytes>>,
    cfg: &PubConfig,
    conn: &mut Conn,
    session: &mut Session,
    state: &mut State,
    source: &mut Source,
) -> Result<(), ClientError> {
    let mut item = first;
    let mut batch = 0;
    loop {
        match item {
            None => {
                state.source_done = true;
                return Ok(());
            }
            Some(Err(e)) => return Err(ClientError::Io(e)),
            Some(Ok(payload)) => {
                let p = publish_packet(cfg, conn, payload.clone());
                let pkid =
                    session.queue_publish(p.topic, p.payload, p.qos, p.retain, p.properties)?;
                if cfg.qos != QoS::AtMostOnce {
                    state.outbox.sent(pkid, payload);
                }
            }
        }
        batch += 1;
        if batch >= BATCH || (cfg.qos != QoS::AtMostOnce && state.outbox.in_flight() >= conn.window)
        {
            return Ok(());
        }
        match source.try_next() {
            Some(next) => item = next,
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resends(outbox: &mut Outbox) -> Vec<(u16, Option<Bytes>)> {
        std::iter::from_fn(|| outbox.next_resend())
            .map(|(pkid, what)| match what {
                Resend::Publish(p) => (pkid, Some(p)),
                Resend::Release => (pkid, None),
            })
            .collect()
    }

    /// Three messages in flight, packet ids wrapped around: 65535, 1, 2.
    fn outbox() -> Outbox {
        let mut o = Outbox::default();
        for (pkid, payload) in [(65535, "a"), (1, "b"), (2, "c")] {
            o.sent(pkid, Bytes::from(payload));
        }
        o
    }

    #[test]
    fn unacknowledged_messages_are_sent_again_in_the_order_they_were_read() {
        let mut o = outbox();
        assert!(o.acked(1));
        assert!(!o.acked(7), "not ours");
        o.reconnected(false);
        assert_eq!(o.in_flight(), 0);
        assert_eq!(
            resends(&mut o),
            [(65535, Some(Bytes::from("a"))), (2, Some(Bytes::from("c")))]
        );
        assert_eq!(o.in_flight(), 2);
    }

    #[test]
    fn a_released_qos_2_flow_gets_its_pubrel_again_only_from_a_kept_session() {
        let mut kept = outbox();
        kept.released(1);
        kept.reconnected(true);
        assert_eq!(
            resends(&mut kept),
            [
                (65535, Some(Bytes::from("a"))),
                (1, None),
                (2, Some(Bytes::from("c")))
            ]
        );
        let mut fresh = outbox();
        fresh.released(1);
        fresh.reconnected(false);
        assert_eq!(
            resends(&mut fresh),
            [(65535, Some(Bytes::from("a"))), (2, Some(Bytes::from("c")))]
        );
    }

    #[test]
    fn an_ack_for_a_message_waiting_to_be_resent_takes_it_off_the_list() {
        let mut o = outbox();
        o.reconnected(true);
        assert!(o.acked(1));
        assert_eq!(o.in_flight(), 0);
        assert_eq!(resends(&mut o).len(), 2);
        assert!(o.acked(65535) && o.acked(2) && o.is_empty());
    }
}
