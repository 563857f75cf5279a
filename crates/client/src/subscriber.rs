//! `midge sub`: connect, subscribe, print each message in the chosen format
//! until `-C`, `-W`, `--retained-only`, `-E`, Ctrl-C or a closed stdout.
//!
//! A connection lost after the first CONNACK is not the end, as with
//! mosquitto_sub (libmosquitto's `loop_forever`): wait a second, connect
//! again with the same options, and subscribe again. Counting (`-C`) and the
//! `-W` deadline span the whole run.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;
use midge_proto::{Properties, QoS};

use crate::args::sub_args::SubConfig;
use crate::conn::{write_line, SharedWriter};
use crate::error::ClientError;
use crate::format::Received;
use crate::reason::reason_string;
use crate::runner::{self, lost, sleep_until, CtrlC, End};
use crate::session::{Event, Session};

/// Progress of one run, kept across reconnections.
struct State {
    printed: u64,
    /// Set once the run should end (after outstanding clears are acknowledged).
    stopping: bool,
    /// Our `--remove-retained` clears still waiting for PUBACK, by packet id,
    /// with their topic so that a new connection can send them again.
    clears_in_flight: HashMap<u16, String>,
    subscribe_pkid: Option<u16>,
    unsubscribe_pkid: Option<u16>,
    out: Vec<u8>,
}

/// Runs `midge sub`, printing to `stdout`.
pub async fn run(
    cfg: SubConfig,
    stdout: &mut (dyn Write + Send),
    stderr: SharedWriter,
    handle_ctrl_c: bool,
) -> Result<(), ClientError> {
    // Only this first attempt fails the run at once, as mosquitto_sub's.
    let mut session = runner::connect(&cfg.connect, &stderr).await?;
    let deadline = cfg.connect.timeout.map(|w| Instant::now() + w);
    let mut ctrl_c = CtrlC::new(handle_ctrl_c);
    let mut state = State {
        printed: 0,
        stopping: false,
        clears_in_flight: HashMap::new(),
        subscribe_pkid: None,
        unsubscribe_pkid: None,
        out: Vec::with_capacity(4096),
    };
    loop {
        let end = match start(&cfg, &mut session, &mut state).await {
            Ok(()) => {
                serve(
                    &cfg,
                    &mut session,
                    &mut state,
                    deadline,
                    &mut ctrl_c,
                    stdout,
                    &stderr,
                )
                .await?
            }
            Err(e) => lost(e)?,
        };
        let why = match end {
            End::Finished => {
                session.disconnect().await;
                return Ok(());
            }
            End::TimedOut => {
                // Leave cleanly (no will) before reporting the timeout.
                session.disconnect().await;
                return Err(ClientError::Timeout);
            }
            // Nothing left to send: what was asked for is done.
            End::Lost(_) if state.stopping && state.clears_in_flight.is_empty() => return Ok(()),
            End::Lost(why) => why,
        };
        runner::debug_lost(&cfg.connect, &stderr, &session.client_id, &why);
        let Some(mut next) =
            runner::reconnect(&cfg.connect, &stderr, deadline, &mut ctrl_c).await?
        else {
            // Ctrl-C while disconnected: nothing to close.
            return Ok(());
        };
        next.resume(session);
        session = next;
    }
}

/// What each connection begins with, as mosquitto_sub's on_connect: the
/// clears not yet acknowledged, then SUBSCRIBE to every `-t` and UNSUBSCRIBE
/// from every `-U` (again after a reconnection: the broker may have lost
/// them). A run that is only finishing its clears subscribes no more.
async fn start(
    cfg: &SubConfig,
    session: &mut Session,
    state: &mut State,
) -> Result<(), ClientError> {
    let props = &cfg.connect.props;
    // Sent before SUBSCRIBE, so that a cleared message is not delivered
    // again as retained.
    let clears: Vec<String> = state.clears_in_flight.drain().map(|(_, t)| t).collect();
    for topic in clears {
        let pkid = queue_clear(session, &topic)?;
        state.clears_in_flight.insert(pkid, topic);
    }
    state.subscribe_pkid = None;
    state.unsubscribe_pkid = None;
    if !state.stopping {
        if !cfg.topics.is_empty() {
            state.subscribe_pkid =
                Some(session.queue_subscribe(&cfg.topics, cfg.qos, props.subscribe.clone())?);
        }
        if !cfg.unsubscribe.is_empty() {
            state.unsubscribe_pkid =
                Some(session.queue_unsubscribe(&cfg.unsubscribe, props.unsubscribe.clone())?);
        }
    }
    session.flush().await
}

/// Handles one connection until the run is done, `-W` expires, or the
/// connection is lost.
async fn serve(
    cfg: &SubConfig,
    session: &mut Session,
    state: &mut State,
    deadline: Option<Instant>,
    ctrl_c: &mut CtrlC,
    stdout: &mut (dyn Write + Send),
    stderr: &SharedWriter,
) -> Result<End, ClientError> {
    loop {
        if state.stopping && state.clears_in_flight.is_empty() {
            return Ok(End::Finished);
        }
        let keep_alive = session.keep_alive_deadline();
        let step = tokio::select! {
            event = session.next_event() => {
                event.and_then(|e| handle(e, cfg, session, state, stdout, stderr))
            }
            _ = sleep_until(keep_alive) => session.on_keep_alive(),
            _ = sleep_until(deadline) => return Ok(End::TimedOut),
            _ = ctrl_c.pressed() => {
                // A second Ctrl-C does not wait for the clears.
                if state.stopping {
                    return Ok(End::Finished);
                }
                state.stopping = true;
                Ok(())
            }
        };
        if let Err(e) = step {
            return lost(e);
        }
        if let Err(e) = session.flush().await {
            return lost(e);
        }
    }
}

/// Queues `--remove-retained`'s empty retained message for `topic`.
fn queue_clear(session: &mut Session, topic: &str) -> Result<u16, ClientError> {
    session.queue_publish(
        ByteString::from(topic.to_owned()),
        Bytes::new(),
        QoS::AtLeastOnce,
        true,
        Properties::default(),
    )
}

fn handle(
    event: Event,
    cfg: &SubConfig,
    session: &mut Session,
    state: &mut State,
    stdout: &mut (dyn Write + Send),
    stderr: &SharedWriter,
) -> Result<(), ClientError> {
    match event {
        Event::SubAck(ack) if Some(ack.pkid) == state.subscribe_pkid => {
            state.subscribe_pkid = None;
            let codes: Vec<String> = ack.reasons.iter().map(|r| (*r as u8).to_string()).collect();
            session.debug(&format!(
                "Subscribed (mid: {}): {}",
                ack.pkid,
                codes.join(", ")
            ));
            for (filter, reason) in cfg.topics.iter().zip(&ack.reasons) {
                if reason.is_error() {
                    write_line(
                        stderr,
                        &format!(
                            "Warning: subscription to '{filter}' denied: {}",
                            reason_string(reason)
                        ),
                    );
                }
            }
            if !ack.reasons.is_empty() && ack.reasons.iter().all(|r| r.is_error()) {
                return Err(ClientError::AllSubscriptionsDenied);
            }
            if cfg.exit_after_subscribe && state.unsubscribe_pkid.is_none() {
                state.stopping = true;
            }
        }
        Event::UnsubAck(ack) if Some(ack.pkid) == state.unsubscribe_pkid => {
            state.unsubscribe_pkid = None;
            session.debug(&format!("Unsubscribed (mid: {})", ack.pkid));
            if cfg.exit_after_subscribe && state.subscribe_pkid.is_none() {
                state.stopping = true;
            }
        }
        Event::Acked { pkid, reason }
            if state.clears_in_flight.remove(&pkid).is_some() && reason.is_error() =>
        {
            write_line(
                stderr,
                &format!(
                    "Warning: clearing a retained message failed: {}",
                    reason_string(&reason)
                ),
            );
        }
        Event::Message(msg) if !state.stopping => message(*msg, cfg, session, state, stdout)?,
        _ => {}
    }
    Ok(())
}

/// Filters, clears (`--remove-retained`), prints and counts one message,
/// in the order mosquitto_sub does.
fn message(
    msg: Received,
    cfg: &SubConfig,
    session: &mut Session,
    state: &mut State,
    stdout: &mut (dyn Write + Send),
) -> Result<(), ClientError> {
    let retained = msg.publish.retain;
    if cfg.retained_only && !retained {
        state.stopping = true;
        return Ok(());
    }
    if retained && cfg.no_retained {
        return Ok(());
    }
    if cfg
        .filter_out
        .iter()
        .any(|f| midge_proto::topic::matches(f, &msg.topic))
    {
        return Ok(());
    }
    if cfg.remove_retained && retained {
        let pkid = queue_clear(session, &msg.topic)?;
        state.clears_in_flight.insert(pkid, msg.topic.clone());
    }
    state.out.clear();
    cfg.format.render(&msg, cfg.eol, &mut state.out);
    // Flushed per message so that a pipe reader (`| midge pub -l`) sees each
    // one at once. A reader that went away ends the run quietly, as
    // `| head -1` expects.
    let written = stdout.write_all(&state.out).and_then(|_| stdout.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            state.stopping = true;
            return Ok(());
        }
        Err(e) => return Err(ClientError::Io(e)),
    }
    state.printed += 1;
    if cfg.count.is_some_and(|c| state.printed >= c) {
        state.stopping = true;
    }
    Ok(())
}
