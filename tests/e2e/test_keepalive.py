"""Keep alive: a silent client is disconnected after 1.5 x its keep alive (and
its will published); PINGREQ keeps a connection alive; 5.0 Server Keep Alive
when the client asks for more than --max-keepalive; CONNECT timeout."""

import time

import pytest

import rawmqtt as r


@pytest.mark.parametrize("version", [4, 5])
def test_silent_client_disconnected_after_one_and_a_half_keepalive(broker, raw_clients, version):
    # [MQTT-3.1.2-24] / 5.0 [MQTT-3.1.2-22]
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"silent-{version}", keepalive=1)
    t0 = time.monotonic()
    pkts = c.wait_closed(timeout=10)
    elapsed = time.monotonic() - t0
    # 1.5 s plus 1 s of slack for a loaded machine; mosquitto 2.0.11 checks
    # keep alive only every few seconds (a deviation), so it gets 8 s
    limit = 2.5 if broker.is_midge else 8.0
    assert 1.0 <= elapsed <= limit, f"closed after {elapsed:.2f}s with keep alive 1s"
    if version == 5:
        # a DISCONNECT, if sent, says 0x8D keep alive timeout
        assert all(p.type == r.DISCONNECT and p.reason() == 0x8D for p in pkts), pkts


def test_keepalive_expiry_publishes_will(broker, clients, raw_clients):
    w = clients(broker)
    w.connect()
    w.subscribe("ka/will", qos=1)
    c = raw_clients(broker)
    c.connect(version=4, client_id="ka-will", keepalive=1, will=("ka/will", b"timeout", 1, False))
    c.wait_closed(timeout=10)
    assert w.get().payload == b"timeout"


def test_pingreq_keeps_connection_alive(broker, raw_clients):
    # [MQTT-3.12.4-1]: PINGRESP for PINGREQ; activity resets the keep alive timer
    c = raw_clients(broker)
    c.connect(version=4, client_id="pinger", keepalive=1)
    deadline = time.monotonic() + 3.5  # well past 1.5 x keep alive
    while time.monotonic() < deadline:
        c.send(r.pingreq())
        c.expect(r.PINGRESP, timeout=1)
        # pace the pings at half the keep alive: the pacing is the test, not a wait
        time.sleep(0.5)
    assert c.still_open()


def test_publishing_keeps_connection_alive(broker, raw_clients):
    c = raw_clients(broker)
    c.connect(version=4, client_id="busy", keepalive=1)
    deadline = time.monotonic() + 3.5
    pid = 1
    while time.monotonic() < deadline:
        c.send(r.publish("busy/t", b"x", qos=1, pid=pid))
        assert c.expect(r.PUBACK, timeout=1).pid() == pid
        pid += 1
        time.sleep(0.5)
    assert c.still_open()


def test_v5_server_keep_alive_when_over_max(broker_factory, raw_clients):
    # 5.0 [MQTT-3.2.2-21]: the client must use the Server Keep Alive the server returns
    b = broker_factory(max_keepalive=10)
    c = raw_clients(b)
    _, rc, p = c.connect(version=5, client_id="ka-max", keepalive=100)
    assert rc == 0
    assert p.get(r.P_SERVER_KEEP_ALIVE) == 10, p


@pytest.mark.midge_only
def test_v5_server_keep_alive_enforced(broker_factory, raw_clients):
    # the server enforces the keep alive it announced (2 -> closed within 3s + slack)
    b = broker_factory(max_keepalive=2)
    c = raw_clients(b)
    _, _, p = c.connect(version=5, client_id="ka-enf", keepalive=600)
    assert p.get(r.P_SERVER_KEEP_ALIVE) == 2
    t0 = time.monotonic()
    c.wait_closed(timeout=8)
    assert 2.0 <= time.monotonic() - t0 <= 5.5


@pytest.mark.midge_only
def test_connect_timeout(broker, raw_clients):
    # 3.1.1 section 3.1.4: a server should close a connection that sends no CONNECT
    # within a reasonable time (midge: a few seconds)
    c = raw_clients(broker)
    c.wait_closed(timeout=30)


@pytest.mark.slow
def test_keepalive_zero_not_disconnected_by_timer(broker, raw_clients):
    # keep alive 0 turns the mechanism off [MQTT-3.1.2-24 note]
    c = raw_clients(broker)
    c.connect(version=4, client_id="ka0", keepalive=0)
    # silence for longer than any short keep alive would allow: the silence is the test
    time.sleep(2.5)
    assert c.still_open(timeout=2)
