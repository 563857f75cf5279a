//! `midge pub` and `midge sub` against mosquitto: every protocol version and
//! QoS, each payload source, the output formats, retained-message options,
//! sessions, wills, keep alive, MQTT 5.0 properties, and exit codes.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn round_trip_every_version_and_qos() {
    let m = Broker::plain();
    let port = m.port_arg();
    for version in ["31", "mqttv311", "5", "mqttv31", "311", "mqttv5"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("rt/{version}/{qos}");
            let payload = format!("hello {version} {qos}");
            let s = sub(&[
                "-p", &port, "-V", version, "-q", qos, "-t", &topic, "-C", "1", "-v",
            ]);
            s.wait_subscribed();
            publish_ok(&[
                "-p", &port, "-V", version, "-q", qos, "-t", &topic, "-m", &payload,
            ]);
            let o = s.finish();
            assert_eq!(o.code, 0, "{}", o.stderr);
            assert_eq!(o.out(), format!("{topic} {payload}\n"));
        }
    }
}

#[test]
fn payload_sources_file_stdin_null_lines_repeat() {
    let m = Broker::plain();
    let port = m.port_arg();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payload.bin");
    std::fs::write(&file, b"from a file").unwrap();
    let s = sub(&[
        "-p", &port, "-t", "src/#", "-q", "1", "-C", "9", "-F", "%t|%l|%p",
    ]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-q", "1", "-t", "src/f", "-f", path(&file)]);
    let o = publish_with_stdin(
        &["-p", &port, "-q", "1", "-t", "src/s", "-s"],
        b"whole\nstdin",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    publish_ok(&["-p", &port, "-q", "1", "-t", "src/n", "-n"]);
    // -l: one message per line, '\n' removed, an empty line is an empty message.
    let o = publish_with_stdin(
        &["-p", &port, "-q", "1", "-t", "src/l", "-l"],
        b"one\n\nthree",
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    publish_ok(&[
        "-p",
        &port,
        "-q",
        "1",
        "-t",
        "src/r",
        "-m",
        "again",
        "--repeat",
        "3",
        "--repeat-delay",
        "0.01",
    ]);
    let o = s.finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.out(),
        "src/f|11|from a file\nsrc/s|11|whole\nstdin\nsrc/n|0|\nsrc/l|3|one\nsrc/l|0|\n\
         src/l|5|three\nsrc/r|5|again\nsrc/r|5|again\nsrc/r|5|again\n"
    );
}

#[test]
fn stdin_lines_at_qos_2_with_a_small_window_lose_nothing() {
    let m = Broker::plain();
    let port = m.port_arg();
    let n = 2000;
    let input: String = (0..n).map(|i| format!("line {i}\n")).collect();
    let count = n.to_string();
    let s = sub(&["-p", &port, "-t", "many", "-q", "2", "-C", &count]);
    s.wait_subscribed();
    let o = publish_with_stdin(
        &["-p", &port, "-t", "many", "-q", "2", "-l", "-M", "7"],
        input.as_bytes(),
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = s.finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out(), input);
}

#[test]
fn retained_only_no_retained_filter_out_and_remove_retained() {
    let m = Broker::plain();
    let port = m.port_arg();
    publish_ok(&["-p", &port, "-t", "ret/1", "-m", "one", "-r", "-q", "1"]);
    publish_ok(&["-p", &port, "-t", "ret/2", "-m", "two", "-r", "-q", "1"]);

    // --retained-only with -C: both stale messages, then exit.
    let o = sub_plain(&[
        "-p",
        &port,
        "-t",
        "ret/#",
        "--retained-only",
        "-C",
        "2",
        "-F",
        "%t %r %p",
    ])
    .finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let mut lines: Vec<String> = o.out().lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["ret/1 1 one", "ret/2 1 two"]);

    // -T: a filtered-out topic is not printed.
    let o = sub_plain(&[
        "-p",
        &port,
        "-t",
        "ret/#",
        "-T",
        "ret/1",
        "--retained-only",
        "-C",
        "1",
        "-v",
    ])
    .finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "ret/2 two\n"),
        "{}",
        o.stderr
    );

    // --retained-only exits at the first live message without printing it.
    let s = sub(&["-p", &port, "-t", "live/#", "--retained-only"]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-t", "live/x", "-m", "now"]);
    let o = s.finish();
    assert_eq!((o.code, o.out().as_str()), (0, ""), "{}", o.stderr);

    // -R: stale messages skipped, live ones printed.
    let s = sub(&["-p", &port, "-t", "ret/#", "-R", "-C", "1", "-v"]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-t", "ret/3", "-m", "fresh"]);
    let o = s.finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "ret/3 fresh\n"),
        "{}",
        o.stderr
    );

    // --remove-retained clears what it receives; a later subscriber gets nothing.
    let o = sub_plain(&[
        "-p",
        &port,
        "-t",
        "ret/#",
        "--remove-retained",
        "--retained-only",
        "-C",
        "2",
    ])
    .finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out().lines().count(), 2);
    let o = sub_plain(&["-p", &port, "-t", "ret/#", "-W", "1"]).finish();
    assert_eq!((o.code, o.out().as_str()), (27, ""), "{}", o.stderr);
    assert!(o.stderr.contains("Timed out"), "{}", o.stderr);
}

#[test]
fn json_format_and_no_eol() {
    let m = Broker::plain();
    let port = m.port_arg();
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("bin");
    std::fs::write(&binary, [0xff, 0x00, 0xfe]).unwrap();

    let s = sub(&[
        "-p", &port, "-V", "5", "-t", "js/#", "-q", "1", "-C", "2", "--json",
    ]);
    s.wait_subscribed();
    publish_ok(&[
        "-p",
        &port,
        "-V",
        "5",
        "-t",
        "js/text",
        "-m",
        "héllo",
        "-q",
        "1",
        "-r",
        "-D",
        "publish",
        "user-property",
        "k",
        "v1",
        "-D",
        "publish",
        "user-property",
        "k",
        "v2",
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "correlation-data",
        "corr",
        "-D",
        "publish",
        "response-topic",
        "js/reply",
        "-D",
        "publish",
        "message-expiry-interval",
        "300",
        "-D",
        "publish",
        "payload-format-indicator",
        "1",
    ]);
    publish_ok(&[
        "-p",
        &port,
        "-V",
        "5",
        "-t",
        "js/bin",
        "-f",
        path(&binary),
        "-q",
        "1",
    ]);
    let o = s.finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    let lines: Vec<serde_json::Value> = o
        .out()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let t = &lines[0];
    assert_eq!(t["topic"], "js/text");
    assert_eq!(t["payload"], "héllo");
    assert_eq!(t["payload_encoding"], "utf8");
    assert_eq!(t["qos"], 1);
    // Delivered live to an existing subscription: retain is cleared (3.3.1-9).
    assert_eq!(t["retain"], false);
    assert!(t["time"].as_str().unwrap().ends_with('Z'));
    let p = &t["properties"];
    assert_eq!(p["content_type"], "text/plain");
    assert_eq!(p["correlation_data"], "corr");
    assert_eq!(p["response_topic"], "js/reply");
    assert_eq!(p["payload_format_indicator"], 1);
    let expiry = p["message_expiry_interval"].as_u64().unwrap();
    assert!((295..=300).contains(&expiry), "{expiry}");
    assert_eq!(
        p["user_properties"],
        serde_json::json!([["k", "v1"], ["k", "v2"]])
    );
    let b = &lines[1];
    assert_eq!(b["payload_encoding"], "base64");
    assert_eq!(b["payload"], "/wD+");

    // -N: no newline between messages; %j is mosquitto's JSON.
    let s = sub(&["-p", &port, "-t", "eol", "-C", "2", "-N"]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-t", "eol", "-m", "a", "-q", "1"]);
    publish_ok(&["-p", &port, "-t", "eol", "-m", "b", "-q", "1"]);
    assert_eq!(s.finish().out(), "ab");
    let s = sub(&["-p", &port, "-t", "mj", "-C", "1", "-F", "%j"]);
    s.wait_subscribed();
    publish_ok(&["-p", &port, "-t", "mj", "-m", "x"]);
    let v: serde_json::Value = serde_json::from_str(s.finish().out().trim_end()).unwrap();
    assert_eq!(
        (
            v["topic"].as_str(),
            v["payload"].as_str(),
            v["payloadlen"].as_u64()
        ),
        (Some("mj"), Some("x"), Some(1))
    );
    assert!(v["tst"].as_str().unwrap().ends_with("Z+0000"));
}

#[test]
fn topic_alias_and_subscription_identifier() {
    let m = Broker::plain();
    let port = m.port_arg();
    let s = sub(&[
        "-p",
        &port,
        "-V",
        "5",
        "-t",
        "al/#",
        "-C",
        "3",
        "-F",
        "%t|%S|%p",
        "-D",
        "subscribe",
        "subscription-identifier",
        "42",
    ]);
    s.wait_subscribed();
    let o = publish_ok(&[
        "-p",
        &port,
        "-V",
        "5",
        "-t",
        "al/t",
        "-m",
        "x",
        "--repeat",
        "3",
        "-D",
        "publish",
        "topic-alias",
        "1",
        "-d",
    ]);
    // The first PUBLISH names the topic, the later ones only the alias.
    assert!(
        o.stderr.contains("'al/t'") && o.stderr.contains("m0, '',"),
        "{}",
        o.stderr
    );
    let o = s.finish();
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.out(), "al/t|42|x\nal/t|42|x\nal/t|42|x\n");
}

#[test]
fn persistent_session_queues_while_away_and_unsubscribe_stops_it() {
    let m = Broker::plain();
    let port = m.port_arg();
    for (version, id) in [("311", "persist-311"), ("5", "persist-5")] {
        let mut base = vec![
            "-p",
            port.as_str(),
            "-V",
            version,
            "-c",
            "-i",
            id,
            "-q",
            "1",
        ];
        if version == "5" {
            base.extend(["-x", "600"]);
        }
        let with = |extra: &[&'static str]| -> Vec<&str> {
            base.iter().copied().chain(extra.iter().copied()).collect()
        };
        // -E: subscribe, then leave at once (the session stays).
        let o = sub_plain(&with(&["-t", "ps/t", "-E"])).finish();
        assert_eq!(o.code, 0, "{}", o.stderr);
        publish_ok(&[
            "-p", &port, "-V", version, "-t", "ps/t", "-q", "1", "-m", "queued",
        ]);
        let o = sub_plain(&with(&["-t", "ps/t", "-C", "1"])).finish();
        assert_eq!((o.code, o.out().as_str()), (0, "queued\n"), "{}", o.stderr);
        // -U: unsubscribe; nothing is queued any more.
        let o = sub_plain(&with(&["-U", "ps/t", "-E"])).finish();
        assert_eq!(o.code, 0, "{}", o.stderr);
        publish_ok(&[
            "-p", &port, "-V", version, "-t", "ps/t", "-q", "1", "-m", "lost",
        ]);
        let o = sub_plain(&with(&["-t", "other/t", "-W", "1"])).finish();
        assert_eq!((o.code, o.out().as_str()), (27, ""), "{}", o.stderr);
    }
}

#[test]
fn will_is_published_when_the_connection_breaks() {
    let m = Broker::plain();
    let port = m.port_arg();
    let watcher = sub(&[
        "-p", &port, "-t", "will/t", "-q", "1", "-C", "1", "-F", "%t %q %p",
    ]);
    watcher.wait_subscribed();
    let proxy = Proxy::start(m.port);
    let proxy_port = proxy.port.to_string();
    let victim = sub(&[
        "-p",
        &proxy_port,
        "-t",
        "x",
        "--will-topic",
        "will/t",
        "--will-payload",
        "gone",
        "--will-qos",
        "1",
        "--will-retain",
        "-W",
        "2",
    ]);
    victim.wait_subscribed();
    proxy.cut();
    // The victim retries (the proxy accepts no second connection) until -W.
    let o = victim.finish();
    assert_eq!(o.code, 27, "{}", o.stderr);
    assert!(o.stderr.contains("connection lost ("), "{}", o.stderr);
    let o = watcher.finish();
    assert_eq!(
        (o.code, o.out().as_str()),
        (0, "will/t 1 gone\n"),
        "{}",
        o.stderr
    );
    // --will-retain: a later subscriber gets it as a retained message.
    let o = sub_plain(&["-p", &port, "-t", "will/t", "--retained-only", "-C", "1"]).finish();
    assert_eq!((o.code, o.out().as_str()), (0, "gone\n"), "{}", o.stderr);
}

#[test]
fn keep_alive_pings_and_ids() {
    let m = Broker::plain();
    let port = m.port_arg();
    let o = sub_plain(&[
        "-p", &port, "-t", "ka", "-k", "1", "-W", "3", "-d", "-I", "pfx-",
    ])
    .finish();
    assert_eq!(o.code, 27, "{}", o.stderr);
    assert!(
        o.stderr.contains("sending PINGREQ") && o.stderr.contains("received PINGRESP"),
        "{}",
        o.stderr
    );
    let id = format!("Client pfx-{} sending CONNECT", std::process::id());
    assert!(o.stderr.contains(&id), "{}", o.stderr);
    let o = publish_ok(&[
        "-p",
        &port,
        "-t",
        "ka",
        "-m",
        "x",
        "-i",
        "given-id",
        "-d",
        "-A",
        "127.0.0.1",
        "--nodelay",
    ]);
    assert!(
        o.stderr.contains("Client given-id sending PUBLISH"),
        "{}",
        o.stderr
    );
    if !m.is_midge {
        assert!(m.log().contains("given-id"), "broker saw the id");
    }
}

#[test]
fn user_and_password_and_url_credentials() {
    let m = Broker::start(
        |dir, port| {
            let pw = dir.join("passwd");
            let ok = std::process::Command::new("mosquitto_passwd")
                .args(["-c", "-b"])
                .arg(&pw)
                .args(["alice", "s3cret"])
                .status()
                .unwrap();
            assert!(ok.success());
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
                pw.display()
            )
        },
        &[],
    );
    let port = m.port_arg();
    publish_ok(&[
        "-p", &port, "-t", "a", "-m", "x", "-u", "alice", "-P", "s3cret",
    ]);
    let url = format!("mqtt://alice:s3cret@127.0.0.1:{port}/url/topic");
    let s = sub(&["-L", &url, "-C", "1", "-v"]);
    s.wait_subscribed();
    publish_ok(&["-L", &url, "-m", "via url"]);
    assert_eq!(s.finish().out(), "url/topic via url\n");

    let o = publish_with_stdin(
        &[
            "-p", &port, "-t", "a", "-m", "x", "-u", "alice", "-P", "wrong",
        ],
        b"",
    );
    assert_eq!(o.code, 5, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("Connection error: Connection Refused: not authorised."),
        "{}",
        o.stderr
    );
    let o = publish_with_stdin(&["-p", &port, "-t", "a", "-m", "x", "-V", "5"], b"");
    assert_eq!(o.code, 135, "{}", o.stderr);
    assert!(
        o.stderr.contains("Connection error: Not authorized"),
        "{}",
        o.stderr
    );
}

#[test]
fn exit_codes_and_usage_errors() {
    let m = Broker::plain();
    let port = m.port_arg();
    let dead = free_port().to_string();
    let o = publish_with_stdin(&["-p", &dead, "-t", "a", "-m", "x"], b"");
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("Error: Connection refused"),
        "{}",
        o.stderr
    );
    let o = sub_plain(&["-p", &dead, "-t", "a"]).finish();
    assert_eq!(o.code, 1, "{}", o.stderr);

    let bad: &[&[&str]] = &[
        &["-t", "a", "-m", "x", "-q", "3"],
        &["-t", "a", "-m", "x", "-V", "4"],
        &["-m", "x"],
        &["-t", "a"],
        &["-t", "a", "-m", "x", "-n"],
        &["-t", "a/#", "-m", "x"],
        &["-t", "a", "-m", "x", "-c"],
        &[
            "-t",
            "a",
            "-m",
            "x",
            "-V",
            "5",
            "-D",
            "publish",
            "subscription-identifier",
            "1",
        ],
        &[
            "-t",
            "a",
            "-m",
            "x",
            "-V",
            "5",
            "-D",
            "publish",
            "no-such-property",
            "1",
        ],
        &["-t", "a", "-m", "x", "-L", "http://h/t"],
        &["-t", "a", "-m", "x", "--will-payload", "p"],
        &["-t", "a", "-m", "x", "--bogus"],
    ];
    for args in bad {
        let mut all = vec!["-p", port.as_str()];
        all.extend_from_slice(args);
        let o = publish_with_stdin(&all, b"");
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(o.stderr.starts_with("Error: "), "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("Use 'midge pub --help' to see usage."),
            "{args:?}: {}",
            o.stderr
        );
    }
    for args in [
        &["-t", "a/#/b"][..],
        &["-t", "a", "-F", "%z"],
        &["-t", "a", "-C", "0"],
        &[],
    ] {
        let o = sub_plain(
            &args
                .iter()
                .copied()
                .chain(["-p", port.as_str()])
                .collect::<Vec<_>>(),
        )
        .finish();
        assert_eq!(o.code, 1, "{args:?}: {}", o.stderr);
        assert!(
            o.stderr.contains("Use 'midge sub --help' to see usage."),
            "{args:?}: {}",
            o.stderr
        );
    }
    // --quiet: the same failure, nothing on stderr.
    let o = sub_plain(&["-p", &dead, "-t", "a", "--quiet"]).finish();
    assert_eq!((o.code, o.stderr.as_str()), (1, ""));
}

#[test]
fn help_lists_every_option() {
    let o = publish_with_stdin(&["--help"], b"");
    assert_eq!(o.code, 0);
    let help = o.out();
    for opt in [
        "-h, --host",
        "-p, --port",
        "-t, --topic",
        "-m, --message",
        "-q, --qos",
        "-r, --retain",
        "-i, --id",
        "-I, --id-prefix",
        "-u, --username",
        "-P, --pw",
        "-k, --keepalive",
        "-V, --protocol-version",
        "-d, --debug",
        "-l, --stdin-line",
        "-f, --file",
        "-s, --stdin-file",
        "-n, --null-message",
        "-c, --disable-clean-session",
        "-x,",
        "--will-topic",
        "--will-payload",
        "--will-qos",
        "--will-retain",
        "--cafile",
        "--capath",
        "--cert",
        "--key",
        "--insecure",
        "-L, --url",
        "-D, --property",
        "-W, --timeout",
        "--repeat",
        "--repeat-delay",
        "-M, --max-inflight",
        "--unix",
        "--quiet",
        "--help",
        "-A",
    ] {
        assert!(help.contains(opt), "midge pub --help lacks {opt}:\n{help}");
    }
    let o = sub_plain(&["--help"]).finish();
    assert_eq!(o.code, 0);
    let help = o.out();
    for opt in [
        "-h, --host",
        "-t, --topic",
        "-v, --verbose",
        "-C, --count",
        "-W, --timeout",
        "-N, --no-eol",
        "-R, --no-retained",
        "-F, --format",
        "--retained-only",
        "-T, --filter-out",
        "--remove-retained",
        "-U, --unsubscribe",
        "-E, --exit-after-subscribe",
        "--json",
        "--pretty",
        "-D, --property",
        "-L, --url",
        "%t",
        "%j",
        "@Y",
    ] {
        assert!(help.contains(opt), "midge sub --help lacks {opt}:\n{help}");
    }
}
