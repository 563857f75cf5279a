"""CONNECT and CONNACK: return codes, client identifiers, session present,
session takeover, first-packet and second-CONNECT rules."""

import pytest

import rawmqtt as r
from mqttclient import V31, V311, V5, props


@pytest.mark.parametrize("version", [3, 4, 5])
def test_connect_accepted(broker, raw_clients, version):
    c = raw_clients(broker)
    present, rc, _ = c.connect(version=version, client_id="ok-client")
    assert rc == 0 and present is False  # [MQTT-3.2.2-1] clean session -> 0


@pytest.mark.parametrize("protocol", [V31, V311, V5])
def test_paho_connect_and_roundtrip(broker, clients, protocol):
    c = clients(broker, protocol=protocol)
    c.connect()
    c.subscribe("conn/rt", qos=1)
    c.publish("conn/rt", b"hello", qos=1)
    m = c.get()
    assert (m.topic, m.payload, m.qos) == ("conn/rt", b"hello", 1)


def test_v311_unacceptable_protocol_level(broker, raw_clients):
    # [MQTT-3.1.2-2]: unsupported level -> CONNACK 0x01 then close
    c = raw_clients(broker)
    c.send(_connect_with_level(9))
    p = c.expect(r.CONNACK)
    assert p.body[1] == 0x01
    c.wait_closed()


def _connect_with_level(level: int) -> bytes:
    var = r.string(b"MQTT") + bytes([level, 0x02]) + r.u16(60)
    return r.packet(0x10, var + r.string("lvl"))


def test_v311_empty_client_id_clean_session_assigned(broker, raw_clients):
    c = raw_clients(broker)
    present, rc, _ = c.connect(version=4, client_id="", clean=True)
    assert (present, rc) == (False, 0)  # [MQTT-3.1.3-6]
    assert c.still_open()


def test_v311_empty_client_id_persistent_session_rejected(broker, raw_clients):
    # [MQTT-3.1.3-8]: rc 0x02 identifier rejected, then close
    c = raw_clients(broker)
    present, rc, _ = c.connect(version=4, client_id="", clean=False, expect_rc=None)
    assert rc == 0x02
    assert present is False  # [MQTT-3.2.2-4]
    c.wait_closed()


def test_v31_empty_client_id_rejected(broker, raw_clients):
    # MQTT 3.1 requires 1-23 characters: rc 2 identifier rejected
    c = raw_clients(broker)
    _, rc, _ = c.connect(version=3, client_id="", clean=True, expect_rc=None)
    assert rc == 0x02
    c.wait_closed()


def test_v5_empty_client_id_gets_assigned_identifier(broker, raw_clients):
    # [MQTT-3.1.3-7], [MQTT-3.2.2-16]: assigned client identifier in CONNACK
    c = raw_clients(broker)
    present, rc, p = c.connect(version=5, client_id="", clean=True)
    assert rc == 0
    assigned = p.get(r.P_ASSIGNED_CLIENT_ID)
    assert assigned, f"no Assigned Client Identifier in CONNACK properties {p}"
    # the assigned id is usable: a second client with it takes the session over
    c2 = raw_clients(broker)
    c2.connect(version=5, client_id=assigned)
    pkts = c.wait_closed()
    assert [x.reason() for x in pkts if x.type == r.DISCONNECT] in ([0x8E], [])


def test_v5_unsupported_protocol_version(broker, raw_clients):
    # [MQTT-3.1.2-2] in 5.0: CONNACK 0x84 (unsupported protocol version) may be sent
    c = raw_clients(broker)
    var = r.string(b"MQTT") + bytes([6, 0x02]) + r.u16(60) + b"\x00"
    c.send(r.packet(0x10, var + r.string("v6")))
    pkts = c.wait_closed()
    for p in pkts:
        assert p.type == r.CONNACK and p.body[1] in (0x01, 0x84), pkts


def test_bad_protocol_name_closes(broker, raw_clients):
    # [MQTT-3.1.2-1]: protocol name must be "MQTT"; server may disconnect
    c = raw_clients(broker)
    c.send(r.connect(client_id="badname", version=4, protocol_name=b"MQTX"))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK for p in pkts), pkts


def test_connect_reserved_flag_closes(broker, raw_clients):
    # [MQTT-3.1.2-3]: reserved flag in CONNECT must be 0, else disconnect
    c = raw_clients(broker)
    c.send(r.connect(client_id="rsv", version=4, reserved_flag=True))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK and p.body[1] != 0 for p in pkts), pkts


def _raw_connect(flags: int, payload: bytes, version: int = 4) -> bytes:
    var = r.string(b"MQTT") + bytes([version, flags]) + r.u16(60) + (b"\x00" if version == 5 else b"")
    return r.packet(0x10, var + payload)


BAD_CONNECTS = [
    # (id, connect flags, payload after the client id)
    ("will-flag-without-will-fields", 0x02 | 0x04, b""),  # [MQTT-3.1.2-9]
    ("will-qos-3", 0x02 | 0x04 | 0x18, r.string("w") + r.string("p")),  # [MQTT-3.1.2-14] / 5.0 -12
    ("will-qos-without-will-flag", 0x02 | 0x08, b""),  # [MQTT-3.1.2-13] / 5.0 -11
    ("will-retain-without-will-flag", 0x02 | 0x20, b""),  # [MQTT-3.1.2-15] / 5.0 -13
    ("username-flag-without-username", 0x02 | 0x80, b""),  # [MQTT-3.1.2-19] / 5.0 -17
    ("password-flag-without-password", 0x02 | 0x80 | 0x40, r.string("u")),  # [MQTT-3.1.2-21] / 5.0 -19
    ("will-topic-bad-utf8", 0x02 | 0x04, b"\x00\x02\xc3\x28" + r.string("p")),  # [MQTT-3.1.3-10] / 5.0 -11
    ("username-bad-utf8", 0x02 | 0x80, b"\x00\x02\xc3\x28"),  # [MQTT-3.1.3-11] / 5.0 -12
    ("will-topic-wildcard", 0x02 | 0x04, r.string("w/#") + r.string("p")),  # [MQTT-3.3.2-2]
]


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("case", BAD_CONNECTS, ids=[c[0] for c in BAD_CONNECTS])
def test_invalid_connect_closes(broker, raw_clients, clients, version, case):
    # [MQTT-3.1.4-1]: validate the CONNECT and close if it does not conform
    # (a CONNACK with a failure code may come first)
    name, flags, rest = case
    c = raw_clients(broker)
    will_props = b"\x00" if version == 5 and flags & 0x04 and rest else b""
    c.send(_raw_connect(flags, r.string(f"bc-{version}") + will_props + rest, version))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK and p.body[1] >= (0x80 if version == 5 else 1) for p in pkts), pkts
    ok = clients(broker)  # the broker still serves others
    ok.connect()


def test_v311_password_without_username_rejected(broker, raw_clients):
    # [MQTT-3.1.2-22]: 3.1.1 forbids a password without a user name
    c = raw_clients(broker)
    c.send(_raw_connect(0x02 | 0x40, r.string("pw-only") + r.string("secret")))
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK and p.body[1] != 0 for p in pkts), pkts


@pytest.mark.parametrize("version", [3, 4, 5])
def test_23_char_alphanumeric_client_id_allowed(broker, raw_clients, version):
    # [MQTT-3.1.3-5]
    c = raw_clients(broker)
    _, rc, _ = c.connect(version=version, client_id="Az09" * 5 + "xyz")
    assert rc == 0


def test_rejected_connect_ignores_following_data(broker, raw_clients, clients):
    # [MQTT-3.1.4-5]: after a rejected CONNECT nothing else the client sent is processed
    w = clients(broker)
    w.connect()
    w.subscribe("rej/t", qos=1)
    w.subscribe("rej/barrier", qos=1)
    c = raw_clients(broker)
    c.send(r.connect(version=4, client_id="", clean=False)  # rejected with 0x02
           + r.publish("rej/t", b"must not be routed", qos=0))
    pkts = c.wait_closed()
    assert [(p.type, p.body[1]) for p in pkts] == [(r.CONNACK, 0x02)]
    p = clients(broker)
    p.connect()
    p.publish("rej/barrier", b"b", qos=1)
    assert w.drain_until("rej/barrier", b"b") == []


@pytest.mark.parametrize("version", [4, 5])
def test_first_packet_not_connect_closes(broker, raw_clients, version):
    # [MQTT-3.1.0-1]
    c = raw_clients(broker)
    c.send(r.subscribe(1, [("a", 0)], version=version))
    pkts = c.wait_closed()
    assert not any(p.type == r.SUBACK for p in pkts), pkts


@pytest.mark.parametrize("version", [4, 5])
def test_second_connect_is_protocol_violation(broker, raw_clients, version):
    # [MQTT-3.1.0-2]: a second CONNECT is a protocol violation -> disconnect
    c = raw_clients(broker)
    c.connect(version=version, client_id=f"twice{version}")
    c.send(r.connect(version=version, client_id=f"twice{version}"))
    pkts = c.wait_closed()
    assert not any(p.type == r.CONNACK for p in pkts), pkts
    if version == 5:
        for p in pkts:
            assert p.type == r.DISCONNECT and p.reason() == 0x82, pkts


@pytest.mark.midge_only
def test_v5_second_connect_sends_disconnect_0x82(broker, raw_clients):
    c = raw_clients(broker)
    c.connect(version=5, client_id="twice-reason")
    c.send(r.connect(version=5, client_id="twice-reason"))
    pkts = c.wait_closed()
    assert [p.reason() for p in pkts if p.type == r.DISCONNECT] == [0x82], pkts


@pytest.mark.parametrize("version", [4, 5])
def test_session_present_flag(broker, raw_clients, version):
    # [MQTT-3.2.2-2], [MQTT-3.2.2-3]
    cid = f"sp-{version}"
    sess = r.properties((r.P_SESSION_EXPIRY, 300)) if version == 5 else None
    a = raw_clients(broker)
    present, _, _ = a.connect(version=version, client_id=cid, clean=False, props=sess)
    assert present is False
    a.send(r.subscribe(1, [("sp/t", 1)], version=version))
    a.expect(r.SUBACK)
    a.send(r.disconnect(version))
    a.wait_closed()
    b = raw_clients(broker)
    present, _, _ = b.connect(version=version, client_id=cid, clean=False, props=sess)
    assert present is True
    b.send(r.disconnect(version))
    b.wait_closed()
    c = raw_clients(broker)
    present, _, _ = c.connect(version=version, client_id=cid, clean=True, props=sess)
    assert present is False  # clean start discards the session


def test_v311_takeover_closes_first(broker, clients):
    # [MQTT-3.1.4-2]: an existing client with the same id is disconnected
    a = clients(broker, client_id="dup-311", protocol=V311)
    a.connect()
    b = clients(broker, client_id="dup-311", protocol=V311)
    b.connect()
    a.wait_disconnected()
    b.subscribe("take/t", qos=1)
    b.publish("take/t", b"still here", qos=1)
    assert b.get().payload == b"still here"


def test_v5_takeover_closes_first(broker, clients):
    # [MQTT-3.1.4-3]: the existing connection is closed
    a = clients(broker, client_id="dup-5a", protocol=V5)
    a.connect()
    b = clients(broker, client_id="dup-5a", protocol=V5)
    b.connect()
    a.wait_disconnected()


@pytest.mark.midge_only
def test_v5_takeover_sends_0x8e(broker, clients):
    # The spec says the server "sends a DISCONNECT ... 0x8E" (mosquitto 2.0.11 just closes)
    a = clients(broker, client_id="dup-5", protocol=V5)
    a.connect()
    b = clients(broker, client_id="dup-5", protocol=V5)
    b.connect()
    assert a.wait_disconnected() == 0x8E  # Session taken over
    assert "SessionExpiryInterval" not in a.disconnect_properties  # [MQTT-3.14.2-2]


def test_v5_takeover_keeps_session(broker, clients):
    # takeover without clean start continues the session and its subscriptions
    sess = props("CONNECT", SessionExpiryInterval=300)
    a = clients(broker, client_id="keep-5", protocol=V5, clean=False)
    a.connect(properties=sess)
    a.subscribe("keep/t", qos=1)
    b = clients(broker, client_id="keep-5", protocol=V5, clean=False)
    _, present, _ = b.connect(properties=sess)
    assert present is True
    a.wait_disconnected()
    p = clients(broker, protocol=V5)
    p.connect()
    p.publish("keep/t", b"after takeover", qos=1)
    assert b.get().payload == b"after takeover"


def test_v5_connack_properties(broker, raw_clients):
    # the CONNACK advertises what the server supports; all optional, but when
    # present they must be well-formed (parse_properties raises otherwise)
    c = raw_clients(broker)
    _, rc, p = c.connect(version=5, client_id="caps")
    assert rc == 0
    if r.P_MAXIMUM_QOS in p:
        assert p[r.P_MAXIMUM_QOS] in (0, 1)  # [MQTT-3.2.2-9]: only sent when < 2
    if r.P_RECEIVE_MAXIMUM in p:
        assert p[r.P_RECEIVE_MAXIMUM] > 0
