"""Will messages: published when the connection ends without DISCONNECT (or
on keep alive expiry, protocol error, 5.0 reason 0x04), not on a normal
DISCONNECT; will retain and QoS; 5.0 will delay and its cancellation."""

import time

import pytest

import rawmqtt as r
from mqttclient import V31, V311, V5, props


def _watcher(broker, clients, topic="will/#", protocol=V311):
    w = clients(broker, protocol=protocol)
    w.connect()
    w.subscribe(topic, qos=2)
    w.subscribe("will-barrier", qos=2)
    return w


def _before_barrier(broker, clients, w):
    """What `w` got before a barrier published now: [] means no will came."""
    p = clients(broker)
    p.connect()
    p.publish("will-barrier", b"b", qos=1)
    return w.drain_until("will-barrier", b"b")


def _delayed_will_client(broker, clients, client_id, topic, payload, *, delay, expiry, clean):
    """A connected 5.0 client whose will (QoS 1) waits `delay` s and whose
    session outlives the connection by `expiry` s."""
    c = clients(broker, client_id=client_id, protocol=V5, clean=clean)
    c.will_set(topic, payload, qos=1, properties=props("WILLMESSAGE", WillDelayInterval=delay))
    c.connect(properties=props("CONNECT", SessionExpiryInterval=expiry))
    return c


@pytest.mark.parametrize("protocol", [V31, V311, V5], ids=["v31", "v311", "v5"])
def test_will_on_socket_close(broker, clients, protocol):
    # [MQTT-3.1.2-8]: published when the network connection is closed without DISCONNECT
    w = _watcher(broker, clients)
    c = clients(broker, protocol=protocol)
    c.will_set("will/dead", b"gone", qos=1)
    c.connect()
    c.drop()
    m = w.get()
    assert (m.topic, m.payload, m.qos, m.retain) == ("will/dead", b"gone", 1, False)


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_no_will_on_disconnect(broker, clients, protocol):
    # [MQTT-3.1.2-10], [MQTT-3.14.4-3]: DISCONNECT discards the will
    w = _watcher(broker, clients)
    c = clients(broker, protocol=protocol)
    c.will_set("will/unused", b"no", qos=1)
    c.connect()
    c.disconnect()
    assert _before_barrier(broker, clients, w) == []


def test_no_will_when_flag_not_set(broker, clients):
    # [MQTT-3.1.2-12] (3.1.1): no will flag -> nothing published when the connection drops
    w = _watcher(broker, clients, topic="#")
    c = clients(broker)
    c.connect()
    c.drop()
    assert _before_barrier(broker, clients, w) == []


def test_v5_disconnect_with_will_reason_0x04(broker, clients):
    # 5.0 3.14.2.1: reason 0x04 "Disconnect with Will Message"
    w = _watcher(broker, clients)
    c = clients(broker, protocol=V5)
    c.will_set("will/asked", b"please", qos=1)
    c.connect()
    c.disconnect(reasoncode=0x04)
    assert w.get().payload == b"please"


def test_will_retained(broker, clients):
    # [MQTT-3.1.2-17]: will retain -> published as a retained message
    c = clients(broker)
    c.will_set("will/ret", b"last words", qos=1, retain=True)
    c.connect()
    w = _watcher(broker, clients)
    c.drop()
    assert w.get().payload == b"last words"
    late = clients(broker)
    late.connect()
    late.subscribe("will/ret", qos=1)
    m = late.get()
    assert (m.payload, m.retain) == (b"last words", True)


def test_will_on_protocol_error(broker, clients, raw_clients):
    # [MQTT-3.1.2-8]: a connection closed by the server for a protocol error publishes the will
    w = _watcher(broker, clients)
    c = raw_clients(broker)
    c.connect(version=4, client_id="will-err", will=("will/err", b"broken", 1, False))
    c.send(b"\x36\x00")  # PUBLISH with QoS 3: malformed
    c.wait_closed()
    assert w.get().payload == b"broken"


def test_will_on_takeover_v311(broker, clients, raw_clients):
    # 3.1.1: a takeover closes the old connection without DISCONNECT -> its will is published
    w = _watcher(broker, clients)
    a = raw_clients(broker)
    a.connect(version=4, client_id="will-take", will=("will/take", b"taken", 1, False))
    b = raw_clients(broker)
    b.connect(version=4, client_id="will-take")
    a.wait_closed()
    assert w.get().payload == b"taken"


def test_v5_will_properties_passed(broker, clients):
    w = _watcher(broker, clients, protocol=V5)
    c = clients(broker, protocol=V5)
    c.will_set("will/props", b"{}", qos=1,
               properties=props("WILLMESSAGE", ContentType="application/json",
                                UserProperty=[("why", "test")], ResponseTopic="resp/t"))
    c.connect()
    c.drop()
    m = w.get()
    assert m.properties.get("ContentType") == "application/json"
    assert m.properties.get("UserProperty") == [("why", "test")]
    assert m.properties.get("ResponseTopic") == "resp/t"


@pytest.mark.slow
def test_v5_will_delay(broker, clients):
    # [MQTT-3.1.3-9]: the will is published after the Will Delay Interval
    w = _watcher(broker, clients)
    c = _delayed_will_client(broker, clients, "will-delay", "will/delayed", b"late",
                             delay=2, expiry=60, clean=False)
    t0 = time.monotonic()
    c.drop()
    m = w.get(timeout=8)
    elapsed = time.monotonic() - t0
    assert m.payload == b"late"
    assert elapsed >= 1.5, f"will published after {elapsed:.2f}s, delay was 2s"


@pytest.mark.slow
def test_v5_will_delay_cancelled_by_reconnect(broker, clients):
    # [MQTT-3.1.3-9]: a new connection for the session before the delay ends cancels the will
    w = _watcher(broker, clients)
    c = _delayed_will_client(broker, clients, "will-cancel", "will/cancelled", b"never",
                             delay=2, expiry=60, clean=False)
    c.drop()
    c2 = clients(broker, client_id="will-cancel", protocol=V5, clean=False)
    c2.connect(properties=props("CONNECT", SessionExpiryInterval=60))
    assert c2.session_present
    # the delay must pass before absence means anything
    time.sleep(3)
    assert _before_barrier(broker, clients, w) == []


@pytest.mark.slow
def test_v5_will_sent_at_session_expiry_before_delay(broker, clients):
    # 5.0 3.1.3.2: the will is sent when the session ends, if that is earlier than the delay
    w = _watcher(broker, clients)
    c = _delayed_will_client(broker, clients, "will-exp", "will/expiry", b"session over",
                             delay=30, expiry=1, clean=True)
    t0 = time.monotonic()
    c.drop()
    m = w.get(timeout=8)
    assert m.payload == b"session over"
    assert time.monotonic() - t0 < 8
