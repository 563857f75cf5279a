//! The HTTP port (default 8080): MQTT over WebSocket on `/mqtt` and on any
//! path whose upgrade request asks for an MQTT subprotocol (MQTT.js connects
//! to `/` when its URL has no path), and the web pages and APIs beside it.
//!
//! One accept loop serves plain HTTP and HTTPS (with a TLS acceptor), so `ws`
//! and `wss` listeners differ only in the acceptor.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use midge_broker::{Broker, ConnectionInfo, Transport};
use tokio_util::sync::CancellationToken;

use crate::listener::Acceptor;
use crate::tls::TlsAcceptorHandle;
use crate::ws::{offers_mqtt, WsIo, MQTT_SUBPROTOCOLS};

/// What every HTTP handler can reach.
#[derive(Clone, Debug)]
pub struct HttpState {
    pub broker: Broker,
    pub listener: Arc<str>,
    pub transport: Transport,
    pub max_packet_size: usize,
    /// The web doors' shared state (one per server).
    pub web: crate::web::Web,
}

/// The router of the HTTP port.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/mqtt", any(mqtt_websocket))
        .merge(crate::dashboard::router())
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(crate::web::routes(&state))
        // Socket.IO answers /socket.io/ itself and passes everything else on.
        .layer(crate::web::socketio::layer(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            mqtt_upgrade_anywhere,
        ))
        .with_state(state)
}

/// An upgrade request that offers an MQTT subprotocol becomes an MQTT
/// connection whatever its path, as with Mosquitto and aedes.
async fn mqtt_upgrade_anywhere(
    State(state): State<HttpState>,
    request: Request,
    next: Next,
) -> Response {
    let wants_mqtt = request.uri().path() != "/mqtt"
        && request
            .headers()
            .get(header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .is_some_and(offers_mqtt);
    if !wants_mqtt {
        return next.run(request).await;
    }
    let (mut parts, _body) = request.into_parts();
    let remote = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
        Ok(ws) => upgrade(ws, state, remote),
        Err(rejection) => rejection.into_response(),
    }
}

async fn mqtt_websocket(
    State(state): State<HttpState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => upgrade(ws, state, Some(remote)),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            "MQTT over WebSocket: send a WebSocket upgrade request\n",
        )
            .into_response(),
    }
}

fn upgrade(ws: WebSocketUpgrade, state: HttpState, remote: Option<SocketAddr>) -> Response {
    let info = ConnectionInfo {
        remote_addr: remote,
        listener: state.listener.clone(),
        transport: state.transport,
        tls_identity: None,
    };
    let broker = state.broker.clone();
    // A frame can never need to be larger than the largest packet plus its
    // header; the codec enforces the exact limit per packet.
    ws.protocols(MQTT_SUBPROTOCOLS)
        .max_message_size(state.max_packet_size.saturating_add(8))
        .on_upgrade(
            move |socket| async move { broker.handle_connection(WsIo::new(socket), info).await },
        )
}

/// Serves HTTP (or, with `tls`, HTTPS) until shutdown.
pub async fn serve_http(acceptor: Acceptor, router: Router, tls: Option<TlsAcceptorHandle>) {
    while let Some((stream, remote, permit)) = acceptor.next().await {
        let router = router.clone();
        let tls = tls.clone();
        let shutdown = acceptor.shutdown.clone();
        acceptor.tracker.spawn(async move {
            let _permit = permit;
            let service = router.layer(axum::Extension(ConnectInfo(remote)));
            let service = TowerToHyperService::new(service.into_service());
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(tls_stream) => {
                        let conn = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls_stream), service);
                        drive(conn, shutdown).await
                    }
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    drive(conn, shutdown).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

/// Runs one HTTP connection until it ends or the server shuts down (then
/// the connection is dropped: MQTT clients on it were already told by the
/// broker, and plain requests are short).
async fn drive<C>(
    conn: C,
    shutdown: CancellationToken,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    C: std::future::Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    tokio::select! {
        r = conn => r,
        _ = shutdown.cancelled() => Ok(()),
    }
}
