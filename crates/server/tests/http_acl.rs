//! Authentication and the ACL on every web door: a midge with a password
//! file and an ACL; Basic auth, API keys and JWTs act as their user; a
//! denied topic never arrives over SSE or polling, never appears in the
//! retained listing, and cannot be published through the API.

mod common;
mod web_common;

use midge_proto::{Packet, QoS};
use midge_server::auth::passwd_edit::hash_password_with;
use midge_server::auth::AuthConfig;
use midge_server::web::config::ApiKey;
use serde_json::{json, Value};
use web_common::*;

const ACL: &str = "\
user alice
topic read #
topic deny secret/#
topic write alice/#
user root
topic readwrite #
";

const ALICE_KEY: &str = "alice-key-0123456789";

async fn start_secure() -> Midge {
    start_with(|c, dir| {
        let cheap = argon2::Params::new(64, 1, 1, None).expect("argon2 params");
        let alice = hash_password_with(b"alice-pw", cheap.clone()).expect("hash");
        let root = hash_password_with(b"root-pw", cheap).expect("hash");
        std::fs::write(dir.join("passwd"), format!("alice:{alice}\nroot:{root}\n")).expect("write");
        std::fs::write(dir.join("acl"), ACL).expect("write");
        c.auth = AuthConfig {
            password_file: Some(dir.join("passwd")),
            acl_file: Some(dir.join("acl")),
            ..AuthConfig::default()
        };
        c.http.api_keys.push(ApiKey {
            key: ALICE_KEY.into(),
            username: "alice".into(),
            admin: false,
        });
    })
    .await
}

/// The three ways to be alice.
fn alice_auths() -> Vec<(&'static str, String)> {
    let jwt = midge_server::web::auth::sign_jwt(&json!({"sub": "alice"}), JWT_SECRET.as_bytes());
    vec![
        ("basic", format!("Basic {}", b64("alice:alice-pw"))),
        ("api key", format!("Bearer {ALICE_KEY}")),
        ("jwt", format!("Bearer {jwt}")),
    ]
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// root publishes `secret/x` then `public/x` (QoS 1): a subscriber that
/// may read only the second gets it first, or the first leaked.
async fn publish_secret_then_public(m: &Midge, tag: &str) {
    let mut root = m
        .mqtt_client(&format!("root-{tag}"), Some(("root", "root-pw")))
        .await;
    publish_qos1(&mut root, "secret/x", [format!("secret-{tag}")].into_iter()).await;
    publish_qos1(&mut root, "public/x", [format!("public-{tag}")].into_iter()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_required_and_checked() {
    let m = start_secure().await;
    let http = client();
    for (method, path) in [
        ("POST", "/api/v1/publish"),
        ("GET", "/api/v1/stream?filter=a"),
        ("GET", "/api/v1/poll?filter=a&timeout=0"),
        ("GET", "/api/v1/retained?filter=a"),
    ] {
        let request = || match method {
            "POST" => http.post(m.url(path)).json(&json!({"topic": "alice/x"})),
            _ => http.get(m.url(path)),
        };
        let r = request().send().await.expect("req");
        assert_eq!(r.status(), 401, "anonymous {path}");
        assert!(r.headers().contains_key("www-authenticate"));
        let r = request()
            .header("authorization", format!("Basic {}", b64("alice:wrong")))
            .send()
            .await
            .expect("req");
        assert_eq!(r.status(), 401, "wrong password {path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["code"], "unauthorized");
    }
    // An expired JWT.
    let old = midge_server::web::auth::sign_jwt(
        &json!({"sub": "alice", "exp": 1}),
        JWT_SECRET.as_bytes(),
    );
    let r = http
        .post(m.url("/api/v1/publish"))
        .bearer_auth(old)
        .json(&json!({"topic": "alice/x"}))
        .send()
        .await
        .expect("req");
    assert_eq!(r.status(), 401);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_api_applies_the_acl() {
    let m = start_secure().await;
    let http = client();
    let mut root = m.mqtt_client("root-sub", Some(("root", "root-pw"))).await;
    subscribe_acked(&mut root, "#", QoS::AtLeastOnce).await;
    for (how, auth) in alice_auths() {
        for qos in 0..=2 {
            for topic in ["secret/x", "public/x"] {
                let r = http
                    .post(m.url("/api/v1/publish"))
                    .header("authorization", &auth)
                    .json(&json!({"topic": topic, "payload": "no", "qos": qos}))
                    .send()
                    .await
                    .expect("req");
                assert_eq!(r.status(), 403, "{how} qos {qos} {topic}");
                assert_eq!(r.json::<Value>().await.expect("json")["code"], "forbidden");
            }
            let r = http
                .post(m.url("/api/v1/publish"))
                .header("authorization", &auth)
                .json(&json!({"topic": "alice/x", "payload": format!("{how}-{qos}"), "qos": qos}))
                .send()
                .await
                .expect("req");
            assert_eq!(r.status(), 200, "{how} qos {qos}");
            // Only the allowed message reaches the subscriber of `#`.
            match root.recv().await {
                Some(Packet::Publish(p)) => {
                    assert_eq!(&*p.topic, "alice/x");
                    assert_eq!(p.payload, format!("{how}-{qos}").into_bytes());
                    ack_delivery(&mut root, &p).await;
                }
                other => panic!("expected alice/x, got {other:?}"),
            }
        }
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_and_polling_never_deliver_a_denied_topic() {
    let m = start_secure().await;
    let http = client();
    for (i, (how, auth)) in alice_auths().into_iter().enumerate() {
        // Subscribing to the denied branch itself is refused.
        let as_alice = |url: String| http.get(url).header("authorization", &auth);
        let stream = as_alice(m.url("/api/v1/stream?filter=secret/%23"));
        assert_eq!(status_of(stream).await, 403, "{how}");
        let poll = as_alice(m.url("/api/v1/poll?filter=secret/x&timeout=0"));
        assert_eq!(status_of(poll).await, 403, "{how}");

        let mut s = sse(
            &http,
            &m.url("/api/v1/stream?filter=%23"),
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(s.next().await.event, "open");
        let first = json_of(as_alice(m.url("/api/v1/poll?filter=%23&timeout=0"))).await;
        let cursor = first["cursor"].as_str().expect("cursor").to_owned();
        let tag = format!("{i}");
        publish_secret_then_public(&m, &tag).await;
        let e = s.next().await;
        assert_eq!(
            e.json()["topic"],
            "public/x",
            "{how}: secret/x never arrives over SSE"
        );
        assert_eq!(e.json()["payload"], format!("public-{tag}"));
        let next = m.url(&format!("/api/v1/poll?cursor={cursor}&timeout=5"));
        let v = json_of(as_alice(next)).await;
        assert_eq!(
            topics_of(&v),
            vec!["public/x"],
            "{how}: secret/x never arrives by polling"
        );
        // Another user cannot take over alice's poll subscription.
        let as_root = http
            .get(m.url(&format!("/api/v1/poll?cursor={cursor}&timeout=0")))
            .basic_auth("root", Some("root-pw"));
        assert_eq!(status_of(as_root).await, 410, "{how}: cursors are per user");
    }
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_listing_hides_denied_topics() {
    let m = start_secure().await;
    let mut root = m.mqtt_client("root-ret", Some(("root", "root-pw"))).await;
    for (i, t) in ["secret/r", "public/r"].iter().enumerate() {
        publish_retained_qos1(&mut root, t, b"kept", i as u16 + 1).await;
    }
    let http = client();
    let all = || http.get(m.url("/api/v1/retained?filter=%23"));
    for (how, auth) in alice_auths() {
        let v = json_of(all().header("authorization", &auth)).await;
        assert_eq!(topics_of(&v), vec!["public/r"], "{how}");
        // Listing the denied branch itself is refused, as subscribing is.
        let secret = http
            .get(m.url("/api/v1/retained?filter=secret/%23"))
            .header("authorization", &auth);
        assert_eq!(status_of(secret).await, 403, "{how}");
    }
    let v = json_of(all().basic_auth("root", Some("root-pw"))).await;
    assert_eq!(v["count"], 2, "root reads both");
    // A bad password for the listing is refused, not silently anonymous.
    assert_eq!(status_of(all().basic_auth("root", Some("nope"))).await, 401);
    m.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_internal_sessions_are_trusted_without_a_password() {
    // The web layer's internal sessions connect as a token's user without a
    // password; a network client doing the same is refused.
    let m = start_secure().await;
    let stream = tokio::net::TcpStream::connect(m.mqtt)
        .await
        .expect("connect");
    let mut raw = common::Raw::new(stream, midge_proto::Protocol::V5);
    let c = midge_proto::Connect {
        username: Some("alice".into()),
        ..common::connect("no-pw", midge_proto::Protocol::V5)
    };
    let reason = raw.handshake(&Packet::Connect(Box::new(c))).await;
    assert_eq!(reason, midge_proto::ReasonCode::BadUserNameOrPassword);
    m.stop().await;
}
