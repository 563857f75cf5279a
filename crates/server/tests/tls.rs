//! MQTT over TLS (`mqtts`) with certificates made in the test: server
//! authentication, wrong CA, expired certificate, required client
//! certificates, reload without dropping connections, and Debian's
//! mosquitto clients with --cafile.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use midge_broker::Event;
use midge_proto::{Packet, Protocol, QoS, ReasonCode};
use midge_server::{ListenerConfig, ListenerKind, Server};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn make_ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("key");
    let cert = p.self_signed(&key).expect("self-signed CA");
    Ca { cert, key }
}

/// A leaf signed by `ca`; `expired` puts its validity in the past.
fn make_leaf(ca: &Ca, cn: &str, expired: bool) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    p.distinguished_name.push(DnType::CommonName, cn);
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &ca.cert, &ca.key).expect("signed");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

/// An mqtts listener serving a "localhost" certificate that `ca` signs,
/// written to `dir` as c.pem and k.pem; with `require_client_cert`, clients
/// must show a certificate `ca` signed (written as ca.pem).
fn listener_signed_by(dir: &Path, ca: &Ca, require_client_cert: bool) -> ListenerConfig {
    let (cert, key) = make_leaf(ca, "localhost", false);
    let cafile = require_client_cert.then(|| write(dir, "ca.pem", &ca.cert.pem()));
    tls_listener(
        write(dir, "c.pem", &cert),
        write(dir, "k.pem", &key),
        cafile,
        require_client_cert,
    )
}

/// Midge with `listeners` and its data in `dir`, and its (first) mqtts
/// address.
async fn start_mqtts(dir: &Path, listeners: Vec<ListenerConfig>) -> (Server, SocketAddr) {
    let server = start(&config(listeners, dir)).await;
    let addr = addr_of(&server, ListenerKind::Mqtts);
    (server, addr)
}

fn tls_listener(
    cert: PathBuf,
    key: PathBuf,
    cafile: Option<PathBuf>,
    require: bool,
) -> ListenerConfig {
    ListenerConfig {
        cert: Some(cert),
        key: Some(key),
        cafile,
        require_certificate: require,
        ..ListenerConfig::new(ListenerKind::Mqtts, loopback())
    }
}

fn client_config(ca_pem: &str, client: Option<(&str, &str)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("add root");
    }
    let builder = ClientConfig::builder().with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .expect("certs");
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
            builder
                .with_client_auth_cert(certs, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects over TLS and completes an MQTT handshake; Err on any failure.
async fn mqtt_over_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    client_id: &str,
) -> Result<Raw<tokio_rustls::client::TlsStream<TcpStream>>, String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(WAIT, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let mut raw = Raw::new(tls, Protocol::V3_1_1);
    raw.send(&connect_packet(client_id, Protocol::V3_1_1)).await;
    // With TLS 1.3 a refused client certificate surfaces on first read.
    match raw.recv().await {
        Some(Packet::ConnAck(ack)) if ack.reason == ReasonCode::Success => Ok(raw),
        other => Err(format!("no successful CONNACK: {other:?}")),
    }
}

#[tokio::test]
async fn publish_and_subscribe_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("midge test CA");
    let l = listener_signed_by(dir.path(), &ca, false);
    let (server, addr) = start_mqtts(dir.path(), vec![l]).await;
    let cfg = client_config(&ca.cert.pem(), None);

    let mut sub = mqtt_over_tls(addr, cfg.clone(), "tls-sub")
        .await
        .expect("TLS subscriber");
    sub.send(&subscribe_packet(1, "tls/#", QoS::AtLeastOnce))
        .await;
    assert!(matches!(sub.recv().await, Some(Packet::SubAck(_))));
    let mut publ = mqtt_over_tls(addr, cfg, "tls-pub")
        .await
        .expect("TLS publisher");
    publ.send(&publish_packet("tls/a", b"secret", QoS::AtMostOnce, 0))
        .await;
    assert_publish(sub.recv().await, "tls/a", b"secret");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn wrong_ca_and_expired_certificates_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("midge test CA");
    let other = make_ca("some other CA");
    let (old_cert, old_key) = make_leaf(&ca, "localhost", true);
    let good = listener_signed_by(dir.path(), &ca, false);
    let expired = tls_listener(
        write(dir.path(), "oc.pem", &old_cert),
        write(dir.path(), "ok.pem", &old_key),
        None,
        false,
    );
    let server = start(&config(vec![good, expired], dir.path())).await;
    let addrs: Vec<_> = server.listeners().iter().map(|l| l.local_addr).collect();

    let err = mqtt_over_tls(addrs[0], client_config(&other.cert.pem(), None), "wrong-ca")
        .await
        .err();
    assert!(
        err.as_deref().is_some_and(|e| e.contains("UnknownIssuer")),
        "wrong CA accepted: {err:?}"
    );
    let err = mqtt_over_tls(addrs[1], client_config(&ca.cert.pem(), None), "expired")
        .await
        .err();
    assert!(
        err.as_deref().is_some_and(|e| e.contains("expired")),
        "expired cert accepted: {err:?}"
    );
    // The good listener still works after the failures.
    mqtt_over_tls(addrs[0], client_config(&ca.cert.pem(), None), "ok")
        .await
        .expect("good client connects");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn required_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("midge test CA");
    let rogue = make_ca("rogue CA");
    let (client_cert, client_key) = make_leaf(&ca, "sensor-1", false);
    let (rogue_cert, rogue_key) = make_leaf(&rogue, "intruder", false);
    let l = listener_signed_by(dir.path(), &ca, true);
    let (server, addr) = start_mqtts(dir.path(), vec![l]).await;
    let ca_pem = ca.cert.pem();

    assert!(
        mqtt_over_tls(addr, client_config(&ca_pem, None), "no-cert")
            .await
            .is_err(),
        "no client certificate"
    );
    assert!(
        mqtt_over_tls(
            addr,
            client_config(&ca_pem, Some((&rogue_cert, &rogue_key))),
            "rogue"
        )
        .await
        .is_err(),
        "certificate from another CA"
    );
    mqtt_over_tls(
        addr,
        client_config(&ca_pem, Some((&client_cert, &client_key))),
        "sensor-1",
    )
    .await
    .expect("client with a valid certificate connects");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn reload_swaps_certificates_without_dropping_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca1 = make_ca("first CA");
    let ca2 = make_ca("second CA");
    let (cert1, key1) = make_leaf(&ca1, "localhost", false);
    let (cert2, key2) = make_leaf(&ca2, "localhost", false);
    let cert_path = write(dir.path(), "c.pem", &cert1);
    let key_path = write(dir.path(), "k.pem", &key1);
    let l = tls_listener(cert_path.clone(), key_path.clone(), None, false);
    let (server, addr) = start_mqtts(dir.path(), vec![l]).await;

    let mut old = mqtt_over_tls(addr, client_config(&ca1.cert.pem(), None), "old")
        .await
        .expect("first cert works");
    std::fs::write(&cert_path, &cert2).expect("rewrite cert");
    std::fs::write(&key_path, &key2).expect("rewrite key");
    server.reload();
    mqtt_over_tls(addr, client_config(&ca2.cert.pem(), None), "new")
        .await
        .expect("new cert served after reload");
    assert!(
        mqtt_over_tls(addr, client_config(&ca1.cert.pem(), None), "stale")
            .await
            .is_err()
    );
    // The connection made before the reload is still up.
    old.send(&Packet::PingReq).await;
    assert_eq!(old.recv().await, Some(Packet::PingResp));

    // A broken file on reload keeps the current certificate in force.
    std::fs::write(&cert_path, "not a certificate").expect("break cert");
    server.reload();
    mqtt_over_tls(addr, client_config(&ca2.cert.pem(), None), "after-bad")
        .await
        .expect("still serving");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn mosquitto_clients_with_cafile() {
    if std::process::Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("SKIP: mosquitto_pub is not installed (scripts/test installs mosquitto-clients)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("midge test CA");
    let ca_path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let l = listener_signed_by(dir.path(), &ca, false);
    let (server, addr) = start_mqtts(dir.path(), vec![l]).await;
    let port = addr.port().to_string();

    let sub = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "localhost", "-p", &port, "--cafile"])
        .arg(&ca_path)
        .args([
            "-t",
            "tls/cli",
            "-C",
            "1",
            "-W",
            "5",
            "-q",
            "1",
            "-i",
            "tls-cli-sub",
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_sub");
    // Wait until the subscription exists: the broker reports it as an event.
    let mut events = server.broker().events();
    wait_event(&mut events, "mosquitto_sub's subscription", |e| {
        matches!(e, Event::Subscribed { .. }).then_some(())
    })
    .await;
    let status = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port, "--cafile"])
        .arg(&ca_path)
        .args(["-t", "tls/cli", "-m", "over tls", "-q", "1"])
        .status()
        .await
        .expect("run mosquitto_pub");
    assert!(status.success());
    let out = tokio::time::timeout(WAIT, sub.wait_with_output())
        .await
        .expect("sub ends")
        .expect("sub output");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "over tls");
    server.shutdown(WAIT).await;
}

#[tokio::test]
async fn certificate_common_name_becomes_the_username() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = make_ca("midge test CA");
    let (client_cert, client_key) = make_leaf(&ca, "sensor-17", false);
    let l = ListenerConfig {
        use_identity_as_username: true,
        ..listener_signed_by(dir.path(), &ca, true)
    };
    let (server, addr) = start_mqtts(dir.path(), vec![l]).await;
    let mut events = server.broker().events();
    let _client = mqtt_over_tls(
        addr,
        client_config(&ca.cert.pem(), Some((&client_cert, &client_key))),
        "dev",
    )
    .await
    .expect("certificate login without a password");
    let username = wait_event(&mut events, "the connected event", |e| match e {
        Event::ClientConnected { username, .. } => Some(username),
        _ => None,
    })
    .await;
    assert_eq!(username.as_deref(), Some("sensor-17"));
    server.shutdown(WAIT).await;
}
