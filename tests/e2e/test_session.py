"""Persistent sessions: messages queued while offline are delivered on
reconnect in order; clean sessions forget; 5.0 session expiry; sessions
survive a broker restart."""

import time

import pytest

import rawmqtt as r
from mqttclient import V311, V5, props

N = 20


def _persistent(clients, broker, cid, protocol, expiry=300):
    c = clients(broker, client_id=cid, protocol=protocol, clean=False)
    if protocol == V5:
        c.connect(properties=props("CONNECT", SessionExpiryInterval=expiry))
    else:
        c.connect()
    return c


@pytest.mark.parametrize("version", [4, 5])
def test_offline_messages_delivered_in_order(broker, clients, raw_clients, version):
    # [MQTT-3.1.2-5] session state kept; [MQTT-4.6.0-5] order kept. A raw
    # subscriber sees wire order (paho reports QoS 2 only after PUBREL).
    cid = f"offline-{version}"
    sess = r.properties((r.P_SESSION_EXPIRY, 300)) if version == 5 else None
    s = raw_clients(broker)
    s.connect(version=version, client_id=cid, clean=False, props=sess)
    s.send(r.subscribe(1, [("off/t", 2)], version=version))
    s.expect(r.SUBACK)
    s.send(r.disconnect(version))
    s.wait_closed()
    pub = clients(broker, protocol=V5 if version == 5 else V311)
    pub.connect()
    for i in range(N):
        pub.publish("off/t", f"m{i}".encode(), qos=1 + i % 2)
    s2 = raw_clients(broker)
    present, _, _ = s2.connect(version=version, client_id=cid, clean=False, props=sess)
    assert present
    got = s2.receive_publishes(version, n=N)
    assert [m["payload"] for m in got] == [f"m{i}".encode() for i in range(N)]
    assert [m["qos"] for m in got] == [1 + i % 2 for i in range(N)]
    pub.publish("off/t", b"live", qos=1)
    assert s2.receive_publishes(version, until=("off/t", b"live")) == []


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_clean_session_forgets_subscriptions(broker, clients, protocol):
    # [MQTT-3.1.2-6] clean session discards previous session state
    cid = f"forget-{protocol}"
    s = _persistent(clients, broker, cid, protocol)
    s.subscribe("forget/t", qos=1)
    s.disconnect()
    c = clients(broker, client_id=cid, protocol=protocol, clean=True)
    _, present, _ = c.connect()
    assert present is False
    c.subscribe("forget/barrier", qos=1)
    pub = clients(broker, protocol=protocol)
    pub.connect()
    pub.publish("forget/t", b"should not arrive", qos=1)
    pub.publish("forget/barrier", b"b", qos=1)
    assert c.drain_until("forget/barrier", b"b") == []


def test_v311_clean_session_not_stored_after_disconnect(broker, clients):
    # [MQTT-3.1.2-6]: a clean session ends with the connection
    c = clients(broker, client_id="cs-ends", protocol=V311, clean=True)
    c.connect()
    c.subscribe("cs/t", qos=1)
    c.disconnect()
    c2 = clients(broker, client_id="cs-ends", protocol=V311, clean=False)
    _, present, _ = c2.connect()
    assert present is False


def test_v5_session_expiry_zero_ends_with_connection(broker, clients):
    c = _persistent(clients, broker, "exp0", V5, expiry=0)
    c.subscribe("exp0/t", qos=1)
    c.disconnect()
    c2 = _persistent(clients, broker, "exp0", V5, expiry=60)
    assert c2.session_present is False


@pytest.mark.slow
def test_v5_session_expires_after_interval(broker, clients):
    # [MQTT-3.1.2-23]: the session is deleted after Session Expiry Interval
    c = _persistent(clients, broker, "exp1", V5, expiry=1)
    c.subscribe("exp1/t", qos=1)
    c.disconnect()
    # the expiry itself is the event under test: let the interval pass
    time.sleep(2.5)
    c2 = _persistent(clients, broker, "exp1", V5, expiry=60)
    assert c2.session_present is False


def test_v5_disconnect_can_shorten_session_expiry(broker, clients, raw_clients):
    # [MQTT-3.14.2-2] session expiry may be changed on DISCONNECT (not from 0)
    c = raw_clients(broker)
    c.connect(version=5, client_id="exp-dc", clean=False,
              props=r.properties((r.P_SESSION_EXPIRY, 300)))
    c.send(r.subscribe(1, [("expdc/t", 1)], version=5))
    c.expect(r.SUBACK)
    c.send(r.disconnect(version=5, reason=0, props=r.properties((r.P_SESSION_EXPIRY, 0))))
    # The broker closes once it has handled the DISCONNECT. (paho closes
    # first; its next CONNECT, on another TCP connection, could then be
    # handled first and take the session over.)
    c.wait_closed()
    c2 = _persistent(clients, broker, "exp-dc", V5, expiry=60)
    assert c2.session_present is False


def test_a_disconnect_sent_before_reconnecting_is_handled_first(broker, raw_clients):
    # A client that sends DISCONNECT (5.0: ending its session) and connects
    # again at once, without waiting for the broker to close: the new
    # CONNECT, on another TCP connection, may be read first. Taking the
    # session over, the broker lets the old connection handle what it had
    # received (the DISCONNECT) before attaching, so the session is gone
    # every time, as the client asked. Back-to-back writes make the race
    # likely: before the takeover waited, most rounds found the session.
    present = []
    for i in range(60):
        cid = f"quick-{i}"
        a = raw_clients(broker)
        a.connect(version=5, client_id=cid, clean=False,
                  props=r.properties((r.P_SESSION_EXPIRY, 300)))
        a.send(r.subscribe(1, [("quick/t", 1)], version=5))
        a.expect(r.SUBACK)
        a.send(r.disconnect(version=5, reason=0, props=r.properties((r.P_SESSION_EXPIRY, 0))))
        b = raw_clients(broker)
        sp, rc, _ = b.connect(version=5, client_id=cid, clean=False,
                              props=r.properties((r.P_SESSION_EXPIRY, 300)))
        assert rc == 0
        present.append(sp)
        b.send(r.disconnect(version=5, reason=0, props=r.properties((r.P_SESSION_EXPIRY, 0))))
        b.wait_closed()
    assert not any(present), f"session present in {sum(present)} of 60 rounds"


def test_acknowledgements_sent_before_reconnecting_count(broker, raw_clients):
    # A subscriber acknowledges a QoS 1 message and connects again at once
    # (keeping its session): the PUBACK it sent on the old connection is
    # handled before the takeover, so the message is not sent again. The
    # next message (published after the new CONNACK) is the first the new
    # connection gets; before, it often got the old one again with DUP.
    pub = raw_clients(broker)
    pub.connect(version=4, client_id="ack-pub")
    again = []
    for i in range(40):
        cid = f"ack-sub-{i}"
        a = raw_clients(broker)
        a.connect(version=4, client_id=cid, clean=False)
        a.send(r.subscribe(1, [(f"ack/{i}", 1)]))
        a.expect(r.SUBACK)
        pub.send(r.publish(f"ack/{i}", b"first", qos=1, pid=1))
        pub.expect(r.PUBACK)
        f = a.expect(r.PUBLISH).publish_fields()
        a.send(r.ack(r.PUBACK, f["pid"]))
        b = raw_clients(broker)
        sp, rc, _ = b.connect(version=4, client_id=cid, clean=False)
        assert rc == 0 and sp
        pub.send(r.publish(f"ack/{i}", b"second", qos=1, pid=1))
        pub.expect(r.PUBACK)
        g = b.expect(r.PUBLISH).publish_fields()
        b.send(r.ack(r.PUBACK, g["pid"]))
        again.append(g["payload"] == b"first")
        b.send(r.disconnect())
        b.wait_closed()
    assert not any(again), f"an acknowledged message came again in {sum(again)} of 40 rounds"


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_session_and_queue_survive_restart(broker_factory, clients, protocol):
    b = broker_factory(persistence=True)
    cid = f"durable-{protocol}"
    s = _persistent(clients, b, cid, protocol)
    s.subscribe("dur/t", qos=1)
    s.disconnect()
    pub = clients(b, protocol=protocol)
    pub.connect()
    for i in range(5):
        pub.publish("dur/t", f"d{i}".encode(), qos=1)
    pub.disconnect()
    b.restart()
    s2 = _persistent(clients, b, cid, protocol)
    assert s2.session_present
    got = s2.get_n(5)
    assert [m.payload for m in got] == [f"d{i}".encode() for i in range(5)]
    # the subscription itself survived too
    pub2 = clients(b, protocol=protocol)
    pub2.connect()
    pub2.publish("dur/t", b"after restart", qos=1)
    assert s2.get().payload == b"after restart"
