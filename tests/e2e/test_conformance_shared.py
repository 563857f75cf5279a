"""Shared subscriptions (MQTT 5.0 4.8.2): each member's granted QoS, and
what happens to a message whose delivery to one member was interrupted or
refused: a QoS 2 delivery stays with its member, and a message refused with
a failing PUBACK/PUBREC is dropped, not passed to another member."""

import pytest

import rawmqtt as r
from mqttclient import V311, V5


def _persistent(version: int, keep: bool) -> dict:
    """CONNECT options for a session that outlives the connection (keep) or ends with it."""
    if version == 5:
        return {"clean": not keep, "props": r.properties((r.P_SESSION_EXPIRY, 300 if keep else 0))}
    return {"clean": not keep}


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_shared_delivery_respects_each_member_granted_qos(broker, clients, protocol):
    # [MQTT-4.8.2-3]: a message sent through a shared subscription goes out at the
    # minimum of its QoS and the QoS granted to the member that gets it
    low = clients(broker, protocol=protocol)
    low.connect()
    assert low.subscribe("$share/sq/sq/t", qos=0) == [0]
    high = clients(broker, protocol=protocol)
    high.connect()
    assert high.subscribe("$share/sq/sq/t", qos=2) == [2]
    p = clients(broker, protocol=protocol)
    p.connect()
    n = 12
    for i in range(n):
        p.publish("sq/t", str(i).encode(), qos=2)
    for c in (low, high):
        c.subscribe("sq/barrier", qos=1)
    p.publish("sq/barrier", b"b", qos=1)
    got_low = low.drain_until("sq/barrier", b"b")
    got_high = high.drain_until("sq/barrier", b"b")
    assert sorted([m.payload for m in got_low + got_high], key=int) == [str(i).encode() for i in range(n)]
    assert all(m.qos == 0 for m in got_low), [(m.payload, m.qos) for m in got_low]
    assert all(m.qos == 2 for m in got_high), [(m.payload, m.qos) for m in got_high]


def _first_member(broker, raw_clients, version: int, cid: str, group: str, topic: str,
                  keep: bool, qos: int = 2):
    """A raw client, the first and only member of `group` (so the next message
    matching `topic` is its), with a session that survives the connection or not."""
    a = raw_clients(broker)
    a.connect(version=version, client_id=cid, **_persistent(version, keep))
    a.send(r.subscribe(1, [(f"$share/{group}/{topic}", qos)], version=version))
    assert a.expect(r.SUBACK).suback_codes(version) == [qos]
    return a


def _other_member(broker, clients, protocol, group: str, topic: str):
    b = clients(broker, protocol=protocol)
    b.connect()
    b.subscribe(f"$share/{group}/{topic}", qos=2)
    b.subscribe(f"{topic}-barrier", qos=1)  # not shared: shows what b received before it
    return b


@pytest.mark.parametrize("after", ["publish", "pubrec"])
@pytest.mark.parametrize("version", [4, 5])
def test_interrupted_shared_qos2_completes_with_same_member(broker, raw_clients, clients, version, after):
    # [MQTT-4.8.2-4]: a QoS 2 message being sent to a member whose connection
    # breaks is completed with that member when it reconnects; no other member
    # gets it
    protocol = V5 if version == 5 else V311
    cid, topic = f"sh-q2-keep-{version}-{after}", f"shq2k{version}{after}/t"
    a = _first_member(broker, raw_clients, version, cid, "g4", topic, keep=True)
    p = clients(broker, protocol=V311)
    p.connect()
    p.publish(topic, b"for a", qos=2)
    f = a.expect(r.PUBLISH).publish_fields(version)
    assert f["payload"] == b"for a" and f["qos"] == 2
    if after == "pubrec":
        a.send(r.ack(r.PUBREC, f["pid"], version))
        a.expect(r.PUBREL)
    b = _other_member(broker, clients, protocol, "g4", topic)
    a.close()
    a2 = raw_clients(broker)
    present, _, _ = a2.connect(version=version, client_id=cid, **_persistent(version, True))
    assert present is True
    if after == "publish":
        again = a2.expect(r.PUBLISH).publish_fields(version)
        assert (again["payload"], again["pid"], again["dup"]) == (b"for a", f["pid"], True)
        a2.send(r.ack(r.PUBREC, again["pid"], version))
    rel = a2.expect(r.PUBREL)
    assert rel.pid() == f["pid"]
    a2.send(r.ack(r.PUBCOMP, rel.pid(), version))
    p.publish(f"{topic}-barrier", b"b", qos=1)
    assert [m.payload for m in b.drain_until(f"{topic}-barrier", b"b")] == []


@pytest.mark.parametrize("version", [4, 5])
def test_shared_qos2_not_passed_on_when_member_session_ends(broker, raw_clients, clients, version):
    # [MQTT-4.8.2-5]: if the member's session ends before it reconnects, the QoS 2
    # message it was being sent is not sent to any other member
    protocol = V5 if version == 5 else V311
    cid, topic = f"sh-q2-end-{version}", f"shq2e{version}/t"
    a = _first_member(broker, raw_clients, version, cid, "g5", topic, keep=False)
    p = clients(broker, protocol=V311)
    p.connect()
    p.publish(topic, b"for a", qos=2)
    assert a.expect(r.PUBLISH).publish_fields(version)["payload"] == b"for a"
    b = _other_member(broker, clients, protocol, "g5", topic)
    a.close()
    # the session is over once a new connection with that client id finds none
    a2 = raw_clients(broker)
    present, _, _ = a2.connect(version=version, client_id=cid, clean=True)
    assert present is False
    p.publish(f"{topic}-barrier", b"b", qos=1)
    assert [m.payload for m in b.drain_until(f"{topic}-barrier", b"b")] == []
    # the group still works: the next message reaches b, the only member left
    p.publish(topic, b"next", qos=2)
    assert b.get().payload == b"next"


@pytest.mark.parametrize("qos", [1, 2])
def test_v5_shared_message_refused_by_member_is_dropped(broker, raw_clients, clients, qos):
    # [MQTT-4.8.2-6]: a PUBACK or PUBREC >= 0x80 from the member: the server
    # discards the message and does not try another member
    topic = f"shref{qos}/t"
    cid = f"sh-refuse-{qos}"
    a = _first_member(broker, raw_clients, 5, cid, "g6", topic, keep=False, qos=qos)
    p = clients(broker, protocol=V311)
    p.connect()
    p.publish(topic, b"refused", qos=qos)
    f = a.expect(r.PUBLISH).publish_fields(5)
    assert f["payload"] == b"refused"
    b = _other_member(broker, clients, V5, "g6", topic)
    a.send(r.ack(r.PUBACK if qos == 1 else r.PUBREC, f["pid"], 5, reason=0x80))
    assert a.still_open()  # the PINGRESP came after the failed ack was handled
    a.close()  # neither a's leaving nor the end of its session moves the message on
    a2 = raw_clients(broker)
    present, _, _ = a2.connect(version=5, client_id=cid, clean=True)
    assert present is False
    p.publish(f"{topic}-barrier", b"b", qos=1)
    assert [m.payload for m in b.drain_until(f"{topic}-barrier", b"b")] == []
