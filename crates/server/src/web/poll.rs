//! `GET /api/v1/poll`: long polling. The first poll (with `filter=`)
//! opens a server-side subscription; every answer carries a `cursor`
//! (`SUB-SEQ`) to send with the next poll, which returns at once when
//! messages wait and otherwise holds until one arrives or `timeout`
//! seconds pass. Messages between polls wait in the subscription's buffer,
//! so none is missed; if the buffer overflowed, `dropped` says how many
//! were lost. A subscription nobody polls for `http.stream_idle_secs` is
//! closed (the next poll with its cursor gets 410). `DELETE` closes one.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::api::Caller;
use super::error::ApiError;
use super::feed::parse_position;
use super::message::check_filters;
use super::query::Query;
use super::sse::open_feed;
use crate::http::HttpState;

/// Most messages one poll returns.
const MAX_BATCH: u64 = 1000;

/// `GET /api/v1/poll?filter=...&cursor=...&timeout=30&retained=true&max=100`
pub async fn poll(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::from_request(&state, &headers, Some(&q), Some(remote))?;
    let web = &state.web;
    let max_timeout = web.config.poll_max_timeout_secs;
    let timeout = q.u64_in("timeout", 30.min(max_timeout), 0, max_timeout)?;
    let max = q.u64_in("max", 100, 1, MAX_BATCH)? as usize;
    let retained = q.bool("retained", false)?;
    web.counters.poll_requests.fetch_add(1, Ordering::Relaxed);
    let (feed, after) = match q.get("cursor") {
        Some(c) => {
            let (id, seq) = parse_position(c).ok_or_else(|| {
                ApiError::BadRequest(format!("cursor {c:?} is not of the form SUBSCRIPTION-SEQ"))
            })?;
            caller.verify(&state).await?;
            let feed = web
                .feeds
                .get(id, caller.identity.username.as_deref())
                .ok_or_else(|| {
                    ApiError::Gone(
                        "this poll subscription has expired; poll again without a cursor".into(),
                    )
                })?;
            (feed, seq)
        }
        None => {
            let filters = q.all("filter");
            check_filters(&filters, web.limits.max_topic_levels)?;
            (
                open_feed(&state, &caller, filters, retained, "poll").await?,
                0,
            )
        }
    };
    // The caller has everything up to its cursor.
    feed.trim(after);
    let attached = feed.attach();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let batch = feed.wait_after(after, max, deadline).await;
    drop(attached);
    let last = batch
        .items
        .last()
        .map(|i| i.seq)
        .unwrap_or(if batch.dropped > 0 {
            feed.last_seq()
        } else {
            after.min(feed.last_seq())
        });
    let messages: Vec<_> = batch.items.iter().map(|i| &i.msg).collect();
    Ok(Json(json!({
        "cursor": format!("{}-{}", feed.id, last),
        "messages": messages,
        "dropped": batch.dropped,
        "closed": batch.closed,
    })))
}

/// `DELETE /api/v1/poll?cursor=...`: ends a poll subscription.
pub async fn close(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::from_request(&state, &headers, Some(&q), Some(remote))?;
    let c = q.get("cursor").ok_or_else(|| {
        ApiError::BadRequest("give the cursor of the subscription to close".into())
    })?;
    caller.verify(&state).await?;
    let (id, _) = parse_position(c).ok_or_else(|| {
        ApiError::BadRequest(format!("cursor {c:?} is not of the form SUBSCRIPTION-SEQ"))
    })?;
    let feed = state
        .web
        .feeds
        .get(id, caller.identity.username.as_deref())
        .ok_or_else(|| ApiError::Gone("no such poll subscription (expired?)".into()))?;
    state.web.feeds.remove(&feed.id);
    Ok(Json(json!({"ok": true})))
}
