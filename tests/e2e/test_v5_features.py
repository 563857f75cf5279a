"""MQTT 5.0 features: PUBLISH properties passed through unchanged, message
expiry, topic aliases, no local, receive maximum, the client's maximum
packet size, PUBLISH with a topic alias it never set."""

import time

import pytest

import rawmqtt as r
from mqttclient import V5, props


def test_publish_properties_passed_through(broker, clients):
    # [MQTT-3.3.2-4] payload format, [MQTT-3.3.2-17]/[-18] user properties in order,
    # [MQTT-3.3.2-20] content type, response topic, correlation data unchanged
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("props/t", qos=1)
    p = clients(broker, protocol=V5)
    p.connect()
    user = [("z", "1"), ("a", "2"), ("z", "3"), ("ключ", "значение")]
    p.publish("props/t", "héllo".encode(), qos=1,
              properties=props("PUBLISH", UserProperty=user, ContentType="text/plain; charset=utf-8",
                               ResponseTopic="reply/here", CorrelationData=b"\x00\x01corr\xff",
                               PayloadFormatIndicator=1))
    m = s.get()
    assert m.properties.get("UserProperty") == user
    assert m.properties.get("ContentType") == "text/plain; charset=utf-8"
    assert m.properties.get("ResponseTopic") == "reply/here"
    assert m.properties.get("CorrelationData") == b"\x00\x01corr\xff"
    assert m.properties.get("PayloadFormatIndicator") == 1


def test_request_response_pattern(broker, clients):
    responder = clients(broker, protocol=V5)
    responder.connect()
    responder.subscribe("svc/req", qos=1)
    requester = clients(broker, protocol=V5)
    requester.connect()
    requester.subscribe("svc/resp/me", qos=1)
    requester.publish("svc/req", b"ping", qos=1,
                      properties=props("PUBLISH", ResponseTopic="svc/resp/me", CorrelationData=b"42"))
    req = responder.get()
    responder.publish(req.properties["ResponseTopic"], b"pong", qos=1,
                      properties=props("PUBLISH", CorrelationData=req.properties["CorrelationData"]))
    resp = requester.get()
    assert (resp.payload, resp.properties.get("CorrelationData")) == (b"pong", b"42")


def test_message_expiry_interval_forwarded_decremented(broker, clients):
    # [MQTT-3.3.2-6]: forwarded with the remaining lifetime (never more than sent)
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("exp/t", qos=1)
    p = clients(broker, protocol=V5)
    p.connect()
    p.publish("exp/t", b"x", qos=1, properties=props("PUBLISH", MessageExpiryInterval=100))
    m = s.get()
    assert 0 < m.properties.get("MessageExpiryInterval", -1) <= 100


@pytest.mark.slow
def test_expired_message_not_delivered_to_offline_session(broker, clients):
    # [MQTT-3.3.2-5]: an expired message is not delivered to the subscriber
    s = clients(broker, client_id="exp-off", protocol=V5, clean=False)
    s.connect(properties=props("CONNECT", SessionExpiryInterval=300))
    s.subscribe("expo/t", qos=1)
    s.disconnect()
    p = clients(broker, protocol=V5)
    p.connect()
    p.publish("expo/t", b"short", qos=1, properties=props("PUBLISH", MessageExpiryInterval=1))
    p.publish("expo/t", b"long", qos=1, properties=props("PUBLISH", MessageExpiryInterval=300))
    p.publish("expo/t", b"forever", qos=1)
    # the expiry is the event under test: let 1 s lapse (with margin)
    time.sleep(2.2)
    s2 = clients(broker, client_id="exp-off", protocol=V5, clean=False)
    s2.connect(properties=props("CONNECT", SessionExpiryInterval=300))
    got = s2.get_n(2)
    assert [m.payload for m in got] == [b"long", b"forever"]
    assert got[0].properties["MessageExpiryInterval"] <= 298
    assert "MessageExpiryInterval" not in got[1].properties
    p.publish("expo/t", b"barrier", qos=1)
    assert s2.drain_until("expo/t", b"barrier") == []


@pytest.mark.slow
def test_expired_retained_message_not_delivered(broker, clients):
    p = clients(broker, protocol=V5)
    p.connect()
    p.publish("expr/t", b"soon gone", qos=1, retain=True,
              properties=props("PUBLISH", MessageExpiryInterval=1))
    time.sleep(2.2)
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("expr/t", qos=1)
    s.subscribe("expr-barrier", qos=1)
    p.publish("expr-barrier", b"b", qos=1)
    assert s.drain_until("expr-barrier", b"b") == []


def test_topic_alias_from_client(broker, clients, raw_clients):
    # [MQTT-3.3.2-12]: topic alias set with a topic, then used with an empty topic
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("alias/long/topic/name", qos=1)
    c = raw_clients(broker)
    _, _, cap = c.connect(version=5, client_id="aliaser")
    assert cap.get(r.P_TOPIC_ALIAS_MAXIMUM, 0) >= 1, f"server allows no topic alias: {cap}"
    c.send(r.publish("alias/long/topic/name", b"first", qos=1, pid=1, version=5,
                     props=r.properties((r.P_TOPIC_ALIAS, 1))))
    assert c.expect(r.PUBACK).reason() == 0
    c.send(r.publish("", b"second", qos=1, pid=2, version=5, props=r.properties((r.P_TOPIC_ALIAS, 1))))
    assert c.expect(r.PUBACK).reason() == 0
    got = s.get_n(2)
    assert [(m.topic, m.payload) for m in got] == [("alias/long/topic/name", b"first"),
                                                  ("alias/long/topic/name", b"second")]
    # the subscriber never sees the publisher's alias
    assert all("TopicAlias" not in m.properties for m in got)


def test_topic_alias_remap(broker, clients, raw_clients):
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("remap/#", qos=1)
    c = raw_clients(broker)
    c.connect(version=5, client_id="remapper")
    a1 = r.properties((r.P_TOPIC_ALIAS, 1))
    c.send(r.publish("remap/a", b"1", qos=1, pid=1, version=5, props=a1))
    c.expect(r.PUBACK)
    c.send(r.publish("remap/b", b"2", qos=1, pid=2, version=5, props=a1))
    c.expect(r.PUBACK)
    c.send(r.publish("", b"3", qos=1, pid=3, version=5, props=a1))
    c.expect(r.PUBACK)
    assert [(m.topic, m.payload) for m in s.get_n(3)] == [
        ("remap/a", b"1"), ("remap/b", b"2"), ("remap/b", b"3")]


def test_topic_alias_does_not_survive_reconnect(broker, clients, raw_clients):
    # [MQTT-3.3.2-7]: alias mappings end with the network connection
    cid = "alias-session"
    sess = r.properties((r.P_SESSION_EXPIRY, 300))
    c = raw_clients(broker)
    c.connect(version=5, client_id=cid, clean=False, props=sess)
    c.send(r.publish("alias/kept?", b"1", qos=1, pid=1, version=5, props=r.properties((r.P_TOPIC_ALIAS, 1))))
    c.expect(r.PUBACK)
    c.send(r.disconnect(5))
    c.wait_closed()
    c2 = raw_clients(broker)
    present, _, _ = c2.connect(version=5, client_id=cid, clean=False, props=sess)
    assert present
    c2.send(r.publish("", b"2", qos=0, version=5, props=r.properties((r.P_TOPIC_ALIAS, 1))))
    pkts = c2.wait_closed()
    assert all(p.type == r.DISCONNECT and p.reason() == 0x82 for p in pkts), pkts


def test_unknown_topic_alias_is_protocol_error(broker, raw_clients):
    # [MQTT-3.3.4-?]/4.13: empty topic with an alias never set -> DISCONNECT 0x82, close
    c = raw_clients(broker)
    c.connect(version=5, client_id="alias-unknown")
    c.send(r.publish("", b"x", qos=0, version=5, props=r.properties((r.P_TOPIC_ALIAS, 1))))
    pkts = c.wait_closed()
    assert all(p.type == r.DISCONNECT and p.reason() == 0x82 for p in pkts), pkts


def test_topic_alias_over_maximum(broker, raw_clients):
    # [MQTT-3.3.2-9]: alias 0 or above the server's Topic Alias Maximum -> 0x94
    c = raw_clients(broker)
    _, _, cap = c.connect(version=5, client_id="alias-max")
    too_big = cap.get(r.P_TOPIC_ALIAS_MAXIMUM, 0) + 1
    if too_big > 0xFFFF:
        pytest.skip("the server accepts every alias a Two Byte Integer can hold")
    c.send(r.publish("t", b"x", qos=0, version=5, props=r.properties((r.P_TOPIC_ALIAS, too_big))))
    pkts = c.wait_closed()
    assert all(p.type == r.DISCONNECT and p.reason() == 0x94 for p in pkts), pkts


def test_no_local(broker, clients):
    # [MQTT-3.8.3-3]: no local -> not forwarded to the publishing connection
    me = clients(broker, protocol=V5)
    me.connect()
    me.subscribe("nl/t", qos=1, noLocal=True)
    me.subscribe("nl/barrier", qos=1)
    other = clients(broker, protocol=V5)
    other.connect()
    other.subscribe("nl/t", qos=1)
    me.publish("nl/t", b"mine", qos=1)
    assert other.get().payload == b"mine"
    me.publish("nl/barrier", b"b", qos=1)
    assert me.drain_until("nl/barrier", b"b") == []
    # a message from someone else still arrives
    other.publish("nl/t", b"theirs", qos=1)
    assert me.get().payload == b"theirs"


def test_receive_maximum_limits_inflight(broker, clients, raw_clients):
    # [MQTT-3.3.4-7]: no more unacknowledged QoS>0 PUBLISH than the client's Receive Maximum
    c = raw_clients(broker)
    c.connect(version=5, client_id="rm2", props=r.properties((r.P_RECEIVE_MAXIMUM, 2)))
    c.send(r.subscribe(1, [("rm/t", 1)], version=5))
    c.expect(r.SUBACK)
    p = clients(broker, protocol=V5)
    p.connect()
    for i in range(5):
        p.publish("rm/t", str(i).encode(), qos=1)
    first = [c.expect(r.PUBLISH).publish_fields(5) for _ in range(2)]
    # with two unacknowledged, nothing more may come
    with pytest.raises(TimeoutError):
        c.recv(timeout=0.7)
    c.send(r.ack(r.PUBACK, first[0]["pid"], 5))
    third = c.expect(r.PUBLISH).publish_fields(5)
    assert [f["payload"] for f in first + [third]] == [b"0", b"1", b"2"]
    c.send(r.ack(r.PUBACK, first[1]["pid"], 5))
    c.send(r.ack(r.PUBACK, third["pid"], 5))
    rest = c.receive_publishes(5, n=2)  # acks as it goes
    assert [f["payload"] for f in rest] == [b"3", b"4"]


def test_client_maximum_packet_size_respected(broker, clients, raw_clients):
    # [MQTT-3.1.2-24] (5.0): never send a packet larger than the client's Maximum Packet Size;
    # the too-large message is discarded for that client [MQTT-3.1.2-25]
    c = raw_clients(broker)
    c.connect(version=5, client_id="small", props=r.properties((r.P_MAXIMUM_PACKET_SIZE, 200)))
    c.send(r.subscribe(1, [("mps/t", 0)], version=5))
    c.expect(r.SUBACK)
    p = clients(broker, protocol=V5)
    p.connect()
    p.publish("mps/t", b"x" * 500, qos=0)
    p.publish("mps/t", b"small", qos=0)
    f = c.expect(r.PUBLISH).publish_fields(5)
    assert f["payload"] == b"small"


def test_payload_format_indicator_invalid_utf8(broker, raw_clients):
    # [MQTT-3.3.2-4]: the server MAY check; if it does, 0x99 in PUBACK or DISCONNECT.
    # Either way it must not forward a broken promise silently as if valid is OK; we only
    # require a well-formed reaction (PUBACK of any code, or a close).
    c = raw_clients(broker)
    c.connect(version=5, client_id="pfi")
    c.send(r.publish("pfi/t", b"\xff\xfe", qos=1, pid=1, version=5,
                     props=r.properties((r.P_PAYLOAD_FORMAT, 1))))
    try:
        p = c.recv()
    except r.Closed:
        return
    assert p.type in (r.PUBACK, r.DISCONNECT), p
    if p.type == r.PUBACK:
        assert p.reason() in (0x00, 0x10, 0x99), p
