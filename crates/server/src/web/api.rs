//! `POST /api/v1/publish` and `GET /api/v1/retained`, and what every
//! handler needs first: the caller's identity and address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use bytes::Bytes;
use midge_broker::{ClientRef, Message};
use midge_proto::{encoded_len, ByteString, Packet, Protocol, QoS, ReasonCode};
use serde_json::json;

use super::auth::{self, Identity};
use super::error::ApiError;
use super::message::{check_filters, MessageJson, PublishRequest};
use super::pool::session_error;
use super::query::Query;
use super::session::{InternalClient, Login, SessionError};
use crate::http::HttpState;

/// Most retained messages one listing returns.
const MAX_LISTING: u64 = 10_000;

/// The caller: identity from `Authorization` (or, for GET endpoints that
/// browsers open directly, an `access_token` query parameter), address.
#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: Identity,
    pub remote: Option<SocketAddr>,
}

impl Caller {
    pub fn from_request(
        state: &HttpState,
        headers: &HeaderMap,
        query: Option<&Query>,
        remote: Option<SocketAddr>,
    ) -> Result<Caller, ApiError> {
        let token = query.and_then(|q| q.get("access_token"));
        let identity = match token {
            Some(t) if !headers.contains_key(axum::http::header::AUTHORIZATION) => {
                auth::token(t, &state.web.config)?
            }
            _ => auth::from_headers(headers, &state.web.config)?,
        };
        Ok(Caller { identity, remote })
    }

    /// Makes sure the broker accepts these credentials (a Basic password is
    /// otherwise only checked when a session connects). Cached per identity
    /// by the session pool, so the password is hashed once a minute at most.
    pub async fn verify(&self, state: &HttpState) -> Result<(), ApiError> {
        state
            .web
            .pool
            .get(&self.identity, self.remote, &state.listener)
            .await
            .map(|_| ())
    }

    pub fn login(&self, state: &HttpState, kind: &str, inbox: usize) -> Login {
        Login {
            client_id: super::client_id(kind),
            username: self.identity.username.clone(),
            password: self.identity.password.clone(),
            remote_addr: self.remote,
            listener: state.listener.clone(),
            inbox,
        }
    }
}

/// `POST /api/v1/publish`
pub async fn publish(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let caller = Caller::from_request(&state, &headers, None, Some(remote))?;
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "request body over {} bytes (http.max_body_bytes)",
                state.web.config.max_body_bytes
            ))
        } else {
            ApiError::BadRequest(format!("cannot read the body: {e}"))
        }
    })?;
    let req: PublishRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("body is not a valid publish request: {e}")))?;
    let (topic, qos) = (req.topic.clone(), req.qos);
    publish_as(&state, &caller, req).await?;
    state
        .web
        .counters
        .http_publish
        .fetch_add(1, Ordering::Relaxed);
    Ok(Json(json!({ "ok": true, "topic": topic, "qos": qos })))
}

/// Publishes `req` as `caller` through a pooled internal session: the
/// broker authorizes, retains, routes and counts it as any PUBLISH.
pub async fn publish_as(
    state: &HttpState,
    caller: &Caller,
    req: PublishRequest,
) -> Result<(), ApiError> {
    let web = &state.web;
    let publish = req.into_publish(&web.limits)?;
    let size = encoded_len(&Packet::Publish(publish.clone()), Protocol::V5);
    let max = web.broker.config().max_packet_size as usize;
    if size > max {
        return Err(ApiError::TooLarge(format!(
            "the message would be a {size}-byte packet, over the broker's max_packet_size of {max}"
        )));
    }
    // One retry: a pooled session may have been closed (kicked, expired)
    // since it was last used.
    for attempt in 0..2 {
        let client = web
            .pool
            .get(&caller.identity, caller.remote, &state.listener)
            .await?;
        if publish.qos == QoS::AtMostOnce {
            check_publish_acl(state, &client, &publish.topic)?;
        }
        match client.publish(publish.clone()).await {
            Ok(r) if !r.is_error() => return Ok(()),
            Ok(ReasonCode::NotAuthorized) => {
                web.counters
                    .http_publish_denied
                    .fetch_add(1, Ordering::Relaxed);
                return Err(denied(&publish.topic));
            }
            Ok(ReasonCode::PayloadFormatInvalid) => {
                return Err(ApiError::BadRequest(
                    "payload_format_indicator is 1 but the payload is not UTF-8".into(),
                ))
            }
            Ok(other) => {
                return Err(ApiError::BadRequest(format!(
                    "the broker refused the message: {other:?}"
                )))
            }
            Err(SessionError::Closed) if attempt == 0 => web.pool.forget(&caller.identity),
            Err(e) => return Err(session_error(e)),
        }
    }
    Err(ApiError::Unavailable(
        "the broker closed the session".into(),
    ))
}

fn denied(topic: &str) -> ApiError {
    ApiError::Forbidden(format!("not authorized to publish to {topic:?}"))
}

/// A QoS 0 PUBLISH gets no answer, so a refusal would go unnoticed: ask
/// the broker's hooks first, as the broker itself will.
pub fn check_publish_acl(
    state: &HttpState,
    client: &InternalClient,
    topic: &str,
) -> Result<(), ApiError> {
    let who = ClientRef {
        client_id: client.client_id(),
        username: client.username(),
    };
    if !state.web.hooks.authorize_publish(&who, topic) {
        state
            .web
            .counters
            .http_publish_denied
            .fetch_add(1, Ordering::Relaxed);
        return Err(denied(topic));
    }
    Ok(())
}

/// `GET /api/v1/retained?filter=...&limit=N`
pub async fn retained(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::from_request(&state, &headers, Some(&q), Some(remote))?;
    let filters = q.all("filter");
    check_filters(&filters, state.web.limits.max_topic_levels)?;
    let limit = q.u64_in("limit", 1000, 1, MAX_LISTING)? as usize;
    let (messages, truncated) = list_retained(&state, &caller, &filters, limit).await?;
    Ok(Json(json!({
        "count": messages.len(),
        "truncated": truncated,
        "messages": messages,
    })))
}

/// The retained messages matching `filters` that `caller` may read, from
/// the broker's retained store, sorted by topic, each once (filters may
/// overlap), at most `limit`; and whether more were left out. The caller's
/// credentials are checked by a pooled session (as for a publish), and its
/// identity goes through the same hooks the broker applies to a SUBSCRIBE
/// (the filter) and to each delivery (the topic).
async fn list_retained(
    state: &HttpState,
    caller: &Caller,
    filters: &[String],
    limit: usize,
) -> Result<(Vec<MessageJson>, bool), ApiError> {
    let web = &state.web;
    let client = web
        .pool
        .get(&caller.identity, caller.remote, &state.listener)
        .await?;
    let who = ClientRef {
        client_id: client.client_id(),
        username: client.username(),
    };
    if let Some(f) = filters
        .iter()
        .find(|f| !web.hooks.authorize_subscribe(&who, f))
    {
        return Err(ApiError::Forbidden(format!(
            "not authorized to subscribe to {f:?}"
        )));
    }
    let mut found: BTreeMap<ByteString, Arc<Message>> = BTreeMap::new();
    for f in filters {
        for m in web.broker.retained(f) {
            found.entry(m.topic.clone()).or_insert(m);
        }
    }
    let now = Instant::now();
    let mut out = Vec::new();
    let mut truncated = false;
    for m in found.values() {
        if !web.hooks.authorize_deliver(&who, &m.topic) {
            continue;
        }
        if out.len() == limit {
            truncated = true;
            break;
        }
        out.push(MessageJson::retained(m, now));
    }
    Ok((out, truncated))
}

/// 403 naming the first filter the broker refused.
pub fn refused_filter(filters: &[String], reasons: &[ReasonCode]) -> Result<(), ApiError> {
    for (f, r) in filters.iter().zip(reasons) {
        if r.is_error() {
            return Err(if *r == ReasonCode::NotAuthorized {
                ApiError::Forbidden(format!("not authorized to subscribe to {f:?}"))
            } else {
                ApiError::BadRequest(format!("the broker refused filter {f:?}: {r:?}"))
            });
        }
    }
    Ok(())
}
