//! The management API (admin role: a user in `http.admins` with a valid
//! password, or an admin API key / JWT): connected clients and their
//! subscriptions (from the event registry), broker statistics.
//!
//! `DELETE /api/v1/clients/{id}` answers 501: the broker core has no call
//! to disconnect a client by id yet.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::api::Caller;
use super::error::ApiError;
use super::registry::ClientInfo;
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

/// The client's drop count as the broker keeps it (the registry only sees
/// drops as events, which the broker sends only when a webhook wants them).
fn with_broker_drops(state: &HttpState, c: &mut ClientInfo) {
    if let Some(b) = state.web.broker.client(&c.id) {
        c.drops = b.dropped;
    }
}

/// `GET /api/v1/clients`
pub async fn clients(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let mut clients = state.web.registry.clients();
    for c in &mut clients {
        with_broker_drops(&state, c);
    }
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
    let mut c = state
        .web
        .registry
        .client(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no connected client {id:?}")))?;
    with_broker_drops(&state, &mut c);
    Ok(Json(c))
}

/// `DELETE /api/v1/clients/{id}`
pub async fn kick(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    if state.web.registry.client(&id).is_none() {
        return Err(ApiError::NotFound(format!("no connected client {id:?}")));
    }
    Err::<Json<()>, _>(ApiError::NotImplemented(
        "disconnecting a client is not available yet: the broker core has no call to do it".into(),
    ))
}

/// `GET /api/v1/subscriptions`
pub async fn subscriptions(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    require_admin(&state, &headers, remote).await?;
    let mut subs = Vec::new();
    for c in state.web.registry.clients() {
        for (filter, qos) in &c.subscriptions {
            subs.push(json!({"client_id": c.id, "filter": filter, "qos": qos}));
        }
    }
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
