//! `midge sub`: connect, subscribe, print each message in the chosen format
//! until `-C`, `-W`, `--retained-only`, `-E`, Ctrl-C or a closed stdout.

use std::collections::HashSet;
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
use crate::runner::{self, interrupted, sleep_until};
use crate::session::{Event, Session};

/// Progress of one run, besides the session.
struct State {
    printed: u64,
    /// Set once the run should end (after outstanding clears are acknowledged).
    stopping: bool,
    /// Our `--remove-retained` clears still waiting for PUBACK.
    clears_in_flight: HashSet<u16>,
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
    let mut session = runner::connect(&cfg.connect, &stderr).await?;
    let deadline = cfg.connect.timeout.map(|w| Instant::now() + w);
    let props = &cfg.connect.props;
    let mut state = State {
        printed: 0,
        stopping: false,
        clears_in_flight: HashSet::new(),
        subscribe_pkid: None,
        unsubscribe_pkid: None,
        out: Vec::with_capacity(4096),
    };
    if !cfg.topics.is_empty() {
        state.subscribe_pkid =
            Some(session.queue_subscribe(&cfg.topics, cfg.qos, props.subscribe.clone())?);
    }
    if !cfg.unsubscribe.is_empty() {
        state.unsubscribe_pkid =
            Some(session.queue_unsubscribe(&cfg.unsubscribe, props.unsubscribe.clone())?);
    }
    session.flush().await?;
    let mut interrupt = std::pin::pin!(interrupted(handle_ctrl_c));

    loop {
        if state.stopping && state.clears_in_flight.is_empty() {
            break;
        }
        let keep_alive = session.keep_alive_deadline();
        tokio::select! {
            event = session.next_event() => {
                handle(event?, &cfg, &mut session, &mut state, stdout, &stderr)?;
            }
            _ = sleep_until(keep_alive) => session.on_keep_alive()?,
            _ = sleep_until(deadline) => {
                // Leave cleanly (no will) before reporting the timeout.
                session.disconnect().await;
                return Err(ClientError::Timeout);
            }
            _ = &mut interrupt, if !state.stopping => state.stopping = true,
        }
        session.flush().await?;
    }
    session.disconnect().await;
    Ok(())
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
            if state.clears_in_flight.remove(&pkid) && reason.is_error() =>
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
        let pkid = session.queue_publish(
            ByteString::from(msg.topic.clone()),
            Bytes::new(),
            QoS::AtLeastOnce,
            true,
            Properties::default(),
        )?;
        state.clears_in_flight.insert(pkid);
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
