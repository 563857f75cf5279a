"""Debian's mosquitto_pub / mosquitto_sub against the broker: every protocol
version, QoS 2, retained messages, `-C`/`-W`, 5.0 properties with `-D`.

mosquitto_sub runs with `-d` so that its "received SUBACK" line tells when it
is subscribed; messages are printed with a tab-separated `-F` format."""

from __future__ import annotations

import queue
import shutil
import subprocess
import threading
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_sub") is None,
                                reason="mosquitto-clients not installed (scripts/test installs it)")

FMT = "MSG\t%t\t%q\t%r\t%P\t%C\t%D\t%R\t%F\t%E\t%p"
FIELDS = ["topic", "qos", "retain", "user", "content_type", "correlation", "response_topic",
          "format", "expiry", "payload"]


class Sub:
    """A running mosquitto_sub whose stdout lines are read into a queue."""

    def __init__(self, broker, topic, *args, version="mqttv311"):
        # line-buffered stdout (a pipe is block-buffered), so SUBACK is seen at once
        cmd = ["stdbuf", "-oL", "mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic,
               "-V", version, "-d", "-F", FMT, *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.all: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.all.append(line)
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_subscribed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if "received SUBACK" in line:
                return
        raise AssertionError(f"mosquitto_sub not subscribed: {''.join(self.all)}")

    def finish(self, timeout=15) -> tuple[int, list[dict]]:
        """Wait for exit; returns (exit code, messages)."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"mosquitto_sub still running after {timeout}s: {''.join(self.all)}") from None
        msgs = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            if line is None:
                break
            if line.startswith("MSG\t"):
                msgs.append(dict(zip(FIELDS, line.split("\t", len(FIELDS))[1:])))
        return rc, msgs

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def subs():
    made: list[Sub] = []

    def make(*a, **kw):
        s = Sub(*a, **kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.kill()


def pub(broker, topic, *args, version="mqttv311", timeout=15):
    cmd = ["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic, "-V", version,
           *args]
    res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"{cmd} -> {res.returncode}: {res.stdout}{res.stderr}"


@pytest.mark.parametrize("version", ["mqttv31", "mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_each_version(broker, subs, version, qos):
    s = subs(broker, "cli/t", "-C", "1", "-W", "10", "-q", str(qos), version=version)
    s.wait_subscribed()
    pub(broker, "cli/t", "-m", f"hello {version}", "-q", str(qos), version=version)
    rc, msgs = s.finish()
    assert rc == 0
    assert [(m["topic"], m["qos"], m["payload"]) for m in msgs] == [("cli/t", str(qos), f"hello {version}")]


def test_sub_count_exits_after_n(broker, subs):
    s = subs(broker, "cli/n", "-C", "3", "-W", "10", "-q", "1")
    s.wait_subscribed()
    for i in range(5):
        pub(broker, "cli/n", "-m", f"m{i}", "-q", "1")
    rc, msgs = s.finish()
    assert rc == 0 and [m["payload"] for m in msgs] == ["m0", "m1", "m2"]


def test_sub_wait_times_out(broker, subs):
    # -W with no traffic: exits on its own (code 27, "Timed out") within about the timeout
    t0 = time.monotonic()
    s = subs(broker, "cli/quiet", "-W", "1")
    s.wait_subscribed()
    rc, msgs = s.finish(timeout=10)
    assert msgs == [] and rc == 27 and time.monotonic() - t0 < 8


def test_pub_lines_from_stdin(broker, subs):
    s = subs(broker, "cli/lines", "-C", "3", "-W", "10", "-q", "1")
    s.wait_subscribed()
    res = subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", "cli/lines",
                          "-q", "1", "-l"], input="a\nb\nc\n", capture_output=True, text=True, timeout=15)
    assert res.returncode == 0, res.stderr
    rc, msgs = s.finish()
    assert rc == 0 and [m["payload"] for m in msgs] == ["a", "b", "c"]


@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_retained_with_r(broker, subs, version):
    pub(broker, "cli/ret", "-m", "kept", "-r", "-q", "1", version=version)
    s = subs(broker, "cli/ret", "-C", "1", "-W", "10", version=version)
    rc, msgs = s.finish()
    assert rc == 0 and [(m["payload"], m["retain"]) for m in msgs] == [("kept", "1")]
    # -r -n: empty retained message deletes it
    pub(broker, "cli/ret", "-n", "-r", "-q", "1", version=version)
    s2 = subs(broker, "cli/ret", "-C", "1", "-W", "10", version=version)
    s2.wait_subscribed()
    pub(broker, "cli/ret", "-m", "live", "-q", "1", version=version)
    rc, msgs = s2.finish()
    assert rc == 0 and [(m["payload"], m["retain"]) for m in msgs] == [("live", "0")]


def test_qos2_pub_sub_many(broker, subs):
    s = subs(broker, "cli/q2", "-C", "20", "-W", "20", "-q", "2")
    s.wait_subscribed()
    res = subprocess.run(["mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", "cli/q2",
                          "-q", "2", "-l"], input="".join(f"{i}\n" for i in range(20)),
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    rc, msgs = s.finish(timeout=25)
    assert rc == 0 and [m["payload"] for m in msgs] == [str(i) for i in range(20)]
    assert {m["qos"] for m in msgs} == {"2"}


def test_v5_properties_with_D(broker, subs):
    s = subs(broker, "cli/props", "-C", "1", "-W", "10", "-q", "1", version="mqttv5")
    s.wait_subscribed()
    pub(broker, "cli/props", "-m", "p", "-q", "1",
        "-D", "publish", "user-property", "k", "v",
        "-D", "publish", "user-property", "k2", "v2",
        "-D", "publish", "content-type", "text/plain",
        "-D", "publish", "correlation-data", "abc",
        "-D", "publish", "response-topic", "rt",
        "-D", "publish", "payload-format-indicator", "1",
        "-D", "publish", "message-expiry-interval", "100",
        version="mqttv5")
    rc, msgs = s.finish()
    assert rc == 0 and len(msgs) == 1
    m = msgs[0]
    assert (m["user"], m["content_type"], m["correlation"], m["response_topic"], m["format"]) == (
        "k:v k2:v2", "text/plain", "abc", "rt", "1")
    assert 98 <= int(m["expiry"]) <= 100


def test_v5_session_expiry_with_c_and_x(broker, subs):
    # a persistent 5.0 session from the command line: -c -x, offline message, reconnect
    s = subs(broker, "cli/sess", "-C", "1", "-W", "10", "-q", "1", "-c", "-i", "cli-sess",
             "-x", "300", "-E", version="mqttv5")  # -E: exit once subscribed
    rc, _ = s.finish()
    assert rc == 0
    pub(broker, "cli/sess", "-m", "while away", "-q", "1", version="mqttv5")
    s2 = subs(broker, "cli/sess", "-C", "1", "-W", "10", "-q", "1", "-c", "-i", "cli-sess",
              "-x", "300", version="mqttv5")
    rc, msgs = s2.finish()
    assert rc == 0 and [m["payload"] for m in msgs] == ["while away"]
