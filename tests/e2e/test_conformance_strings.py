"""Data representation on the wire: strings the broker must pass on intact
(the BOM), strings it must refuse (UTF-8 String Pairs, Response Topic,
Content Type), and the encodings it must use itself (minimal Variable Byte
Integers, a Property Length of zero when there are no properties)."""

import pytest

import rawmqtt as r
from mqttclient import V311

BOM = "\ufeff"  # encoded EF BB BF
MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID = 0x81, 0x82, 0x90


def _closed_with(c, allowed: set[int]) -> None:
    """The broker closed `c`, sending at most a DISCONNECT with a reason in `allowed`."""
    pkts = c.wait_closed()
    assert all(p.type == r.DISCONNECT for p in pkts), f"answered {pkts}"
    for p in pkts:
        assert p.reason() in allowed, f"DISCONNECT reason {p.reason():#x}, allowed {sorted(allowed)}"


# ------------------------------------------------------------------ the BOM
@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("topic", [f"bom/{BOM}", f"{BOM}bom/lead", f"bom/tail{BOM}"],
                         ids=["middle", "leading", "trailing"])
def test_bom_in_topic_and_payload_not_stripped(broker, raw_clients, version, topic):
    # [MQTT-1.5.3-3] / [MQTT-1.5.4-3]: EF BB BF is U+FEFF wherever it appears and is
    # neither skipped nor stripped: the topic matches a filter spelled with the BOM,
    # and topic and payload arrive byte for byte
    sub = raw_clients(broker)
    sub.connect(version=version, client_id=f"bom-sub-{version}")
    sub.send(r.subscribe(1, [(topic, 1)], version=version))
    assert sub.expect(r.SUBACK).suback_codes(version) == [1]
    pub = raw_clients(broker)
    pub.connect(version=version, client_id=f"bom-pub-{version}")
    payload = BOM.encode() + b"payload" + BOM.encode()
    pub.send(r.publish(topic, payload, qos=1, pid=7, version=version))
    assert pub.expect(r.PUBACK).pid() == 7
    got = sub.receive_publishes(version=version, n=1)[0]
    assert got["topic"].encode() == topic.encode()
    assert got["payload"] == payload


def test_v5_bom_in_user_property_not_stripped(broker, raw_clients):
    # [MQTT-1.5.4-3] in a UTF-8 String Pair, and [MQTT-3.3.2-17] (forwarded unaltered)
    sub = raw_clients(broker)
    sub.connect(version=5, client_id="bom-up-sub")
    sub.send(r.subscribe(1, [("bom/up", 0)], version=5))
    sub.expect(r.SUBACK)
    pub = raw_clients(broker)
    pub.connect(version=5, client_id="bom-up-pub")
    pair = (f"{BOM}key", f"value{BOM}")
    pub.send(r.publish("bom/up", b"x", qos=1, pid=1, version=5,
                       props=r.properties((r.P_USER_PROPERTY, pair),
                                          (r.P_CONTENT_TYPE, f"{BOM}text/plain"))))
    pub.expect(r.PUBACK)
    props = sub.receive_publishes(version=5, n=1)[0]["props"]
    assert (r.P_USER_PROPERTY, pair) in props, props
    assert (r.P_CONTENT_TYPE, f"{BOM}text/plain") in props, props


# ------------------------------------------------------ strings it must refuse
BAD_UTF8 = [
    ("ill-formed", b"\xc3\x28"),
    ("surrogate", b"\xed\xa0\x80"),
    ("nul", b"a\x00b"),
]


@pytest.mark.parametrize("where", ["name", "value"])
@pytest.mark.parametrize("bad", [b for _, b in BAD_UTF8], ids=[n for n, _ in BAD_UTF8])
def test_v5_user_property_pair_must_be_utf8(broker, raw_clients, witness, where, bad):
    # [MQTT-1.5.7-1]: both strings of a UTF-8 String Pair follow the UTF-8 string
    # rules; a pair that does not is a Malformed Packet (close, [MQTT-4.13.1-1])
    pair = (bad, b"v") if where == "name" else (b"k", bad)
    c = raw_clients(broker)
    c.connect(version=5, client_id=f"pair-{where}")
    c.send(r.publish("pair/t", b"x", qos=1, pid=1, version=5,
                     props=r.properties((r.P_USER_PROPERTY, pair))))
    _closed_with(c, {MALFORMED, PROTOCOL_ERROR})
    witness(f"after bad pair {where}")


def test_v5_connect_user_property_pair_must_be_utf8(broker, raw_clients, witness):
    # [MQTT-1.5.7-1] in CONNECT: a Malformed Packet; close, with at most a failing CONNACK
    c = raw_clients(broker)
    c.send(r.connect("pair-connect", version=5,
                     props=r.properties((r.P_USER_PROPERTY, (b"k", b"\xff")))))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK and p.body[1] >= 0x80 for p in pkts), pkts
    witness("after bad connect pair")


@pytest.mark.parametrize("bad", [b for _, b in BAD_UTF8], ids=[n for n, _ in BAD_UTF8])
def test_v5_response_topic_must_be_utf8(broker, raw_clients, witness, bad):
    # [MQTT-3.3.2-13]: the Response Topic is a UTF-8 Encoded String; else malformed
    c = raw_clients(broker)
    c.connect(version=5, client_id="rt-utf8")
    c.send(r.publish("rt/t", b"x", qos=1, pid=1, version=5,
                     props=r.properties((r.P_RESPONSE_TOPIC, b"reply/" + bad))))
    _closed_with(c, {MALFORMED, PROTOCOL_ERROR})
    witness("after bad response topic")


@pytest.mark.mosquitto_deviates("forwards a PUBLISH whose Response Topic has wildcards [MQTT-3.3.2-14]")
@pytest.mark.parametrize("response_topic", ["reply/+", "reply/#", "+", "#"])
def test_v5_response_topic_without_wildcards(broker, raw_clients, clients, witness, response_topic):
    # [MQTT-3.3.2-14]: a Response Topic with a wildcard is a Protocol Error; the
    # server closes the connection (a DISCONNECT 0x82/0x90 may come first) and
    # routes nothing
    s = clients(broker, protocol=V311)
    s.connect()
    s.subscribe("rtw/t", qos=1)
    s.subscribe("rtw/barrier", qos=1)
    c = raw_clients(broker)
    c.connect(version=5, client_id="rt-wild")
    c.send(r.publish("rtw/t", b"must not be routed", qos=1, pid=1, version=5,
                     props=r.properties((r.P_RESPONSE_TOPIC, response_topic))))
    _closed_with(c, {MALFORMED, PROTOCOL_ERROR, TOPIC_NAME_INVALID})
    p = clients(broker, protocol=V311)
    p.connect()
    p.publish("rtw/barrier", b"b", qos=1)
    assert s.drain_until("rtw/barrier", b"b") == []
    witness("after wildcard response topic")


@pytest.mark.parametrize("bad", [b for _, b in BAD_UTF8], ids=[n for n, _ in BAD_UTF8])
def test_v5_content_type_must_be_utf8(broker, raw_clients, witness, bad):
    # [MQTT-3.3.2-19]: the Content Type is a UTF-8 Encoded String; else malformed
    c = raw_clients(broker)
    c.connect(version=5, client_id="ct-utf8")
    c.send(r.publish("ct/t", b"x", qos=1, pid=1, version=5,
                     props=r.properties((r.P_CONTENT_TYPE, b"text/" + bad))))
    _closed_with(c, {MALFORMED, PROTOCOL_ERROR})
    witness("after bad content type")


# ------------------------------------------------- encodings the server uses
def _varint_at(buf: bytes, i: int) -> tuple[int, bytes]:
    """The Variable Byte Integer at `i`: (value, the bytes that encode it)."""
    value, end = r.read_varint(buf, i)
    return value, buf[i:end]


@pytest.mark.parametrize("version", [4, 5])
def test_remaining_length_uses_fewest_bytes(broker, raw_clients, version):
    # [MQTT-1.5.5-1] (5.0) and 2.2.3 (3.1.1): every Remaining Length the server
    # writes is minimal; payloads chosen to land on both sides of the 1/2/3-byte
    # boundaries (127/128 and 16383/16384)
    topic = "vbi/t"
    overhead = 2 + len(topic) + 2 + (1 if version == 5 else 0)  # topic, packet id, props
    sub = raw_clients(broker)
    sub.connect(version=version, client_id=f"vbi-{version}")
    sub.send(r.subscribe(1, [(topic, 1)], version=version))
    suback = sub.expect(r.SUBACK)
    assert suback.header[1:] == r.varint(len(suback.body)), suback.header
    pub = raw_clients(broker)
    pub.connect(version=version, client_id=f"vbi-pub-{version}")
    sizes = [0, 127 - overhead, 128 - overhead, 16383 - overhead, 16384 - overhead, 200_000]
    for i, n in enumerate(sizes):
        pub.send(r.publish(topic, bytes([65 + i]) * n, qos=1, pid=i + 1, version=version))
        pub.expect(r.PUBACK)
    seen = []
    for n in sizes:
        p = sub.recv()
        assert p.type == r.PUBLISH, p
        assert p.header[1:] == r.varint(len(p.body)), (n, p.header.hex())
        seen.append(len(p.body))
        sub.send(r.ack(r.PUBACK, p.publish_fields(version)["pid"], version))
    assert 127 in seen and 128 in seen and 16383 in seen and 16384 in seen, seen


def _sub_id_encodings(body: bytes, i: int) -> tuple[bytes, list[bytes]]:
    """The Property Length bytes at `i` and the raw encodings of every
    Subscription Identifier in that property list."""
    plen, enc = _varint_at(body, i)
    j, end = i + len(enc), i + len(enc) + plen
    ids = []
    while j < end:
        pid = body[j]
        if pid == r.P_SUBSCRIPTION_ID:
            _, venc = _varint_at(body, j + 1)
            ids.append(venc)
            j += 1 + len(venc)
        else:
            # skip one property of another type by parsing it on its own
            one, _ = r.parse_properties(r.varint(end - j) + body[j:end], 0)
            j += len(r.prop(*one[0]))
    return enc, ids


def test_v5_property_varints_use_fewest_bytes(broker, raw_clients):
    # [MQTT-1.5.5-1] inside properties: the Property Length and a Subscription
    # Identifier (a Variable Byte Integer property) sent by the server are minimal
    sub = raw_clients(broker)
    sub.connect(version=5, client_id="vbi-props")
    ids = [127, 128, 16383, 16384, 2_097_152]
    for k, sid in enumerate(ids):
        sub.send(r.subscribe(k + 1, [(f"vbip/{k}", 0)], version=5,
                             props=r.properties((r.P_SUBSCRIPTION_ID, sid))))
        assert sub.expect(r.SUBACK).suback_codes(5) == [0]
    pub = raw_clients(broker)
    pub.connect(version=5, client_id="vbi-props-pub")
    for k in range(len(ids)):
        # a user property long enough to push the Property Length past 127
        pub.send(r.publish(f"vbip/{k}", b"x", qos=0, version=5,
                           props=r.properties((r.P_USER_PROPERTY, ("k", "v" * 130)))))
    for sid in ids:
        p = sub.recv()
        assert p.type == r.PUBLISH, p
        _, i = r.read_string(p.body, 0)
        plen_enc, sid_encs = _sub_id_encodings(p.body, i)
        plen, _ = r.read_varint(p.body, i)
        assert plen > 127 and plen_enc == r.varint(plen), f"Property Length {plen_enc.hex()}"
        assert sid_encs == [r.varint(sid)], (sid, [e.hex() for e in sid_encs])


def test_v5_empty_properties_have_a_zero_length(broker, raw_clients, clients):
    # [MQTT-2.2.2-1]: a packet with no properties carries a Property Length of 0;
    # checked on a forwarded PUBLISH without properties, on SUBACK and on UNSUBACK
    sub = raw_clients(broker)
    sub.connect(version=5, client_id="zero-props")
    sub.send(r.subscribe(3, [("zp/a", 1), ("zp/b", 0)], version=5))
    suback = sub.expect(r.SUBACK)
    plen, i = r.read_varint(suback.body, 2)
    # with the Property Length present, exactly one reason code per filter remains
    assert len(suback.body) - i - plen == 2, suback
    p = clients(broker, protocol=V311)  # a 3.1.1 publisher: no properties at all
    p.connect()
    p.publish("zp/a", b"\x00payload", qos=1)
    pkt = sub.recv()
    assert pkt.type == r.PUBLISH, pkt
    _, i = r.read_string(pkt.body, 0)
    i += 2  # packet id (QoS 1)
    assert pkt.body[i] == 0, f"Property Length {pkt.body[i]:#x} for a message without properties"
    assert pkt.body[i + 1:] == b"\x00payload"
    sub.send(r.ack(r.PUBACK, pkt.publish_fields(5)["pid"], 5))
    sub.send(r.unsubscribe(4, ["zp/a", "zp/b"], version=5))
    unsuback = sub.expect(r.UNSUBACK)
    plen, i = r.read_varint(unsuback.body, 2)
    assert len(unsuback.body) - i - plen == 2, unsuback
