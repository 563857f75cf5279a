"""Broker limits (--max-connections, --max-inflight, --max-queued) and the
`midge serve` process contract: listening lines, several --mqtt listeners,
clean exit 0 on SIGTERM/SIGINT, errors on bad flags."""

import signal
import subprocess

import pytest

import rawmqtt as r
from brokerproc import midge_bin
from mqttclient import V311


def test_max_connections(broker_factory, raw_clients):
    b = broker_factory(max_connections=2)
    accepted = []
    refused_with = None
    for i in range(5):
        c = raw_clients(b)
        try:
            c.send(r.connect(version=4, client_id=f"mc{i}"))
            p = c.recv()
        except (r.Closed, ConnectionResetError, BrokenPipeError):
            refused_with = "close"
            break
        if p.type == r.CONNACK and p.body[1] == 0:
            accepted.append(c)
            continue
        # refused: CONNACK 0x03 (server unavailable), then close
        assert p.type == r.CONNACK and p.body[1] == 0x03, p
        c.wait_closed()
        refused_with = "connack 3"
        break
    assert refused_with, "no connection was refused"
    # mosquitto 2.0.11 lets one more in (it counts our readiness probe oddly)
    assert len(accepted) == 2 or (not b.is_midge and len(accepted) == 3), len(accepted)
    assert all(c.still_open() for c in accepted)


def test_max_inflight_limits_unacked(broker_factory, clients, raw_clients):
    b = broker_factory(max_inflight=3)
    c = raw_clients(b)
    c.connect(version=4, client_id="inflight")
    c.send(r.subscribe(1, [("if/t", 1)]))
    c.expect(r.SUBACK)
    p = clients(b)
    p.connect()
    for i in range(8):
        p.publish("if/t", str(i).encode(), qos=1)
    first = [c.expect(r.PUBLISH).publish_fields() for _ in range(3)]
    with pytest.raises(TimeoutError):
        c.recv(timeout=0.7)
    for f in first:
        c.send(r.ack(r.PUBACK, f["pid"]))
    rest = c.receive_publishes(4, n=5)
    assert [f["payload"] for f in first + rest] == [str(i).encode() for i in range(8)]


def test_max_queued_bounds_offline_queue(broker_factory, clients):
    b = broker_factory(max_queued=5)
    s = clients(b, client_id="mq", clean=False)
    s.connect()
    s.subscribe("mq/t", qos=1)
    s.disconnect()
    p = clients(b)
    p.connect()
    for i in range(20):
        p.publish("mq/t", str(i).encode(), qos=1)
    s2 = clients(b, client_id="mq", clean=False)
    s2.connect()
    p.publish("mq/t", b"live", qos=1)
    before = s2.drain_until("mq/t", b"live")
    assert 1 <= len(before) <= 5, [m.payload for m in before]
    ints = [int(m.payload) for m in before]
    assert ints == sorted(ints)


# ---------------------------------------------------------------- midge process
@pytest.mark.midge_only
def test_several_mqtt_listeners(broker_factory, clients):
    b = broker_factory(extra_args=["--mqtt", "127.0.0.1:0"])
    assert len(b.listeners) == 2 and b.listeners[0] != b.listeners[1]
    s = clients(b)
    s.connect()
    s.subscribe("two/t", qos=1)
    p = clients(b)
    p.connect(port=b.listeners[1][1])
    p.publish("two/t", b"across listeners", qos=1)
    assert s.get().payload == b"across listeners"


@pytest.mark.midge_only
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_zero(broker_factory, clients, sig):
    b = broker_factory()
    c = clients(b, protocol=V311)
    c.connect()
    assert b.stop(sig=sig) == 0


@pytest.mark.midge_only
def test_sigterm_right_after_listening_line_exits_zero(broker_factory):
    # the listening line promises a running broker: a SIGTERM sent at once
    # must already be handled (exit 0), not kill the process (-15)
    codes = []
    for _ in range(5):
        b = broker_factory()
        codes.append(b.stop())
    assert codes == [0] * 5


@pytest.mark.midge_only
@pytest.mark.parametrize("args", [["--max-packet-size", "abc"], ["--mqtt", "not-an-address"],
                                  ["--no-such-flag"]])
def test_bad_flags_fail_fast(tmp_path, args):
    res = subprocess.run([midge_bin(), "serve", "--data-dir", str(tmp_path), *args],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    assert res.returncode != 0
    assert res.stderr.strip(), "an error message on stderr"
    assert "midge listening" not in res.stdout


@pytest.mark.midge_only
def test_port_in_use_fails(broker, tmp_path):
    res = subprocess.run([midge_bin(), "serve", "--mqtt", f"127.0.0.1:{broker.port}",
                          "--data-dir", str(tmp_path)],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
    assert res.returncode != 0 and res.stderr.strip()


def _proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _soft_nofile(pid: int) -> int:
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                soft = line.split()[3]
                return 1 << 62 if soft == "unlimited" else int(soft)
    raise AssertionError("no open-file line in /proc/PID/limits")


@pytest.mark.midge_only
def test_descriptors_ready_for_a_connect_burst(broker_factory):
    # The soft open-file limit is raised to the hard one (up to 2^20), and
    # the descriptor table is grown at start-up (up to 65,536 slots), so a
    # burst of connections does not stall accept() on table growth.
    import resource
    b = broker_factory()
    pid = b.proc.pid
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    hard = 1 << 62 if hard == resource.RLIM_INFINITY else hard
    soft = _soft_nofile(pid)
    assert soft == min(hard, 1 << 20), (soft, hard)
    assert _proc_status(pid, "FDSize") >= min(soft, 65_536)
