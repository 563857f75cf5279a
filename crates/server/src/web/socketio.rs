//! The Socket.IO gateway on `/socket.io/` (protocol v5, WebSocket and
//! HTTP long-polling transports, by socketioxide). Each Socket.IO client
//! gets its own internal MQTT session, authenticated from the handshake's
//! `auth` payload (`{username, password}` or `{token}`), so the ACL applies
//! to it as to an MQTT client.
//!
//! Client events: `subscribe` (a filter, a list, or `{filters, retained}`;
//! the acknowledgement lists `granted` and `denied` filters), `unsubscribe`,
//! `publish` (`{topic, payload, qos, retain, ...}` as the HTTP API;
//! acknowledged with `{ok: true}` or `{error, code}`). Server event:
//! `message` (`{topic, payload, qos, retain, properties}`). A socket joins
//! one room per granted topic filter, so `io.to(filter)` reaches the
//! sockets subscribed to it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::ConnectInfo;
use parking_lot::Mutex;
use serde_json::{json, Value};
use socketioxide::extract::{AckSender, SocketRef, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;
use tokio_util::sync::CancellationToken;

use super::api::{publish_as, Caller};
use super::auth::{self, Identity};
use super::error::ApiError;
use super::message::{check_filters, MessageJson, PublishRequest};
use super::pool::session_error;
use super::session::{Inbox, InternalClient};
use crate::http::HttpState;

/// Messages buffered per socket by socketioxide before emits fail.
const SOCKET_BUFFER: usize = 4096;

/// One connected socket's session.
struct Conn {
    client: Arc<InternalClient>,
    caller: Caller,
    /// Taken by the connect handler to start the pump.
    inbox: Option<Inbox>,
    stop: CancellationToken,
}

type Conns = Arc<Mutex<HashMap<Sid, Conn>>>;

/// The Socket.IO layer for one HTTP listener.
pub fn layer(state: HttpState) -> SocketIoLayer {
    let max_payload = state.web.config.max_body_bytes as u64;
    let (layer, io) = SocketIo::builder()
        .max_payload(max_payload)
        .max_buffer_size(SOCKET_BUFFER)
        .build_layer();
    let conns: Conns = Arc::new(Mutex::new(HashMap::new()));
    let (st, cs) = (state.clone(), conns.clone());
    let authenticate = move |s: SocketRef, auth: TryData<Value>| {
        let (st, cs) = (st.clone(), cs.clone());
        async move { authenticate(st, cs, s, auth.0.ok()).await }
    };
    let on_connect = move |s: SocketRef| {
        let (st, cs) = (state.clone(), conns.clone());
        async move { connected(st, cs, s) }
    };
    io.ns("/", on_connect.with(authenticate));
    layer
}

/// The identity in a handshake's `auth` payload.
fn identity(state: &HttpState, auth: Option<&Value>) -> Result<Identity, ApiError> {
    let Some(a) = auth.filter(|a| !a.is_null()) else {
        return Ok(Identity::anonymous());
    };
    let s = |k: &str| a.get(k).and_then(Value::as_str);
    match (s("token"), s("username"), s("password")) {
        (Some(t), _, _) => auth::token(t, &state.web.config),
        (None, Some(u), p) => auth::login(u, p.unwrap_or(""), &state.web.config),
        (None, None, _) if a.as_object().is_some_and(|o| o.is_empty()) => Ok(Identity::anonymous()),
        _ => Err(ApiError::Unauthorized(
            "auth must be {username, password} or {token}".into(),
        )),
    }
}

/// Connect middleware: opens the socket's MQTT session; a refusal becomes
/// the client's `connect_error`.
async fn authenticate(
    state: HttpState,
    conns: Conns,
    s: SocketRef,
    auth: Option<Value>,
) -> Result<(), ApiError> {
    let identity = identity(&state, auth.as_ref())?;
    let remote = s
        .req_parts()
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let caller = Caller { identity, remote };
    let login = caller.login(&state, "sio", 1024);
    let (client, inbox) = InternalClient::connect(&state.web.broker, login)
        .await
        .map_err(session_error)?;
    conns.lock().insert(
        s.id,
        Conn {
            client: Arc::new(client),
            caller,
            inbox: Some(inbox),
            stop: CancellationToken::new(),
        },
    );
    Ok(())
}

fn connected(state: HttpState, conns: Conns, s: SocketRef) {
    let Some((client, caller, inbox, stop)) = conns.lock().get_mut(&s.id).and_then(|c| {
        c.inbox
            .take()
            .map(|i| (c.client.clone(), c.caller.clone(), i, c.stop.clone()))
    }) else {
        return;
    };
    let counters = &state.web.counters;
    counters
        .socketio_connections
        .fetch_add(1, Ordering::Relaxed);
    counters
        .socketio_connections_total
        .fetch_add(1, Ordering::Relaxed);
    tokio::spawn(pump(state.clone(), s.clone(), inbox, stop.clone()));

    let c = client.clone();
    let st = state.clone();
    s.on(
        "subscribe",
        move |s: SocketRef, TryData::<Value>(data), ack: AckSender| {
            let (c, st) = (c.clone(), st.clone());
            async move {
                let answer = match data {
                    Ok(d) => subscribe(&st, &c, &s, &d).await,
                    Err(e) => Err(ApiError::BadRequest(format!("subscribe: {e}"))),
                };
                let _ = ack.send(&answer.unwrap_or_else(|e| e.to_json()));
            }
        },
    );
    let c = client.clone();
    s.on(
        "unsubscribe",
        move |s: SocketRef, TryData::<Value>(data), ack: AckSender| {
            let c = c.clone();
            async move {
                let answer =
                    match data.map_err(|e| ApiError::BadRequest(format!("unsubscribe: {e}"))) {
                        Ok(d) => unsubscribe(&c, &s, &d).await,
                        Err(e) => Err(e),
                    };
                let _ = ack.send(&answer.unwrap_or_else(|e| e.to_json()));
            }
        },
    );
    let st = state.clone();
    s.on("publish", move |TryData::<Value>(data), ack: AckSender| {
        let (st, caller) = (st.clone(), caller.clone());
        async move {
            let answer = match data {
                Ok(d) => publish(&st, &caller, d).await,
                Err(e) => Err(ApiError::BadRequest(format!("publish: {e}"))),
            };
            let _ = ack.send(&answer.unwrap_or_else(|e| e.to_json()));
        }
    });
    s.on_disconnect(move |s: SocketRef| {
        let (st, cs) = (state.clone(), conns.clone());
        async move {
            if let Some(c) = cs.lock().remove(&s.id) {
                // Dropping the last handle ends the MQTT session.
                c.stop.cancel();
            }
            st.web
                .counters
                .socketio_connections
                .fetch_sub(1, Ordering::Relaxed);
        }
    });
}

/// Emits the session's messages to the socket until it goes.
async fn pump(state: HttpState, s: SocketRef, mut inbox: Inbox, stop: CancellationToken) {
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            m = inbox.next() => match m { Some(m) => m, None => break },
        };
        match s.emit("message", &MessageJson::from(&m)) {
            Ok(()) => {}
            Err(socketioxide::SendError::Socket(socketioxide::SocketError::Closed)) => return,
            Err(_) => {
                state
                    .web
                    .counters
                    .socketio_emit_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // The broker ended the session: the socket has nothing more to get.
    let _ = s.emit(
        "error",
        &json!({"error": "the MQTT session ended", "code": "closed"}),
    );
    let _ = s.disconnect();
}

/// Filters from `"a/b"`, `["a", "b"]` or `{filters: [...]}` / `{filter}`.
fn filters_of(d: &Value) -> Result<(Vec<String>, bool), ApiError> {
    let strings = |v: &Value| -> Option<Vec<String>> {
        match v {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => a.iter().map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => None,
        }
    };
    let (list, retained) = match d {
        Value::Object(o) => (
            o.get("filters")
                .or_else(|| o.get("filter"))
                .and_then(strings),
            o.get("retained").and_then(Value::as_bool).unwrap_or(true),
        ),
        other => (strings(other), true),
    };
    list.map(|l| (l, retained)).ok_or_else(|| {
        ApiError::BadRequest("give a topic filter, a list of them, or {filters: [...]}".into())
    })
}

async fn subscribe(
    state: &HttpState,
    client: &InternalClient,
    s: &SocketRef,
    d: &Value,
) -> Result<Value, ApiError> {
    let (filters, retained) = filters_of(d)?;
    check_filters(&filters, state.web.limits.max_topic_levels)?;
    let reasons = client
        .subscribe(&filters, state.web.max_qos(), retained)
        .await
        .map_err(session_error)?;
    let mut granted = Vec::new();
    let mut denied = Vec::new();
    for (f, r) in filters.iter().zip(reasons) {
        if r.is_error() {
            denied.push(json!({"filter": f, "reason": format!("{r:?}")}));
        } else {
            granted.push(f.clone());
        }
    }
    s.join(granted.clone());
    Ok(json!({"granted": granted, "denied": denied}))
}

async fn unsubscribe(client: &InternalClient, s: &SocketRef, d: &Value) -> Result<Value, ApiError> {
    let (filters, _) = filters_of(d)?;
    client.unsubscribe(&filters).await.map_err(session_error)?;
    s.leave(filters.clone());
    Ok(json!({"unsubscribed": filters}))
}

async fn publish(state: &HttpState, caller: &Caller, mut d: Value) -> Result<Value, ApiError> {
    // A JSON payload (object, number, ...) is sent as its JSON text.
    if let Some(o) = d.as_object_mut() {
        if o.get("payload")
            .is_some_and(|p| !p.is_string() && !p.is_null())
        {
            if let Some(p) = o.remove("payload") {
                o.insert("payload_json".into(), p);
            }
        } else if o.get("payload").is_some_and(Value::is_null) {
            o.remove("payload");
        }
    }
    let req: PublishRequest = serde_json::from_value(d)
        .map_err(|e| ApiError::BadRequest(format!("not a valid publish request: {e}")))?;
    publish_as(state, caller, req).await?;
    Ok(json!({"ok": true}))
}
