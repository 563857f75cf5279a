"""Malformed packets and protocol errors sent over raw sockets: the broker
closes that connection (5.0: after DISCONNECT 0x81 malformed / 0x82
protocol error, which midge always sends) while another connected client
keeps working; oversized packets against --max-packet-size."""

import pytest

import rawmqtt as r

MALFORMED, PROTOCOL_ERROR, TOPIC_INVALID, TOO_LARGE = 0x81, 0x82, 0x90, 0x95
BAD = {MALFORMED, PROTOCOL_ERROR}

P = r.properties


def _cases(v):
    """(id, bytes sent after a successful CONNECT, DISCONNECT reasons allowed in 5.0)."""
    pub = lambda topic, **kw: r.publish(topic, b"x", version=v, **kw)  # noqa: E731
    sub_body = r.u16(1) + (b"\x00" if v == 5 else b"")
    return [
        ("publish-qos3", r.packet(0x36, r.string("a") + b"\x00\x01" + (b"\x00" if v == 5 else b"")
                                  + b"xyz"), BAD),  # [MQTT-3.3.1-4]
        ("subscribe-flags-0", r.subscribe(1, [("a", 0)], version=v, flags=0x00), BAD),  # [MQTT-3.8.1-1]
        ("pubrel-flags-0", b"\x60\x02\x00\x01", BAD),  # [MQTT-3.6.1-1]
        ("unsubscribe-flags-0", bytes([0xA0]) + r.unsubscribe(1, ["a"], v)[1:], BAD),  # [MQTT-3.10.1-1]
        ("pingreq-flags", b"\xc1\x00", BAD),  # [MQTT-2.2.2-2]
        ("reserved-type-0", b"\x00\x00", BAD),
        ("remaining-length-5-bytes", b"\x30\xff\xff\xff\xff\x7f", BAD),  # [MQTT-2.2.3 / 1.5.5]
        ("topic-bad-utf8", pub(b"a/\xff\xfe"), BAD),  # [MQTT-1.5.3-1]
        ("topic-utf16-surrogate", pub(b"a/\xed\xa0\x80"), BAD),  # [MQTT-1.5.3-1] U+D800
        ("topic-nul", pub(b"a\x00b"), BAD),  # [MQTT-1.5.3-2]
        ("topic-wildcard-plus", pub("a/+"), BAD | {TOPIC_INVALID}),  # [MQTT-3.3.2-2]
        ("topic-wildcard-hash", pub("a/#"), BAD | {TOPIC_INVALID}),
        ("publish-qos1-pid-0", pub("a", qos=1, pid=0), BAD),  # [MQTT-2.2.1-3]
        ("subscribe-no-filters", r.packet(0x82, sub_body), BAD),  # [MQTT-3.8.3-3]
        ("subscribe-qos3", r.subscribe(1, [("a", 3)], version=v), BAD),  # [MQTT-3-8.3-4]
        ("unsubscribe-no-filters", r.packet(0xA2, sub_body), BAD),  # [MQTT-3.10.3-2]
        ("subscribe-filter-bad-utf8", r.subscribe(1, [(b"a/\xc3\x28", 0)], version=v), BAD),
        ("truncated-publish", b"\x32\x04\x00\x05ab", BAD),  # topic length beyond packet
        ("connect-again", r.connect(client_id="again", version=v), BAD),  # [MQTT-3.1.0-2]
        ("unsubscribe-filter-bad-utf8", bytes([0xA2]) + r.unsubscribe(1, ["a/\u0100"], v)[1:]
         .replace("a/\u0100".encode(), b"a/\xc4\x00"), BAD),  # [MQTT-3.10.3-1]
        ("topic-empty", pub(""), BAD),  # [MQTT-4.7.3-1]
        ("subscribe-reserved-option-bits", r.subscribe(1, [("a", 0x40 if v == 5 else 0x04)], version=v),
         BAD),  # [MQTT-3-8.3-4] / [MQTT-3.8.3-5]
        ("disconnect-flags", b"\xe1\x00", BAD),  # [MQTT-3.14.1-1]
    ] + ([
        ("v5-subscribe-option-reserved-bits", r.subscribe(1, [("a", 0xC0)], version=5), BAD),  # [MQTT-3.8.3-5]
        ("v5-retain-handling-3", r.subscribe(1, [("a", 0x30)], version=5), BAD),
        ("v5-shared-no-local", r.subscribe(1, [("$share/g/a", 0x04)], version=5), BAD),  # [MQTT-3.8.3-4]
        ("v5-duplicate-property", r.publish("a", b"x", version=5,
                                            props=P((r.P_CONTENT_TYPE, "a"), (r.P_CONTENT_TYPE, "b"))), BAD),
        ("v5-publish-with-subscription-id", r.publish("a", b"x", version=5,
                                                      props=P((r.P_SUBSCRIPTION_ID, 1))), BAD),  # [MQTT-3.3.4-6]
        ("v5-topic-alias-0", r.publish("a", b"x", version=5, props=P((r.P_TOPIC_ALIAS, 0))),
         BAD | {0x94}),  # [MQTT-3.3.2-8]
        ("v5-property-length-overflow", r.packet(0x30, r.string("a") + b"\x05\x01\x01"), BAD),
        ("v5-unknown-property", r.packet(0x30, r.string("a") + b"\x02\x7f\x00"), BAD),
    ] if v == 5 else [])


# normative "close the connection" statements mosquitto 2.0.11 does not follow
MOSQUITTO_DEVIATES = {
    "pingreq-flags": "does not check PINGREQ reserved flags [MQTT-2.2.2-2]",
    "v5-shared-no-local": "accepts No Local on a shared subscription [MQTT-3.8.3-4]",
    "v5-publish-with-subscription-id": "accepts a Subscription Identifier from a client [MQTT-3.3.4-6]",
}


def _params(v):
    out = []
    for case in _cases(v):
        why = MOSQUITTO_DEVIATES.get(case[0])
        marks = [pytest.mark.mosquitto_deviates(why)] if why else []
        out.append(pytest.param(case, id=case[0], marks=marks))
    return out


def _run(broker, raw_clients, witness, version, case):
    name, data, allowed = case
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"bad-{name}"[:23])
    c.send(data)
    pkts = c.wait_closed()
    disconnects = [p for p in pkts if p.type == r.DISCONNECT]
    assert [p for p in pkts if p.type not in (r.DISCONNECT,)] == [], f"{name}: answered {pkts}"
    if version == 4:
        assert disconnects == [], f"{name}: 3.1.1 has no server DISCONNECT: {pkts}"
    else:
        for d in disconnects:
            assert d.reason() in allowed, f"{name}: DISCONNECT reason {d.reason():#x}, allowed {allowed}"
            if len(d.body) > 1:
                plist, _ = r.parse_properties(d.body, 1)
                # [MQTT-3.14.2-2]: the server never sends Session Expiry Interval on DISCONNECT
                assert r.P_SESSION_EXPIRY not in dict(plist), d
    witness(f"after {name}")
    return disconnects


@pytest.mark.parametrize("case", _params(4))
def test_v311_malformed_closes_connection(broker, raw_clients, witness, case):
    _run(broker, raw_clients, witness, 4, case)


@pytest.mark.parametrize("case", _params(5))
def test_v5_malformed_closes_connection(broker, raw_clients, witness, case):
    _run(broker, raw_clients, witness, 5, case)


@pytest.mark.midge_only
@pytest.mark.parametrize("case", _params(5))
def test_v5_malformed_sends_disconnect_reason(broker, raw_clients, witness, case):
    # [MQTT-4.13.1-1]: the server SHOULD send DISCONNECT with the reason before closing
    disconnects = _run(broker, raw_clients, witness, 5, case)
    assert len(disconnects) == 1, f"{case[0]}: expected one DISCONNECT, got {disconnects}"


def test_malformed_connect_closes(broker, raw_clients, witness):
    c = raw_clients(broker)
    c.send(b"\x10\x04\x00\x04MQ")  # protocol name longer than the packet
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK for p in pkts), pkts
    witness("after malformed connect")


def test_connect_bad_utf8_client_id(broker, raw_clients, witness):
    # [MQTT-1.5.3-1] in the client identifier: close (a CONNACK with an error may come first)
    c = raw_clients(broker)
    c.send(r.connect(client_id=b"\xff\xfe", version=4))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK and p.body[1] != 0 for p in pkts), pkts
    witness("after bad client id")


def test_v5_max_packet_size_enforced(broker_factory, raw_clients, clients):
    # [MQTT-3.2.2-?] CONNACK Maximum Packet Size; a larger packet -> DISCONNECT 0x95 and close
    b = broker_factory(max_packet_size=1000)
    c = raw_clients(b)
    _, _, p = c.connect(version=5, client_id="big")
    assert p.get(r.P_MAXIMUM_PACKET_SIZE) == 1000, p
    c.send(r.publish("big/t", b"x" * 2000, qos=0, version=5))
    pkts = c.wait_closed()
    assert all(p.type == r.DISCONNECT and p.reason() == TOO_LARGE for p in pkts), pkts


@pytest.mark.midge_only
def test_v5_max_packet_size_sends_0x95(broker_factory, raw_clients):
    b = broker_factory(max_packet_size=1000)
    c = raw_clients(b)
    c.connect(version=5, client_id="big2")
    c.send(r.publish("big/t", b"x" * 2000, qos=0, version=5))
    assert [p.reason() for p in c.wait_closed()] == [TOO_LARGE]


def test_v311_max_packet_size_closes(broker_factory, raw_clients, clients):
    b = broker_factory(max_packet_size=1000)
    s = clients(b)
    s.connect()
    s.subscribe("big/#", qos=1)
    c = raw_clients(b)
    c.connect(version=4, client_id="big311")
    c.send(r.publish("big/t", b"x" * 2000, qos=1, pid=1))
    pkts = c.wait_closed()
    assert pkts == [], pkts
    # a packet just under the limit still goes through for others
    p = clients(b)
    p.connect()
    p.publish("big/ok", b"y" * 900, qos=1)
    assert s.get().payload == b"y" * 900


def test_oversized_remaining_length_rejected_before_body(broker_factory, raw_clients):
    # the broker must reject from the fixed header alone, without waiting for 100 MB
    b = broker_factory(max_packet_size=1000)
    c = raw_clients(b)
    c.connect(version=5, client_id="huge")
    c.send(b"\x30" + r.varint(100_000_000) + b"\x00\x01a")
    pkts = c.wait_closed(timeout=5)
    assert all(p.type == r.DISCONNECT for p in pkts), pkts
