"""CONNECT and CONNACK statements that need a configured broker or exact
wire checks: a will the server cannot honour (Maximum QoS, Retain
Available), rejected client identifiers, fields that must not be present,
the order of the payload fields, the Connect Reason Codes, Response
Information, and no enhanced authentication unless asked for."""

import shutil
import subprocess

import pytest

import brokerproc
import rawmqtt as r
from brokerproc import broker_kind
from mqttclient import V311, V5

# Table 3-1 of MQTT 5.0: the only reason codes a CONNACK may carry [MQTT-3.2.2-8]
CONNACK_CODES = {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F}
QOS_NOT_SUPPORTED, RETAIN_NOT_SUPPORTED, CLIENT_ID_NOT_VALID = 0x9B, 0x9A, 0x85
USER, PASSWORD = "conf-user", "conf-pass"

# the same restrictions for both brokers: midge reads them from a TOML file,
# mosquitto from its config file
MIDGE_TOML = """
[mqtt]
maximum_qos = 1
retain_available = false
allow_zero_length_client_id = false
"""
MOSQUITTO_CONF = {"max_qos": 1, "retain_available": "false", "allow_zero_length_clientid": "false"}


def _password_file(tmp_path) -> str:
    exe = shutil.which("mosquitto_passwd")
    if exe is None:
        pytest.skip("mosquitto_passwd not installed (scripts/test installs mosquitto)")
    path = tmp_path / "passwords"
    subprocess.run([exe, "-b", "-c", str(path), USER, PASSWORD], check=True,
                   capture_output=True, timeout=30)
    return str(path)


@pytest.fixture
def restricted(broker_factory, monkeypatch, tmp_path):
    """A broker with Maximum QoS 1, no retained messages, no zero-length client
    ids and a password file (anonymous clients still allowed)."""
    pw = _password_file(tmp_path)
    for name, key in (("password_file", "password_file"), ("allow_anonymous", "allow_anonymous")):
        monkeypatch.setitem(brokerproc.OPTIONS, name, (f"--{name.replace('_', '-')}", key))
    opts = {"password_file": pw, "allow_anonymous": "true"}
    if broker_kind() == "midge":
        conf = tmp_path / "restricted.toml"
        conf.write_text(MIDGE_TOML)
        return broker_factory(extra_args=["--config", str(conf)], **opts)
    for key in MOSQUITTO_CONF:
        # mosquitto-only settings: no midge flag (midge gets them from the TOML file)
        monkeypatch.setitem(brokerproc.OPTIONS, key, (None, key))
    return broker_factory(**opts, **MOSQUITTO_CONF)


def _refused(c, expected: int | None = None) -> int:
    """The broker answered the CONNECT with at most one failing CONNACK and closed."""
    pkts = c.wait_closed()
    assert all(p.type == r.CONNACK for p in pkts) and len(pkts) <= 1, pkts
    if not pkts:
        return -1
    present, code = bool(pkts[0].body[0] & 1), pkts[0].body[1]
    assert code in CONNACK_CODES and code >= 0x80, f"CONNACK reason {code:#x}"  # [MQTT-3.2.2-8]
    assert present is False  # [MQTT-3.2.2-6]
    assert pkts[0].body[0] & 0xFE == 0  # [MQTT-3.2.2-1]
    if expected is not None:
        assert code == expected, f"CONNACK reason {code:#x}, expected {expected:#x}"
    return code


# ------------------------------------------------ wills the server cannot honour
def test_v5_will_qos_above_maximum_qos_refused(restricted, raw_clients, clients):
    # [MQTT-3.2.2-9]: the CONNACK says Maximum QoS 1; [MQTT-3.2.2-12]: a will at
    # QoS 2 is refused (SHOULD be 0x9B) and the connection closed; nothing published
    w = clients(restricted, protocol=V311)
    w.connect()
    w.subscribe("wq/#", qos=1)
    ok = raw_clients(restricted)
    _, _, caps = ok.connect(version=5, client_id="wq-ok", will=("wq/ok", b"fine", 1, False))
    assert caps.get(r.P_MAXIMUM_QOS) == 1, caps
    c = raw_clients(restricted)
    c.send(r.connect("wq-bad", version=5, will=("wq/bad", b"never", 2, False)))
    assert _refused(c) == QOS_NOT_SUPPORTED
    ok.close()  # the accepted will (QoS 1) does fire: the refused one never did
    m = w.get()
    assert (m.topic, m.payload) == ("wq/ok", b"fine")
    w.expect_none(0.3)


def test_v5_will_retain_without_retain_support_refused(restricted, raw_clients, clients):
    # [MQTT-3.2.2-13]: Retain Available 0 and a will with Will Retain 1: refused
    # (SHOULD be 0x9A), connection closed, will not published
    w = clients(restricted, protocol=V311)
    w.connect()
    w.subscribe("wr/#", qos=1)
    ok = raw_clients(restricted)
    _, _, caps = ok.connect(version=5, client_id="wr-ok", will=("wr/ok", b"fine", 0, False))
    assert caps.get(r.P_RETAIN_AVAILABLE) == 0, caps
    c = raw_clients(restricted)
    c.send(r.connect("wr-bad", version=5, will=("wr/bad", b"never", 0, True)))
    assert _refused(c) == RETAIN_NOT_SUPPORTED
    ok.close()
    m = w.get()
    assert (m.topic, m.payload, m.retain) == ("wr/ok", b"fine", False)
    w.expect_none(0.3)


# --------------------------------------------------- rejected client identifier
def test_v5_rejected_client_identifier_closes(restricted, raw_clients):
    # [MQTT-3.1.3-8]: a client id the server refuses: MAY CONNACK 0x85, MUST close
    c = raw_clients(restricted)
    c.send(r.connect("", version=5))
    _refused(c)


@pytest.mark.midge_only
def test_v5_rejected_client_identifier_gets_0x85(restricted, raw_clients):
    # midge names the reason (mosquitto 2.0.11 answers 0x80)
    c = raw_clients(restricted)
    c.send(r.connect("", version=5))
    _refused(c, CLIENT_ID_NOT_VALID)


def test_v5_rejected_connect_ignores_following_data(restricted, raw_clients, clients):
    # [MQTT-3.1.4-6]: after a refused CONNECT nothing but AUTH is processed
    w = clients(restricted, protocol=V311)
    w.connect()
    w.subscribe("rej5/t", qos=1)
    w.subscribe("rej5/barrier", qos=1)
    c = raw_clients(restricted)
    c.send(r.connect("", version=5)
           + r.publish("rej5/t", b"must not be routed", qos=1, pid=1, version=5)
           + r.subscribe(2, [("rej5/#", 0)], version=5))
    _refused(c)
    p = clients(restricted, protocol=V311)
    p.connect()
    p.publish("rej5/barrier", b"b", qos=1)
    assert w.drain_until("rej5/barrier", b"b") == []


# --------------------------------------------------- payload fields and flags
def _raw_connect(version: int, flags: int, payload: bytes) -> bytes:
    var = r.string(b"MQTT") + bytes([version, flags]) + r.u16(60) + (b"\x00" if version == 5 else b"")
    return r.packet(0x10, var + payload)


STRAY = [
    # (id, connect flags, payload after the client id (5.0 will properties added))
    ("username-without-flag", 0x02, [r.string("u")]),  # 3.1.1 [MQTT-3.1.2-18] / 5.0 -16
    ("password-without-flag", 0x02 | 0x80, [r.string("u"), r.string("p")]),  # -20 / -18
    ("will-fields-without-flag", 0x02, ["will-props", r.string("w/t"), r.string("p")]),  # -11
]


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("case", STRAY, ids=[c[0] for c in STRAY])
def test_fields_without_their_flag_refused(broker, raw_clients, clients, version, case):
    # a field whose flag is 0 must not be present: such a CONNECT does not conform
    # and is closed ([MQTT-3.1.4-1]); 3.1.1 closes without a CONNACK
    name, flags, parts = case
    rest = b"".join((b"\x00" if version == 5 else b"") if x == "will-props" else x for x in parts)
    c = raw_clients(broker)
    c.send(_raw_connect(version, flags, r.string(f"stray-{version}") + rest))
    pkts = c.wait_closed()
    if version == 4:
        assert pkts == [], pkts
    else:
        _refused_from(pkts)
    clients(broker).connect()  # the broker still serves others


def _refused_from(pkts) -> None:
    assert all(p.type == r.CONNACK and p.body[1] >= 0x80 and p.body[1] in CONNACK_CODES
               for p in pkts) and len(pkts) <= 1, pkts


V311_NONCONFORMING = [
    ("reserved-flag", r.connect("nc-rsv", version=4, reserved_flag=True)),  # [MQTT-3.1.2-3]
    ("will-qos-3", _raw_connect(4, 0x02 | 0x04 | 0x18, r.string("nc") + r.string("w") + r.string("p"))),
    ("will-retain-without-will", _raw_connect(4, 0x02 | 0x20, r.string("nc"))),  # [MQTT-3.1.2-15]
    ("password-without-username", _raw_connect(4, 0x02 | 0x40, r.string("nc") + r.string("p"))),
    ("username-flag-without-username", _raw_connect(4, 0x02 | 0x80, r.string("nc"))),
    ("client-id-bad-utf8", _raw_connect(4, 0x02, b"\x00\x02\xc3\x28")),  # [MQTT-3.1.3-4]
    ("truncated", _raw_connect(4, 0x02, b"\x00\x09short")),
]


@pytest.mark.parametrize("data", [d for _, d in V311_NONCONFORMING], ids=[n for n, _ in V311_NONCONFORMING])
def test_v311_nonconforming_connect_closed_without_connack(broker, raw_clients, clients, data):
    # 3.1.1 [MQTT-3.1.4-1]: a CONNECT that does not conform is closed *without*
    # a CONNACK; [MQTT-3.2.2-6]: no return code applies, so none is sent
    c = raw_clients(broker)
    c.send(data)
    assert c.wait_closed() == []
    clients(broker).connect()


@pytest.mark.parametrize("version", [4, 5])
def test_payload_fields_read_in_order(broker_factory, monkeypatch, tmp_path, raw_clients, clients,
                                      version):
    # [MQTT-3.1.3-1]: client id, (5.0: will properties,) will topic, will payload,
    # user name, password. With every field present, the server must take each one
    # for what it is: the password is checked against the user name (a wrong one
    # is refused), and the will arrives with its topic, payload and properties
    pw = _password_file(tmp_path)
    monkeypatch.setitem(brokerproc.OPTIONS, "password_file", ("--password-file", "password_file"))
    b = broker_factory(password_file=pw)
    w = clients(b, protocol=V5)
    w.c.username_pw_set(USER, PASSWORD)
    w.connect()
    w.subscribe("order/will", qos=1)
    will_props = r.properties((r.P_USER_PROPERTY, ("a", "1")), (r.P_USER_PROPERTY, ("b", "2")),
                              (r.P_CONTENT_TYPE, "text/x")) if version == 5 else None
    bad = raw_clients(b)
    bad.send(r.connect("order-bad", version=version, will=("order/will", b"nope", 1, False),
                       will_props=will_props, username=USER, password="wrong"))
    pkts = bad.wait_closed()
    assert [p.type for p in pkts] in ([], [r.CONNACK]) and all(p.body[1] != 0 for p in pkts), pkts
    c = raw_clients(b)
    c.connect(version=version, client_id=f"order-{version}", will=("order/will", b"will-payload", 1, False),
              will_props=will_props, username=USER, password=PASSWORD)
    c.close()  # no DISCONNECT: the will is published
    m = w.get()
    assert (m.topic, m.payload, m.qos) == ("order/will", b"will-payload", 1)
    if version == 5:
        # [MQTT-3.1.3-10]: the will's user properties keep their order
        assert m.properties.get("UserProperty") == [("a", "1"), ("b", "2")], m.properties
        assert m.properties.get("ContentType") == "text/x"
    w.expect_none(0.3)  # the refused CONNECT's will never fired


# ------------------------------------------------------------ CONNACK contents
def test_v5_connack_reason_codes_from_the_table(restricted, raw_clients):
    # [MQTT-3.2.2-8]: every refusal uses a Connect Reason Code; with it, session
    # present 0 ([MQTT-3.2.2-6]) and the connection closed ([MQTT-3.2.2-7])
    refusals = [
        r.connect("rc-pw", version=5, username=USER, password="wrong"),  # bad credentials
        r.connect("rc-am", version=5, props=r.properties((r.P_AUTH_METHOD, "NO-SUCH-METHOD"))),
        r.connect("rc-wq", version=5, will=("rc/w", b"x", 2, False)),  # will QoS over maximum
        r.connect("rc-wr", version=5, will=("rc/w", b"x", 0, True)),  # will retain unsupported
        r.connect("", version=5),  # client id refused
        r.connect("rc-rx0", version=5, props=r.properties((r.P_RECEIVE_MAXIMUM, 0))),  # protocol error
        r.connect("rc-mal", version=5, reserved_flag=True),  # malformed
    ]
    codes = []
    for data in refusals:
        c = raw_clients(restricted)
        c.send(data)
        codes.append(_refused(c))
    assert any(code >= 0x80 for code in codes), codes


@pytest.mark.parametrize("request_value", [None, 0])
def test_v5_no_response_information_unless_requested(broker, raw_clients, request_value):
    # [MQTT-3.1.2-28]: Request Response Information 0 (or absent, same value):
    # the CONNACK carries no Response Information
    c = raw_clients(broker)
    p = r.properties((r.P_REQUEST_RESPONSE_INFO, request_value)) if request_value is not None else None
    _, rc, caps = c.connect(version=5, client_id="no-resp-info", props=p)
    assert rc == 0
    assert r.P_RESPONSE_INFO not in caps, caps


def test_v5_no_enhanced_authentication_unless_asked(broker, raw_clients):
    # [MQTT-4.12.0-6]: no Authentication Method in CONNECT: the server sends no
    # AUTH packet and no Authentication Method (or Data) in CONNACK
    c = raw_clients(broker)
    _, rc, caps = c.connect(version=5, client_id="no-auth")
    assert rc == 0
    assert r.P_AUTH_METHOD not in caps and r.P_AUTH_DATA not in caps, caps
    c.send(r.subscribe(1, [("noauth/t", 1)], version=5))
    c.send(r.publish("noauth/t", b"x", qos=1, pid=2, version=5))
    c.send(r.pingreq())
    seen = []
    while r.PINGRESP not in [p.type for p in seen]:
        p = c.recv()
        seen.append(p)
        if p.type == r.PUBLISH:
            c.send(r.ack(r.PUBACK, p.publish_fields(5)["pid"], 5))
    assert r.AUTH not in [p.type for p in seen], seen


@pytest.mark.parametrize("flags", [0x01, 0x02, 0x04, 0x08, 0x0F])
def test_v5_auth_reserved_flags_closed(broker, raw_clients, clients, flags):
    # [MQTT-3.15.1-1]: AUTH fixed-header flags other than 0000 are malformed:
    # close (a DISCONNECT 0x81, or 0x82 since no AUTH was expected, may come first)
    c = raw_clients(broker)
    c.connect(version=5, client_id="auth-flags")
    c.send(bytes([0xF0 | flags]) + b"\x02\x18\x00")  # reason 0x18, no properties
    pkts = c.wait_closed()
    assert all(p.type == r.DISCONNECT and p.reason() in (0x81, 0x82) for p in pkts), pkts
    ok = clients(broker, protocol=V5)
    ok.connect()


def test_v5_will_properties_order_kept_with_many(broker, raw_clients, clients):
    # [MQTT-3.1.3-10]: the server keeps the order of the will's User Properties,
    # also with repeated names and more than a handful of pairs
    w = clients(broker, protocol=V5)
    w.connect()
    w.subscribe("wprops/t", qos=0)
    pairs = [("z", "1"), ("a", "2"), ("z", "3"), ("m", "4"), ("a", "5"), ("k", "6"), ("z", "7")]
    c = raw_clients(broker)
    c.connect(version=5, client_id="wprops", will=("wprops/t", b"w", 0, False),
              will_props=r.properties(*[(r.P_USER_PROPERTY, p) for p in pairs]))
    c.close()
    assert w.get().properties.get("UserProperty") == pairs
