//! `midge pub` / `midge sub` over every transport against mosquitto:
//! WebSocket, TLS (CA file, client certificate, `--insecure`), secure
//! WebSocket, and a Unix socket. Certificates are made by the test (rcgen).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

fn round_trip(sub_args: &[&str], pub_args: &[&str], topic: &str) {
    let mut s_args = sub_args.to_vec();
    s_args.extend(["-t", topic, "-C", "1", "-v"]);
    let s = sub(&s_args);
    s.wait_subscribed();
    let mut p_args = pub_args.to_vec();
    p_args.extend(["-t", topic, "-m", "over the wire", "-q", "1"]);
    publish_ok(&p_args);
    let o = s.finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out(), format!("{topic} over the wire\n"));
}

#[test]
fn websocket_urls() {
    let ws = free_port();
    let m = Broker::start(
        |_, port| {
            format!("listener {port} 127.0.0.1\nallow_anonymous true\nlistener {ws} 127.0.0.1\nprotocol websockets\n")
        },
        &[ws],
    );
    let url = format!("ws://127.0.0.1:{ws}/ws/topic");
    let s = sub(&["-L", &url, "-C", "2", "-v"]);
    s.wait_subscribed();
    publish_ok(&["-L", &url, "-m", "ws one", "-q", "1"]);
    // A TCP publisher reaches the WebSocket subscriber through the same broker.
    publish_ok(&[
        "-p",
        &m.port_arg(),
        "-t",
        "ws/topic",
        "-m",
        "tcp two",
        "-q",
        "2",
    ]);
    let o = s.finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "ws/topic ws one\nws/topic tcp two\n"),
        "{}",
        o.stderr
    );
    // --ws-path is sent in the upgrade request (mosquitto accepts any path).
    round_trip(
        &["-L", &format!("ws://localhost:{ws}"), "--ws-path", "mqtt"],
        &["-L", &format!("ws://localhost:{ws}")],
        "ws/p",
    );
}

#[test]
fn tls_with_ca_file_client_certificates_and_insecure() {
    let certs = tempfile::tempdir().unwrap();
    let pki = Pki::generate(certs.path());
    let (tls, mtls, wrong, wss) = (free_port(), free_port(), free_port(), free_port());
    let m =
        Broker::start(
            |_, port| {
                let srv = format!(
                    "cafile {}\ncertfile {}\nkeyfile {}\n",
                    path(&pki.ca),
                    path(&pki.server_cert),
                    path(&pki.server_key)
                );
                format!(
                "per_listener_settings false\nallow_anonymous true\nlistener {port} 127.0.0.1\n\
                 listener {tls} 127.0.0.1\n{srv}\
                 listener {mtls} 127.0.0.1\n{srv}require_certificate true\n\
                 listener {wrong} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 listener {wss} 127.0.0.1\nprotocol websockets\n{srv}",
                path(&pki.ca), path(&pki.wrong_cert), path(&pki.wrong_key)
            )
            },
            &[tls, mtls, wrong, wss],
        );
    let ca = path(&pki.ca);
    let tls_s = tls.to_string();

    // --cafile turns TLS on for -h/-p; mqtts:// does it from the URL.
    round_trip(
        &["-h", "localhost", "-p", &tls_s, "--cafile", ca],
        &["-L", &format!("mqtts://localhost:{tls}"), "--cafile", ca],
        "tls/a",
    );
    // By IP address (the certificate names 127.0.0.1 too), TLS 1.2 and 1.3.
    round_trip(
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &tls_s,
            "--cafile",
            ca,
            "--tls-version",
            "tlsv1.2",
        ],
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &tls_s,
            "--cafile",
            ca,
            "--tls-version",
            "tlsv1.3",
        ],
        "tls/b",
    );

    // A listener that requires a client certificate.
    let mtls_s = mtls.to_string();
    let o = publish_with_stdin(
        &[
            "-h",
            "localhost",
            "-p",
            &mtls_s,
            "--cafile",
            ca,
            "-t",
            "a",
            "-m",
            "x",
        ],
        b"",
    );
    assert_ne!(o.code, 0, "no client certificate must fail: {}", o.stderr);
    let cert = [
        "--cert",
        path(&pki.client_cert),
        "--key",
        path(&pki.client_key),
    ];
    let mut with_cert = vec!["-h", "localhost", "-p", &mtls_s, "--cafile", ca];
    with_cert.extend(cert);
    round_trip(&with_cert, &with_cert, "tls/mtls");

    // A certificate for another name: refused, unless --insecure.
    let wrong_s = wrong.to_string();
    let o = publish_with_stdin(
        &[
            "-h",
            "localhost",
            "-p",
            &wrong_s,
            "--cafile",
            ca,
            "-t",
            "a",
            "-m",
            "x",
        ],
        b"",
    );
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("TLS handshake failed") && o.stderr.contains("not valid for name"),
        "{}",
        o.stderr
    );
    round_trip(
        &[
            "-h",
            "localhost",
            "-p",
            &wrong_s,
            "--cafile",
            ca,
            "--insecure",
        ],
        &[
            "-h",
            "localhost",
            "-p",
            &wrong_s,
            "--cafile",
            ca,
            "--insecure",
        ],
        "tls/insecure",
    );
    // --insecure still checks the chain: a CA that did not sign it fails.
    let other = tempfile::tempdir().unwrap();
    let other_pki = Pki::generate(other.path());
    let o = publish_with_stdin(
        &[
            "-h",
            "localhost",
            "-p",
            &wrong_s,
            "--cafile",
            path(&other_pki.ca),
            "--insecure",
            "-t",
            "a",
            "-m",
            "x",
        ],
        b"",
    );
    assert_eq!(o.code, 1, "{}", o.stderr);

    // wss://, and --capath (a directory of CA files).
    let url = format!("wss://localhost:{wss}/wss/t");
    round_trip(
        &["-L", &url, "--capath", path(certs.path())],
        &["-L", &url, "--cafile", ca],
        "wss/t",
    );
    // A missing CA file is a clear error before any connection.
    let o = publish_with_stdin(
        &[
            "-p",
            &tls_s,
            "--cafile",
            "/nonexistent/ca.pem",
            "-t",
            "a",
            "-m",
            "x",
        ],
        b"",
    );
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("/nonexistent/ca.pem"), "{}", o.stderr);
    drop(m);
}

#[test]
fn unix_socket() {
    let sock_dir = tempfile::tempdir().unwrap();
    let sock = sock_dir.path().join("mqtt.sock");
    let sock_s = path(&sock).to_owned();
    let _m = Broker::start(
        |_, port| {
            format!("per_listener_settings false\nallow_anonymous true\nlistener 0 {sock_s}\nlistener {port} 127.0.0.1\n")
        },
        &[],
    );
    // mosquitto opens its listeners in order: with the TCP port up, the
    // socket (listed first) is there.
    assert!(sock.exists(), "mosquitto did not create {sock_s}");
    round_trip(&["--unix", &sock_s], &["--unix", &sock_s], "unix/t");
}
