//! MQTT over WebSocket on the HTTP port: the `mqtt` and `mqttv3.1`
//! subprotocols, `/mqtt` and any other path that asks for MQTT, packets
//! split across frames and several packets in one frame, and plain HTTP
//! still served beside it.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use midge_proto::{Packet, Protocol, QoS, ReasonCode};
use midge_server::{ListenerConfig, ListenerKind};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn open(url: &str, subprotocol: Option<&str>) -> Result<(Ws, Option<String>), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    if let Some(p) = subprotocol {
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_str(p).map_err(|e| e.to_string())?,
        );
    }
    let (ws, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(req))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, chosen))
}

/// Reads frames until one whole packet decodes.
async fn next_packet(ws: &mut Ws, buf: &mut midge_proto::BytesMut, protocol: Protocol) -> Packet {
    tokio::time::timeout(WAIT, async {
        loop {
            match midge_proto::decode(buf, protocol, 1 << 20) {
                Ok(p) => return p,
                Err(midge_proto::Error::Incomplete(_)) => {}
                Err(e) => panic!("bad packet: {e}"),
            }
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => buf.extend_from_slice(&b),
                Some(Ok(_)) => {}
                other => panic!("WebSocket ended: {other:?}"),
            }
        }
    })
    .await
    .expect("packet in time")
}

async fn start_http() -> (midge_server::Server, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(&config(
        vec![ListenerConfig::new(ListenerKind::Ws, loopback())],
        dir.path(),
    ))
    .await;
    let url = format!("ws://{}", addr_of(&server, ListenerKind::Ws));
    (server, url, dir)
}

#[tokio::test]
async fn subprotocol_negotiated_on_mqtt_path_and_any_path() {
    let (server, url, _dir) = start_http().await;
    for (path, proto) in [
        ("/mqtt", "mqtt"),
        ("/", "mqtt"),
        ("", "mqtt"),
        ("/some/app", "mqttv3.1"),
        ("/mqtt", "chat, mqtt"),
    ] {
        let (mut ws, chosen) = open(&format!("{url}{path}"), Some(proto))
            .await
            .expect("upgrade");
        assert!(
            chosen.as_deref().is_some_and(|c| c.starts_with("mqtt")),
            "{path}: chosen {chosen:?}"
        );
        let protocol = if proto == "mqttv3.1" {
            Protocol::V3_1
        } else {
            Protocol::V5
        };
        ws.send(Message::Binary(
            bytes_of(&connect_packet("ws-c", protocol), protocol).freeze(),
        ))
        .await
        .expect("send");
        let mut buf = midge_proto::BytesMut::new();
        match next_packet(&mut ws, &mut buf, protocol).await {
            Packet::ConnAck(ack) => assert_eq!(ack.reason, ReasonCode::Success, "{path}"),
            other => panic!("{path}: expected CONNACK, got {other:?}"),
        }
    }
    // Without a subprotocol, only /mqtt upgrades; `/` stays the web page.
    assert!(open(&format!("{url}/mqtt"), None).await.is_ok());
    assert!(
        open(&format!("{url}/"), None).await.is_err(),
        "plain upgrade on / must not become MQTT"
    );
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn packets_split_across_frames_and_batched_in_one_frame() {
    let (server, url, _dir) = start_http().await;
    let p = Protocol::V3_1_1;
    let (mut sub, _) = open(&format!("{url}/mqtt"), Some("mqtt"))
        .await
        .expect("upgrade");
    // CONNECT and SUBSCRIBE together in one frame.
    let mut both = bytes_of(&connect_packet("ws-sub", p), p);
    both.extend_from_slice(&bytes_of(&subscribe_packet(1, "ws/#", QoS::AtLeastOnce), p));
    sub.send(Message::Binary(both.freeze()))
        .await
        .expect("send");
    let mut sbuf = midge_proto::BytesMut::new();
    assert!(matches!(
        next_packet(&mut sub, &mut sbuf, p).await,
        Packet::ConnAck(_)
    ));
    assert!(matches!(
        next_packet(&mut sub, &mut sbuf, p).await,
        Packet::SubAck(_)
    ));

    // A publisher whose CONNECT and PUBLISH arrive one byte per frame.
    let (mut publ, _) = open(&format!("{url}/mqtt"), Some("mqtt"))
        .await
        .expect("upgrade");
    let mut bytes = bytes_of(&connect_packet("ws-pub", p), p);
    bytes.extend_from_slice(&bytes_of(
        &publish_packet("ws/split", b"in pieces", QoS::AtLeastOnce, 7),
        p,
    ));
    for b in bytes.iter() {
        publ.send(Message::Binary(vec![*b].into()))
            .await
            .expect("send byte");
    }
    let mut pbuf = midge_proto::BytesMut::new();
    assert!(matches!(
        next_packet(&mut publ, &mut pbuf, p).await,
        Packet::ConnAck(_)
    ));
    assert!(matches!(next_packet(&mut publ, &mut pbuf, p).await, Packet::PubAck(a) if a.pkid == 7));
    let delivered = next_packet(&mut sub, &mut sbuf, p).await;
    assert_publish(Some(delivered), "ws/split", b"in pieces");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn text_frame_closes_the_connection() {
    let (server, url, _dir) = start_http().await;
    let (mut ws, _) = open(&format!("{url}/mqtt"), Some("mqtt"))
        .await
        .expect("upgrade");
    ws.send(Message::Text("not mqtt".into()))
        .await
        .expect("send");
    let ended = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection not closed after a text frame");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn http_page_served_beside_websocket() {
    let (server, url, _dir) = start_http().await;
    let addr = url.trim_start_matches("ws://");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut body))
        .await
        .expect("in time")
        .expect("read");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.ends_with("ok\n"), "{body}");
    server.shutdown(WAIT).await;
}
