//! The management API (admin role: a user in `http.admins` with a valid
//! password, or an admin API key / JWT): sessions and their subscriptions,
//! queue depth, in-flight and drop counts, the administrative disconnect
//! (all from the broker's management calls), and broker statistics.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use super::api::Caller;
use super::error::ApiError;
use super::query::Query;
use super::views::{drop_reason_name, qos_label, ClientJson, SubscriptionJson, DROP_REASONS};
use crate::http::HttpState;

/// Lets admins through: 401 without (valid) credentials, 403 for others.
pub async fn require_admin(
    state: &HttpState,
    headers: &HeaderMap,
    remote: SocketAddr,
) -> Result<Caller, ApiError> {
    let caller = Caller::from_request(state, headers, None, Some(remote))?;
    if caller.identity.username.is_none() {
        return Err(ApiError::Unauthorized(
            "the management API needs admin credentials".into(),
        ));
    }
    if !caller.identity.admin {
        return Err(ApiError::Forbidden(
            "the management API is for admins (http.admins or an admin API key)".into(),
        ));
    }
    if caller.identity.password.is_some() {
        // Basic auth: the role is granted only once the password checks out.
        caller.verify(state).await?;
    }
    Ok(caller)
}

fn unknown(id: &str) -> ApiError {
    ApiError::NotFound(format!("no session for client id {id:?}"))
}

/// `GET /api/v1/clients`: every session, connected or offline.
pub async fn clients(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let broker = &state.web.broker;
    let clients = ClientJson::all(&broker.clients(), &broker.subscriptions());
    Ok(Json(json!({ "count": clients.len(), "clients": clients })))
}

/// `GET /api/v1/clients/{id}`
pub async fn client(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let broker = &state.web.broker;
    let info = broker.client(&id).ok_or_else(|| unknown(&id))?;
    // The broker lists subscriptions of every session only; skip that walk
    // for a client that has none.
    let subs = if info.subscriptions > 0 {
        broker.subscriptions()
    } else {
        Vec::new()
    };
    let mine = subs.iter().filter(|s| *s.client_id == *id);
    Ok(Json(ClientJson::new(&info, mine)))
}

/// `DELETE /api/v1/clients/{id}?discard_session=true|false`: disconnects
/// the client (5.0: DISCONNECT 0x98 Administrative action; its will is
/// published); with `discard_session=true` its session ends too, online or
/// offline.
pub async fn kick(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let caller = require_admin(&state, &headers, remote).await?;
    let discard = Query::parse(raw.as_deref()).bool("discard_session", false)?;
    let broker = &state.web.broker;
    let before = broker.client(&id).ok_or_else(|| unknown(&id))?;
    if !broker.disconnect_client(&id, discard) {
        // Gone since the look-up, or an offline session kept as asked.
        return Err(match broker.client(&id) {
            None => unknown(&id),
            Some(_) => ApiError::Conflict(format!(
                "client {id:?} is not connected and its session is kept; \
                 discard_session=true ends the session"
            )),
        });
    }
    tracing::info!(
        client_id = %id,
        admin = caller.identity.username.as_deref().unwrap_or(""),
        discard_session = discard,
        "client disconnected through the management API"
    );
    Ok(Json(json!({
        "ok": true,
        "client_id": id,
        "was_connected": before.connected_since.is_some(),
        "session_discarded": discard,
    })))
}

/// `GET /api/v1/subscriptions`: every subscription of every session.
pub async fn subscriptions(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let subs: Vec<SubscriptionJson> = state
        .web
        .broker
        .subscriptions()
        .iter()
        .map(SubscriptionJson::from)
        .collect();
    Ok(Json(json!({ "count": subs.len(), "subscriptions": subs })))
}

/// `GET /api/v1/stats`
pub async fn stats(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let s = state.web.broker.stats();
    let w = &state.web;
    let by_qos = |v: &[u64; 3]| -> Map<String, Value> {
        v.iter()
            .enumerate()
            .map(|(i, n)| (qos_label(i).to_owned(), json!(n)))
            .collect()
    };
    let dropped: Map<String, Value> = DROP_REASONS
        .iter()
        .map(|r| {
            (
                drop_reason_name(*r).to_owned(),
                json!(s.dropped_by_reason.get(*r)),
            )
        })
        .collect();
    Ok(Json(json!({
        "uptime_secs": s.uptime.as_secs(),
        "clients_connected": s.clients_connected,
        "clients_disconnected": s.clients_disconnected,
        "clients_total": s.clients_total,
        "clients_maximum": s.clients_maximum,
        "connections": s.connections,
        "connections_total": s.connections_total,
        "messages_received": s.messages_received,
        "messages_sent": s.messages_sent,
        "bytes_received": s.bytes_received,
        "bytes_sent": s.bytes_sent,
        "publish_received": s.publish_received,
        "publish_sent": s.publish_sent,
        "publish_dropped": s.publish_dropped,
        "published_by_qos": by_qos(&s.published_by_qos),
        "published_bytes_by_qos": by_qos(&s.published_bytes_by_qos),
        "dropped_by_reason": dropped,
        "subscriptions": s.subscriptions,
        "retained": s.retained,
        "messages_stored": s.messages_stored,
        "web": {
            "streams": w.feeds.len(),
            "sse_connections": w.counters.sse_connections.load(Ordering::Relaxed),
            "socketio_connections": w.counters.socketio_connections.load(Ordering::Relaxed),
            "http_publish": w.counters.http_publish.load(Ordering::Relaxed),
        },
    })))
}
