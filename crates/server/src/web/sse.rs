//! `GET /api/v1/stream?filter=...&retained=true`: messages as Server-Sent
//! Events. The first event (`open`) names the stream; every message event
//! has the id `STREAM-SEQ`. A client that reconnects with `Last-Event-ID`
//! (browsers' EventSource does it by itself) gets what it missed from the
//! stream's buffer, and a `dropped` event if the buffer overflowed
//! meanwhile. A stream whose session ends sends `close` and ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use serde_json::json;

use super::api::{refused_filter, Caller};
use super::error::ApiError;
use super::feed::{parse_position, Attached, Feed};
use super::message::check_filters;
use super::pool::session_error;
use super::query::Query;
use super::session::InternalClient;
use super::Web;
use crate::http::HttpState;

/// Messages taken from the buffer per wake-up.
const READ_BATCH: usize = 256;

/// `GET /api/v1/stream`
pub async fn stream(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let q = Query::parse(raw.as_deref());
    let caller = Caller::from_request(&state, &headers, Some(&q), Some(remote))?;
    let last_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| q.get("last_event_id").map(str::to_owned));
    let retained = q.bool("retained", false)?;
    let filters = q.all("filter");
    let web = &state.web;
    let user = caller.identity.username.as_deref();

    if last_id.is_some() {
        caller.verify(&state).await?;
    }
    let resumed = last_id
        .as_deref()
        .and_then(parse_position)
        .and_then(|(id, seq)| web.feeds.get(id, user).map(|f| (f, seq)));
    let (feed, after, open) = match resumed {
        Some((feed, seq)) => {
            let open = json!({"stream": feed.id, "resumed": true, "filters": feed.filters});
            (feed, seq, open)
        }
        None => {
            check_filters(&filters, web.limits.max_topic_levels)?;
            let feed = open_feed(&state, &caller, filters, retained, "sse").await?;
            let mut open = json!({"stream": feed.id, "resumed": false, "filters": feed.filters});
            if let Some(lost) = last_id {
                // The stream asked for is gone (expired, or another user's).
                open["expired"] = json!(lost);
            }
            (feed, 0, open)
        }
    };
    let first = Event::default()
        .event("open")
        .id(format!("{}-{}", feed.id, after))
        .data(open.to_string());
    let body = events(web.clone(), feed.attach(), after, first);
    Ok(Sse::new(body)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Opens an internal session subscribed to `filters` and registers it as a
/// feed.
pub async fn open_feed(
    state: &HttpState,
    caller: &Caller,
    filters: Vec<String>,
    retained: bool,
    kind: &str,
) -> Result<Arc<Feed>, ApiError> {
    let web = &state.web;
    if !web.feeds.has_room() {
        return Err(ApiError::Unavailable(format!(
            "too many open streams and poll subscriptions (http.max_streams = {})",
            web.config.max_streams
        )));
    }
    let login = caller.login(state, kind, 1024);
    let (client, inbox) = InternalClient::connect(&web.broker, login)
        .await
        .map_err(session_error)?;
    let reasons = client
        .subscribe(&filters, web.max_qos(), retained)
        .await
        .map_err(session_error)?;
    refused_filter(&filters, &reasons)?;
    Ok(web.feeds.start(client, inbox, filters))
}

struct Reader {
    web: Web,
    attached: Attached,
    after: u64,
    pending: VecDeque<Event>,
    done: bool,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.web
            .counters
            .sse_connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// The event stream of one SSE connection.
fn events(
    web: Web,
    attached: Attached,
    after: u64,
    first: Event,
) -> impl Stream<Item = Result<Event, Infallible>> {
    web.counters.sse_connections.fetch_add(1, Ordering::Relaxed);
    web.counters
        .sse_connections_total
        .fetch_add(1, Ordering::Relaxed);
    let reader = Reader {
        web,
        attached,
        after,
        pending: VecDeque::from([first]),
        done: false,
    };
    stream::unfold(reader, |mut r| async move {
        loop {
            if let Some(e) = r.pending.pop_front() {
                return Some((Ok(e), r));
            }
            if r.done {
                return None;
            }
            let feed = r.attached.0.clone();
            // Far deadline: the connection lives as long as the client
            // keeps it (keep-alive comments flow meanwhile).
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
            let b = feed.wait_after(r.after, READ_BATCH, deadline).await;
            if b.dropped > 0 {
                r.pending.push_back(
                    Event::default()
                        .event("dropped")
                        .data(json!({"count": b.dropped}).to_string()),
                );
            }
            for item in &b.items {
                let data = serde_json::to_string(&item.msg).unwrap_or_default();
                r.pending.push_back(
                    Event::default()
                        .event("message")
                        .id(format!("{}-{}", feed.id, item.seq))
                        .data(data),
                );
                r.after = item.seq;
            }
            if b.dropped > 0 && b.items.is_empty() {
                r.after = feed.last_seq();
            }
            if b.closed && b.items.is_empty() && b.dropped == 0 {
                r.pending.push_back(
                    Event::default()
                        .event("close")
                        .data(json!({"reason": "the session ended"}).to_string()),
                );
                r.done = true;
            }
            feed.touch();
        }
    })
}
