"""`midge pub` and `midge sub` (the real binary) against the broker under test.

Pipes between the two commands, 10,000 stdin lines at QoS 1 with none lost,
MQTT 5.0 properties crossing between midge's CLI and paho-mqtt in both
directions, exit codes, and (midge only) WebSocket, TLS and secure WebSocket
listeners with certificates made by openssl in the test; both commands
reconnecting to a restarted broker.

`midge sub` runs with `-d`: its "Subscribed (mid: N)" line on stderr tells
when it is subscribed. Every wait has a timeout; every process this file
starts is ended by its own handle at teardown.
(The option-by-option tests, TLS and WebSocket against mosquitto, are the
Rust tests in crates/client/tests.)
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from brokerproc import free_port, midge_bin
from mqttclient import V5, props

RUN_TIMEOUT = 30.0
READY_TIMEOUT = 10.0


def run(*args: str, stdin: bytes = b"", timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs `midge ARGS` to its end."""
    return subprocess.run([midge_bin(), *args], input=stdin, capture_output=True, timeout=timeout)


def pub_ok(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    r = run("pub", *args, stdin=stdin)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def addr(broker) -> list[str]:
    return ["-h", broker.host, "-p", str(broker.port)]


class Proc:
    """A running midge command. stderr lines are read into a queue by a
    thread; stdout too, into a buffer, unless `pump_stdout` is False (the test
    then reads or hands over the pipe itself)."""

    def __init__(self, args: list[str], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                 pump_stdout: bool = True):
        self.proc = subprocess.Popen([midge_bin(), *args], stdin=stdin, stdout=stdout,
                                     stderr=subprocess.PIPE)
        self.err_lines: queue.Queue[str] = queue.Queue()
        self.err_all: list[str] = []
        self.out_chunks: list[bytes] = []
        self._threads = [threading.Thread(target=self._pump_err, daemon=True)]
        if pump_stdout and stdout is subprocess.PIPE:
            self._threads.append(threading.Thread(target=self._pump_out, daemon=True))
        for t in self._threads:
            t.start()

    def _pump_err(self):
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            self.err_all.append(line)
            self.err_lines.put(line)

    def _pump_out(self):
        assert self.proc.stdout is not None
        while chunk := self.proc.stdout.read1(65536):
            self.out_chunks.append(chunk)

    def wait_stderr(self, needle: str, timeout: float = READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"no {needle!r} on stderr within {timeout}s:\n{''.join(self.err_all)}")
            try:
                if needle in self.err_lines.get(timeout=remaining):
                    return
            except queue.Empty:
                continue

    def wait_subscribed(self):
        self.wait_stderr("Subscribed (mid:")
        return self

    def finish(self, timeout: float = RUN_TIMEOUT) -> tuple[int, bytes]:
        """Waits for the exit; returns the exit code and what stdout got."""
        rc = self.proc.wait(timeout=timeout)
        # the process is gone: its pipes end, and the reader threads with them
        for t in self._threads:
            t.join(timeout=timeout)
        return rc, b"".join(self.out_chunks)

    def stderr(self) -> str:
        return "".join(self.err_all)


@pytest.fixture
def procs():
    """Start midge processes; any still running at teardown is killed (by handle)."""
    made: list[Proc] = []

    def make(*args: str, **kwargs) -> Proc:
        p = Proc(list(args), **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(timeout=10)


@pytest.mark.parametrize("version", ["31", "311", "5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_pub_to_sub_round_trip(broker, procs, version, qos):
    s = procs("sub", *addr(broker), "-V", version, "-q", qos, "-t", "cli/rt", "-C", "1", "-v", "-d")
    s.wait_subscribed()
    pub_ok(*addr(broker), "-V", version, "-q", qos, "-t", "cli/rt", "-m", "hello there")
    rc, out = s.finish()
    assert (rc, out) == (0, b"cli/rt hello there\n"), s.stderr()


def test_sub_piped_into_pub(broker, procs, clients):
    """midge sub -C 3 | midge pub -l: each message is forwarded as it arrives."""
    watcher = clients(broker)
    watcher.connect()
    watcher.subscribe("pipe/out", qos=1)
    s = procs("sub", *addr(broker), "-t", "pipe/in", "-q", "1", "-C", "3", "-d", pump_stdout=False)
    p = procs("pub", *addr(broker), "-t", "pipe/out", "-q", "1", "-l", stdin=s.proc.stdout,
              stdout=subprocess.DEVNULL)
    s.proc.stdout.close()  # the pub process holds the pipe now
    s.wait_subscribed()
    sender = clients(broker)
    sender.connect()
    for i in range(3):
        sender.publish("pipe/in", f"msg {i}".encode(), qos=1)
        # Forwarded one by one, before the next is sent: sub flushes per message.
        assert watcher.get().payload == f"msg {i}".encode()
    assert s.finish()[0] == 0, s.stderr()
    assert p.finish()[0] == 0, p.stderr()


def test_stdin_lines_10000_at_qos_1_none_lost(broker_factory, procs, tmp_path):
    n = 10_000
    # mosquitto drops QoS 1 messages past max_queued_messages (1,000 by
    # default) even for a connected subscriber that lags: room for all of them.
    broker = broker_factory(max_queued=2 * n)
    lines = "".join(f"line {i:05d} {'x' * (i % 50)}\n" for i in range(n)).encode()
    out = tmp_path / "sub.out"
    with open(out, "wb") as f:
        s = procs("sub", *addr(broker), "-t", "cli/lines", "-q", "1", "-C", str(n), "-d", stdout=f)
        s.wait_subscribed()
        started = time.monotonic()
        pub_ok(*addr(broker), "-t", "cli/lines", "-q", "1", "-l", stdin=lines)
        rc, _ = s.finish(timeout=60)
        elapsed = time.monotonic() - started
    assert rc == 0, s.stderr()
    assert out.read_bytes() == lines  # all 10,000, in order
    print(f"10,000 QoS 1 lines through midge pub -l / midge sub: {elapsed:.2f}s")


def test_v5_properties_from_midge_pub_reach_paho(broker, clients):
    c = clients(broker, protocol=V5)
    c.connect()
    c.subscribe("props/#", qos=1)
    pub_ok(*addr(broker), "-V", "5", "-t", "props/a", "-q", "1", "-m", "hello", "--repeat", "2",
           "-D", "publish", "topic-alias", "1",
           "-D", "publish", "user-property", "k1", "v1",
           "-D", "publish", "user-property", "k2", "v2",
           "-D", "publish", "message-expiry-interval", "30",
           "-D", "publish", "content-type", "text/plain",
           "-D", "publish", "response-topic", "props/reply",
           "-D", "publish", "correlation-data", "abc",
           "-D", "publish", "payload-format-indicator", "1")
    for m in c.get_n(2):
        # The second PUBLISH carried only the alias; the broker restored the topic.
        assert (m.topic, m.payload, m.qos) == ("props/a", b"hello", 1)
        p = m.properties
        assert p["UserProperty"] == [("k1", "v1"), ("k2", "v2")]
        assert 25 <= p["MessageExpiryInterval"] <= 30
        assert p["ContentType"] == "text/plain"
        assert p["ResponseTopic"] == "props/reply"
        assert p["CorrelationData"] == b"abc"
        assert p["PayloadFormatIndicator"] == 1


def test_v5_properties_from_paho_in_midge_sub_json(broker, procs, clients):
    s = procs("sub", *addr(broker), "-V", "5", "-t", "pj/#", "-q", "1", "-C", "2", "--json", "-d",
              "-D", "subscribe", "subscription-identifier", "7")
    s.wait_subscribed()
    c = clients(broker, protocol=V5)
    c.connect()
    c.publish("pj/t", b"\xff\x00binary", qos=1, properties=props(
        "PUBLISH", UserProperty=[("a", "1"), ("a", "2")], ContentType="application/octet-stream",
        ResponseTopic="pj/reply", CorrelationData=b"\xfe\x01", MessageExpiryInterval=60))
    c.publish("pj/u", "héllo".encode(), qos=1, properties=props("PUBLISH", PayloadFormatIndicator=1))
    rc, out = s.finish()
    assert rc == 0, s.stderr()
    first, second = [json.loads(line) for line in out.decode().splitlines()]
    assert first["topic"] == "pj/t" and first["qos"] == 1 and first["retain"] is False
    assert (first["payload_encoding"], first["payload"]) == ("base64", "/wBiaW5hcnk=")
    p = first["properties"]
    assert p["user_properties"] == [["a", "1"], ["a", "2"]]
    assert p["content_type"] == "application/octet-stream"
    assert p["response_topic"] == "pj/reply"
    assert (p["correlation_data_encoding"], p["correlation_data"]) == ("base64", "/gE=")
    assert 55 <= p["message_expiry_interval"] <= 60
    assert p["subscription_identifiers"] == [7]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", first["time"])
    assert (second["payload_encoding"], second["payload"]) == ("utf8", "héllo")
    assert second["properties"]["payload_format_indicator"] == 1


def test_format_option_fields(broker, procs):
    s = procs("sub", *addr(broker), "-V", "5", "-t", "fmt/#", "-q", "2", "-C", "1", "-d",
              "-F", r"%t\t%q\t%r\t%l\t%x\t%C\t%P\t%%\t@@")
    s.wait_subscribed()
    pub_ok(*addr(broker), "-V", "5", "-t", "fmt/x", "-q", "2", "-m", "AB",
           "-D", "publish", "content-type", "ct", "-D", "publish", "user-property", "u", "v")
    rc, out = s.finish()
    assert (rc, out) == (0, b"fmt/x\t2\t0\t2\t4142\tct\tu:v\t%\t@\n"), s.stderr()


def test_ctrl_c_disconnects_cleanly_without_will(broker, procs, clients):
    watcher = clients(broker)
    watcher.connect()
    watcher.subscribe("cli/will", qos=1)
    s = procs("sub", *addr(broker), "-t", "cli/idle", "-d", "--will-topic", "cli/will",
              "--will-payload", "gone")
    s.wait_subscribed()
    s.proc.send_signal(signal.SIGINT)
    rc, _ = s.finish()
    assert rc == 0, s.stderr()
    assert "sending DISCONNECT" in s.stderr()
    watcher.expect_none(timeout=0.5)  # a normal DISCONNECT discards the will


def test_closed_stdout_ends_quietly(broker, procs):
    """`midge sub | head -1`: the reader leaves, midge sub exits 0 without noise."""
    s = procs("sub", *addr(broker), "-t", "cli/head", "-q", "1", "-d", pump_stdout=False)
    s.wait_subscribed()
    pub_ok(*addr(broker), "-t", "cli/head", "-m", "first", "-q", "1")
    assert s.proc.stdout.readline() == b"first\n"
    s.proc.stdout.close()
    pub_ok(*addr(broker), "-t", "cli/head", "-m", "second", "-q", "1")
    rc, _ = s.finish()
    assert rc == 0, s.stderr()
    assert "Error" not in s.stderr()


def test_exit_codes(broker):
    r = run("sub", *addr(broker), "-t", "nothing/here", "-W", "1")
    assert r.returncode == 27 and b"Timed out" in r.stderr
    r = run("pub", "-h", "127.0.0.1", "-p", str(free_port()), "-t", "a", "-m", "x")
    assert r.returncode == 1 and r.stderr.startswith(b"Error: Connection refused")
    r = run("pub", *addr(broker), "-t", "a", "-m", "x", "-q", "3")
    assert r.returncode == 1 and b"Use 'midge pub --help' to see usage." in r.stderr
    r = run("sub", "--help")
    assert r.returncode == 0 and b"--retained-only" in r.stdout and b"-h, --host" in r.stdout


# ---------------------------------------------------------------- midge only
# (mosquitto's TLS and WebSocket listeners are covered by crates/client/tests)

def _listener(broker, scheme: str, timeout: float = READY_TIMEOUT) -> int:
    """The port of broker's `midge listening SCHEME://...` line."""
    pattern = re.compile(rf"^midge listening {scheme}://[0-9.]+:(\d+)\s*$")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(broker._stdout_all):
            m = pattern.match(line)
            if m:
                return int(m.group(1))
        # the line follows the mqtt:// one on the broker's stdout: a short,
        # bounded wait for its reader thread
        time.sleep(0.02)
    pytest.fail(f"midge printed no {scheme}:// listener line:\n{broker.logs()}")


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    """CA, and a server certificate for localhost/127.0.0.1 signed by it (openssl)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed to make test certificates")

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"),
         "-days", "2", "-subj", "/CN=midge e2e CA")
    ossl("req", *ec, "-keyout", str(d / "srv.key"), "-out", str(d / "srv.csr"),
         "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", str(d / "srv.csr"), "-CA", str(d / "ca.pem"),
         "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "srv.pem"),
         "-days", "2", "-extfile", str(d / "ext.cnf"))
    return d / "ca.pem", d / "srv.pem", d / "srv.key"


@pytest.mark.midge_only
def test_websocket_tls_and_wss_against_midge(broker_factory, procs, tmp_path):
    ca, cert, key = _make_certs(tmp_path)
    b = broker_factory(extra_args=["--http", "127.0.0.1:0", "--mqtts", "127.0.0.1:0",
                                   "--https", "127.0.0.1:0", "--cert", str(cert), "--key", str(key)])
    ws, mqtts, wss = _listener(b, "ws"), _listener(b, "mqtts"), _listener(b, "wss")
    cases = [
        (["-L", f"ws://127.0.0.1:{ws}/door/ws"], "door/ws"),
        (["-L", f"mqtts://localhost:{mqtts}/door/tls", "--cafile", str(ca)], "door/tls"),
        (["-L", f"wss://localhost:{wss}/door/wss", "--cafile", str(ca)], "door/wss"),
    ]
    for url_args, topic in cases:
        s = procs("sub", *url_args, "-C", "2", "-v", "-q", "1", "-d")
        s.wait_subscribed()
        pub_ok(*url_args, "-m", "same door", "-q", "1")
        # and one over plain TCP, to the same broker core
        pub_ok(*addr(b), "-t", topic, "-m", "tcp", "-q", "1")
        rc, out = s.finish()
        assert (rc, out.decode()) == (0, f"{topic} same door\n{topic} tcp\n"), s.stderr()
    # TLS without our CA (the OS roots do not know it): refused, exit 1 with the reason
    r = run("pub", "-L", f"mqtts://localhost:{mqtts}/t", "-m", "x")
    assert r.returncode == 1 and b"TLS" in r.stderr, r.stderr


# ------------------------------------------------------- reconnecting sub
# mosquitto_sub reconnects (libmosquitto's loop_forever: every 1 s) when the
# connection is lost after the first CONNACK, and subscribes again in its
# on_connect; `midge sub` does the same.

def _restartable(broker_factory):
    """A broker and the port that stays the same across its restarts: midge
    gets a second, fixed --mqtt listener (its first is on port 0); mosquitto
    keeps its port anyway."""
    port = free_port()
    b = broker_factory(extra_args=["--mqtt", f"127.0.0.1:{port}"])
    return b, (port if b.is_midge else b.port)


def test_sub_reconnects_and_resubscribes_after_a_broker_restart(broker_factory, procs):
    b, port = _restartable(broker_factory)
    where = ["-h", "127.0.0.1", "-p", str(port)]
    s = procs("sub", *where, "-t", "cli/re", "-q", "1", "-C", "2", "-d")
    s.wait_subscribed()
    pub_ok(*where, "-t", "cli/re", "-q", "1", "-m", "one")
    s.wait_stderr("received PUBLISH")
    b.restart()
    # The next "Subscribed" line is the new connection's SUBACK: the restarted
    # broker (clean session, nothing kept) delivers through that SUBSCRIBE.
    s.wait_stderr("Subscribed (mid:")
    pub_ok(*where, "-t", "cli/re", "-q", "1", "-m", "two")
    rc, out = s.finish()
    assert (rc, out) == (0, b"one\ntwo\n"), s.stderr()
    assert "connection lost (" in s.stderr() and "reconnecting in 1 s" in s.stderr()


def test_sub_first_connect_refused_exits_at_once():
    started = time.monotonic()
    r = run("sub", "-h", "127.0.0.1", "-p", str(free_port()), "-t", "a", "-d")
    assert r.returncode == 1 and r.stderr.startswith(b"Error: Connection refused"), r.stderr
    assert time.monotonic() - started < 5.0  # no retry loop (a retry waits 1 s each)
    assert b"reconnect" not in r.stderr


# ------------------------------------------------------ reconnecting pub -l
# mosquitto_pub -l runs libmosquitto's threaded loop: it keeps reading stdin
# while disconnected, reconnects every 1 s, and sends again what was not
# acknowledged; `midge pub -l` does the same.

def _write_line(p: Proc, line: bytes) -> None:
    assert p.proc.stdin is not None
    p.proc.stdin.write(line)
    p.proc.stdin.flush()


def test_pub_lines_reconnect_after_a_broker_restart(broker_factory, procs):
    b, port = _restartable(broker_factory)
    where = ["-h", "127.0.0.1", "-p", str(port)]
    s = procs("sub", *where, "-t", "cli/pl", "-q", "1", "-C", "1", "-d")
    s.wait_subscribed()
    p = procs("pub", *where, "-t", "cli/pl", "-q", "1", "-r", "-l", "-d", stdin=subprocess.PIPE)
    _write_line(p, b"one\n")
    p.wait_stderr("received PUBACK (Mid: 1, RC:0)")
    assert s.finish() == (0, b"one\n"), s.stderr()
    b.restart()
    p.wait_stderr("connection lost (")
    p.wait_stderr("received CONNACK (0)")
    _write_line(p, b"two\n")
    p.proc.stdin.close()
    rc, _ = p.finish()
    assert rc == 0, p.stderr()
    assert "sending PUBLISH (d0, q1, r1, m2, 'cli/pl', ... (3 bytes))" in p.stderr()
    # Line 2 went to the restarted broker: it is the retained message now.
    r = run("sub", *where, "-t", "cli/pl", "-C", "1", "-W", "5")
    assert (r.returncode, r.stdout) == (0, b"two\n"), r.stderr


# ------------------------------------------------- reconnecting, both
def _connected(procs, broker, kind: str, *args: str):
    """`midge sub` subscribed, or `midge pub -l` connected, with `-d`."""
    if kind == "sub":
        c = procs("sub", *addr(broker), *args, "-d")
        c.wait_subscribed()
    else:
        c = procs("pub", *addr(broker), *args, "-l", "-d", stdin=subprocess.PIPE)
        c.wait_stderr("received CONNACK (0)")
    return c


@pytest.mark.parametrize("kind,args", [("sub", ["-t", "cli/gone"]),
                                       ("pub", ["-t", "cli/gone", "-q", "1"])],
                         ids=["sub", "pub-lines"])
def test_ctrl_c_while_reconnecting_exits_0(broker, procs, kind, args):
    c = _connected(procs, broker, kind, *args)
    broker.stop()
    c.wait_stderr("reconnecting in 1 s")
    c.proc.send_signal(signal.SIGINT)
    rc, _ = c.finish(timeout=5)
    assert rc == 0, c.stderr()


@pytest.mark.midge_only
@pytest.mark.parametrize("kind", ["sub", "pub"], ids=["sub", "pub-lines"])
def test_v5_run_ends_on_the_brokers_disconnect(broker, procs, kind):
    """A 5.0 DISCONNECT is not a lost connection: the run ends (mosquitto_sub
    does not reconnect after one either); midge exits with its reason code,
    here Server shutting down."""
    c = _connected(procs, broker, kind, "-V", "5", "-t", "cli/v5")
    broker.stop()
    rc, _ = c.finish(timeout=10)
    assert rc == 0x8B, c.stderr()
    assert "Disconnected by the broker: Server shutting down" in c.stderr()
    assert "reconnecting" not in c.stderr()
