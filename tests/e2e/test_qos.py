"""QoS 0/1/2 in both directions: exact delivery counts, order, the QoS
downgrade to the subscription's maximum, acknowledgement flows on the wire,
redelivery on reconnect, duplicate PUBLISH and unknown PUBREL."""

import pytest

import rawmqtt as r
from mqttclient import V31, V311, V5

N = 30


@pytest.mark.parametrize("protocol", [V31, V311, V5], ids=["v31", "v311", "v5"])
@pytest.mark.parametrize("pub_qos", [0, 1, 2])
@pytest.mark.parametrize("sub_qos", [0, 1, 2])
def test_delivery_qos_count_and_order(broker, clients, protocol, pub_qos, sub_qos):
    # [MQTT-3.8.4-6] granted QoS caps delivery; [MQTT-4.6.0-5] order per topic;
    # [MQTT-4.3.3-2]/[MQTT-4.3.2-2] exactly once / at least once (no loss on a healthy link)
    sub = clients(broker, protocol=protocol)
    sub.connect()
    codes = sub.subscribe("qos/t", qos=sub_qos)
    assert codes == [sub_qos]  # granted what was asked [MQTT-3.9.3-1]
    pub = clients(broker, protocol=protocol)
    pub.connect()
    for i in range(N):
        pub.publish("qos/t", str(i).encode(), qos=pub_qos)
    got = sub.get_n(N)
    assert [m.payload for m in got] == [str(i).encode() for i in range(N)]
    assert {m.qos for m in got} == {min(pub_qos, sub_qos)}
    pub.publish("qos/t", b"end", qos=pub_qos)
    assert sub.get().payload == b"end"
    sub.expect_none(0.2)  # no duplicates trailing


@pytest.mark.parametrize("version", [4, 5])
def test_qos1_flow_on_the_wire(broker, raw_clients, version):
    # [MQTT-4.3.2-2]: PUBACK carries the packet identifier of the PUBLISH
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"wire1-{version}")
    c.send(r.subscribe(7, [("wire/1", 1)], version=version))
    sa = c.expect(r.SUBACK)
    assert sa.pid() == 7 and sa.suback_codes(version) == [1]  # [MQTT-3.8.4-2]
    c.send(r.publish("wire/1", b"x", qos=1, pid=300, version=version))
    got = {}
    for _ in range(2):
        p = c.recv()
        got[p.type] = p
    assert got[r.PUBACK].pid() == 300
    fwd = got[r.PUBLISH].publish_fields(version)
    assert fwd["qos"] == 1 and fwd["payload"] == b"x" and fwd["pid"] != 0
    c.send(r.ack(r.PUBACK, fwd["pid"], version))
    assert c.still_open()


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_flow_on_the_wire(broker, raw_clients, version):
    # [MQTT-4.3.3-2] publisher side: PUBREC, then PUBCOMP for PUBREL;
    # receiver side: PUBLISH, PUBREC -> PUBREL -> PUBCOMP
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"wire2-{version}")
    c.send(r.subscribe(1, [("wire/2", 2)], version=version))
    c.expect(r.SUBACK)
    c.send(r.publish("wire/2", b"y", qos=2, pid=10, version=version))
    rec = c.expect(r.PUBREC)
    assert rec.pid() == 10
    c.send(r.ack(r.PUBREL, 10, version))
    got = {}
    for _ in range(2):  # PUBCOMP for our PUBREL, and the delivery (either order)
        p = c.recv()
        got[p.type] = p
    assert got[r.PUBCOMP].pid() == 10
    fwd = got[r.PUBLISH].publish_fields(version)
    assert fwd["qos"] == 2 and fwd["payload"] == b"y"
    c.send(r.ack(r.PUBREC, fwd["pid"], version))
    rel = c.expect(r.PUBREL)
    assert rel.pid() == fwd["pid"] and rel.flags == 0x02  # [MQTT-3.6.1-1]
    c.send(r.ack(r.PUBCOMP, fwd["pid"], version))
    assert c.still_open()


@pytest.mark.parametrize("version", [4, 5])
def test_duplicate_qos2_publish_before_pubrel_delivered_once(broker, raw_clients, clients, version):
    # [MQTT-4.3.3-2]: the receiver must not cause duplicate onward delivery
    sub = clients(broker, protocol=V5 if version == 5 else V311)
    sub.connect()
    sub.subscribe("dup2/t", qos=2)
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"dup2-{version}")
    c.send(r.publish("dup2/t", b"once", qos=2, pid=42, version=version))
    assert c.expect(r.PUBREC).pid() == 42
    c.send(r.publish("dup2/t", b"once", qos=2, pid=42, dup=True, version=version))
    assert c.expect(r.PUBREC).pid() == 42
    c.send(r.ack(r.PUBREL, 42, version))
    assert c.expect(r.PUBCOMP).pid() == 42
    c.send(r.publish("dup2/t", b"barrier", qos=2, pid=43, version=version))
    c.expect(r.PUBREC)
    c.send(r.ack(r.PUBREL, 43, version))
    c.expect(r.PUBCOMP)
    before = sub.drain_until("dup2/t", b"barrier")
    assert [m.payload for m in before] == [b"once"]
    assert before[0].dup is False  # [MQTT-3.3.1-3]: outgoing DUP is independent of incoming


@pytest.mark.parametrize("version", [4, 5])
def test_pubrel_for_unknown_id_gets_pubcomp(broker, raw_clients, version):
    # 3.1.1: PUBCOMP with the same id; 5.0: PUBCOMP 0x92 (packet identifier not found)
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"relx-{version}")
    c.send(r.ack(r.PUBREL, 777, version))
    comp = c.expect(r.PUBCOMP)
    assert comp.pid() == 777  # [MQTT-4.3.3-11]
    assert c.still_open()


@pytest.mark.midge_only
def test_v5_pubrel_for_unknown_id_reason_0x92(broker, raw_clients):
    # 5.0 3.7.2.1: 0x92 Packet Identifier not found (mosquitto 2.0.11 answers 0x00)
    c = raw_clients(broker)
    c.connect(version=5, client_id="relx-reason")
    c.send(r.ack(r.PUBREL, 778, 5))
    comp = c.expect(r.PUBCOMP)
    assert (comp.pid(), comp.reason()) == (778, 0x92)


@pytest.mark.parametrize("version", [4, 5])
def test_unacked_qos1_redelivered_with_dup_on_reconnect(broker, raw_clients, clients, version):
    # [MQTT-4.4.0-1]: on reconnect with a kept session, resend unacknowledged PUBLISH with DUP=1
    cid = f"redeliver1-{version}"
    sess = r.properties((r.P_SESSION_EXPIRY, 300)) if version == 5 else None
    a = raw_clients(broker)
    a.connect(version=version, client_id=cid, clean=False, props=sess)
    a.send(r.subscribe(1, [("redo/1", 1)], version=version))
    a.expect(r.SUBACK)
    pub = clients(broker)
    pub.connect()
    pub.publish("redo/1", b"unacked", qos=1)
    first = a.expect(r.PUBLISH).publish_fields(version)
    assert first["payload"] == b"unacked" and not first["dup"]
    a.close()  # no PUBACK, no DISCONNECT
    b = raw_clients(broker)
    present, _, _ = b.connect(version=version, client_id=cid, clean=False, props=sess)
    assert present
    again = b.expect(r.PUBLISH).publish_fields(version)
    assert again["payload"] == b"unacked" and again["dup"] and again["pid"] == first["pid"]
    b.send(r.ack(r.PUBACK, again["pid"], version))
    assert b.still_open()


@pytest.mark.parametrize("version", [4, 5])
def test_qos2_pubrel_resent_on_reconnect(broker, raw_clients, clients, version):
    # [MQTT-4.4.0-1]: after PUBREC, the server resends PUBREL (not the PUBLISH)
    cid = f"redeliver2-{version}"
    sess = r.properties((r.P_SESSION_EXPIRY, 300)) if version == 5 else None
    a = raw_clients(broker)
    a.connect(version=version, client_id=cid, clean=False, props=sess)
    a.send(r.subscribe(1, [("redo/2", 2)], version=version))
    a.expect(r.SUBACK)
    pub = clients(broker)
    pub.connect()
    pub.publish("redo/2", b"half", qos=2)
    first = a.expect(r.PUBLISH).publish_fields(version)
    a.send(r.ack(r.PUBREC, first["pid"], version))
    assert a.expect(r.PUBREL).pid() == first["pid"]
    a.close()
    b = raw_clients(broker)
    b.connect(version=version, client_id=cid, clean=False, props=sess)
    rel = b.expect(r.PUBREL)
    assert rel.pid() == first["pid"]
    b.send(r.ack(r.PUBCOMP, rel.pid(), version))
    assert b.still_open()


def test_qos2_inbound_state_survives_reconnect(broker, raw_clients, clients):
    # publisher gets PUBREC, reconnects (session kept), sends PUBREL: PUBCOMP, delivered once
    sub = clients(broker)
    sub.connect()
    sub.subscribe("half/in", qos=2)
    a = raw_clients(broker)
    a.connect(version=4, client_id="half-in", clean=False)
    a.send(r.publish("half/in", b"m", qos=2, pid=9))
    a.expect(r.PUBREC)
    a.close()
    b = raw_clients(broker)
    present, _, _ = b.connect(version=4, client_id="half-in", clean=False)
    assert present
    b.send(r.ack(r.PUBREL, 9))
    assert b.expect(r.PUBCOMP).pid() == 9
    assert sub.get().payload == b"m"
    b.send(r.publish("half/in", b"barrier", qos=0))
    assert sub.drain_until("half/in", b"barrier") == []
