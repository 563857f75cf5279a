"""Topic filters and subscriptions: wildcards, $SYS isolation, overlapping
subscriptions, 5.0 subscription identifiers, UNSUBSCRIBE, invalid filters."""

import pytest

import rawmqtt as r
from mqttclient import V311, V5, props


def _matches(broker, clients, protocol, filt, topics):
    sub = clients(broker, protocol=protocol)
    sub.connect()
    sub.subscribe(filt, qos=1)
    sub.subscribe("zz/barrier", qos=1)
    pub = clients(broker, protocol=protocol)
    pub.connect()
    for t in topics:
        pub.publish(t, t.encode(), qos=1)
    pub.publish("zz/barrier", b"b", qos=1)
    return [m.topic for m in sub.drain_until("zz/barrier", b"b")]


CASES = [
    ("sport/tennis/+", ["sport/tennis/p1", "sport/tennis/p1/r", "sport/tennis", "sport/tennis/"],
     ["sport/tennis/p1", "sport/tennis/"]),
    ("sport/#", ["sport", "sport/tennis", "sport/tennis/p1", "sports"],
     ["sport", "sport/tennis", "sport/tennis/p1"]),  # [MQTT-4.7.1-2] '#' includes the parent
    ("+/+", ["/finance", "a/b", "a", "a/b/c"], ["/finance", "a/b"]),
    ("/+", ["/finance", "finance"], ["/finance"]),
    ("+", ["a", "/a", "a/b"], ["a"]),
    ("#", ["a", "a/b", "/x"], ["a", "a/b", "/x"]),
    ("a/+/c/#", ["a/b/c", "a/b/c/d/e", "a/b/x/d", "a//c"], ["a/b/c", "a/b/c/d/e", "a//c"]),
    ("Case/T", ["case/t", "Case/T"], ["Case/T"]),  # [MQTT-4.7.3-4]: case sensitive
]


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
@pytest.mark.parametrize("filt,published,expected", CASES, ids=[c[0] for c in CASES])
def test_wildcards(broker, clients, protocol, filt, published, expected):
    got = _matches(broker, clients, protocol, filt, published)
    if filt == "#":
        got = [t for t in got if not t.startswith("zz/")]
    assert got == expected


@pytest.mark.parametrize("filt", ["#", "+/broker/uptime", "+/#"])
def test_dollar_topics_not_matched_by_leading_wildcard(broker_factory, clients, filt):
    # [MQTT-4.7.2-1]; $SYS is published every second here, so absence is meaningful
    b = broker_factory(sys_interval=1)
    sub = clients(b)
    sub.connect()
    sub.subscribe(filt, qos=0)
    sub.subscribe("plain/barrier", qos=0)
    sys_sub = clients(b)
    sys_sub.connect()
    sys_sub.subscribe("$SYS/broker/uptime", qos=0)
    sys_sub.get(timeout=5)  # a $SYS publication happened...
    sys_sub.get(timeout=5)  # ...twice, after sub subscribed
    pub = clients(b)
    pub.connect()
    pub.publish("plain/barrier", b"b", qos=1)
    before = sub.drain_until("plain/barrier", b"b")
    assert [m.topic for m in before if m.topic.startswith("$")] == []


def test_dollar_topic_published_by_client_not_matched_by_hash(broker, clients):
    sub = clients(broker)
    sub.connect()
    sub.subscribe("#", qos=1)
    dollar = clients(broker)
    dollar.connect()
    dollar.subscribe("$app/x", qos=1)
    pub = clients(broker)
    pub.connect()
    pub.publish("$app/x", b"d", qos=1)
    assert dollar.get().topic == "$app/x"
    pub.publish("plain/b", b"b", qos=1)
    assert sub.drain_until("plain/b", b"b") == []


def _overlap(broker, clients, raw_clients, version):
    sub = raw_clients(broker)
    sub.connect(version=version, client_id=f"overlap-{version}")
    sub.send(r.subscribe(1, [("ov/#", 1), ("ov/+", 2), ("ov/x", 0)], version=version))
    assert sub.expect(r.SUBACK).suback_codes(version) == [1, 2, 0]
    pub = clients(broker, protocol=V5 if version == 5 else V311)
    pub.connect()
    pub.publish("ov/x", b"m", qos=2)
    pub.publish("ov/y/z", b"barrier", qos=2)
    return sub.receive_publishes(version, until=("ov/y/z", b"barrier"))


@pytest.mark.parametrize("version", [
    pytest.param(4, marks=pytest.mark.mosquitto_deviates("3.1.1 overlap delivered once at QoS 0")),
    5,
])
def test_overlapping_subscriptions_max_qos(broker, clients, raw_clients, version):
    # [MQTT-3.3.5-1]: delivered respecting the maximum QoS of the matching subscriptions
    before = _overlap(broker, clients, raw_clients, version)
    assert before, "message on ov/x not delivered"
    assert max(m["qos"] for m in before) == 2


@pytest.mark.midge_only
@pytest.mark.parametrize("version", [4, 5])
def test_overlapping_subscriptions_delivered_once(broker, clients, raw_clients, version):
    # midge delivers one copy per client (the spec allows one per subscription)
    before = _overlap(broker, clients, raw_clients, version)
    assert [(m["payload"], m["qos"]) for m in before] == [(b"m", 2)]


def test_v5_subscription_identifiers(broker, clients):
    # [MQTT-3.3.4-3]: the PUBLISH carries the identifiers of the matching subscriptions
    sub = clients(broker, protocol=V5)
    sub.connect()
    sub.subscribe("sid/+", qos=1, properties=props("SUBSCRIBE", SubscriptionIdentifier=7))
    sub.subscribe("sid/#", qos=1, properties=props("SUBSCRIBE", SubscriptionIdentifier=300000))
    sub.subscribe("other/t", qos=1)
    pub = clients(broker, protocol=V5)
    pub.connect()
    pub.publish("sid/a", b"x", qos=1)
    pub.publish("other/t", b"barrier", qos=1)
    before = sub.drain_until("other/t", b"barrier")
    ids = []
    for m in before:
        v = m.properties.get("SubscriptionIdentifier", [])
        ids.extend(v if isinstance(v, list) else [v])
    assert sorted(ids) == [7, 300000]
    pub.publish("other/t", b"no id", qos=1)
    m = sub.get()
    assert "SubscriptionIdentifier" not in m.properties  # [MQTT-3.3.4-5]? none when subscribed without


def test_v5_subscription_identifier_zero_is_protocol_error(broker, raw_clients):
    # [MQTT-3.8.2-?]: identifier 0 is a Protocol Error
    c = raw_clients(broker)
    c.connect(version=5, client_id="sid0")
    c.send(r.subscribe(1, [("a", 0)], version=5, props=r.properties((r.P_SUBSCRIPTION_ID, 0))))
    pkts = c.wait_closed()
    assert not any(p.type == r.SUBACK for p in pkts), pkts


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_unsubscribe_stops_delivery(broker, clients, protocol):
    # [MQTT-3.10.4-1] .. [MQTT-3.10.4-5]
    sub = clients(broker, protocol=protocol)
    sub.connect()
    sub.subscribe("uns/t", qos=1)
    sub.subscribe("uns/barrier", qos=1)
    pub = clients(broker, protocol=protocol)
    pub.connect()
    pub.publish("uns/t", b"before", qos=1)
    assert sub.get().payload == b"before"
    codes = sub.unsubscribe("uns/t")
    if protocol == V5:
        assert codes == [0]
    pub.publish("uns/t", b"after", qos=1)
    pub.publish("uns/barrier", b"b", qos=1)
    assert sub.drain_until("uns/barrier", b"b") == []


def test_v5_unsubscribe_unknown_filter_reason(broker, clients):
    # UNSUBACK 0x11 "No subscription existed"
    c = clients(broker, protocol=V5)
    c.connect()
    assert c.unsubscribe("never/subscribed") == [0x11]


def test_unsuback_on_the_wire(broker, raw_clients):
    # [MQTT-3.10.4-4] UNSUBACK with the same packet identifier, even for unknown filters
    c = raw_clients(broker)
    c.connect(version=4, client_id="unsw")
    c.send(r.unsubscribe(513, ["nothing/here", "x/#"]))
    assert c.expect(r.UNSUBACK).pid() == 513


def test_suback_codes_per_filter(broker, raw_clients):
    # [MQTT-3.8.4-4]/[MQTT-3.9.3-1]: one return code per filter, in order
    c = raw_clients(broker)
    c.connect(version=4, client_id="multi")
    c.send(r.subscribe(5, [("m/0", 0), ("m/1", 1), ("m/2", 2)]))
    sa = c.expect(r.SUBACK)
    assert sa.pid() == 5 and sa.suback_codes() == [0, 1, 2]


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize("bad", ["a/#/b", "a#", "a/b+", "#/a", ""])
def test_invalid_filter_rejected(broker, raw_clients, version, bad):
    # [MQTT-4.7.1-1]..[MQTT-4.7.1-3], [MQTT-4.7.3-1] (empty filter):
    # failure code 0x80 (5.0: 0x8F) or disconnect
    c = raw_clients(broker)
    c.connect(version=version, client_id="badfilter")
    c.send(r.subscribe(3, [(bad, 1)], version=version))
    try:
        p = c.recv()
    except r.Closed:
        return
    if p.type == r.SUBACK:
        assert p.suback_codes(version)[0] in (0x80, 0x8F), p
    else:
        assert p.type == r.DISCONNECT, p
        c.wait_closed()


def test_resubscribe_replaces_qos(broker, clients):
    # [MQTT-3.8.4-3]: a new subscription with the same filter replaces the old one
    sub = clients(broker)
    sub.connect()
    sub.subscribe("re/t", qos=2)
    sub.subscribe("re/t", qos=0)
    pub = clients(broker)
    pub.connect()
    pub.publish("re/t", b"x", qos=2)
    pub.publish("re/t", b"barrier", qos=2)
    before = sub.drain_until("re/t", b"barrier")
    assert [(m.payload, m.qos) for m in before] == [(b"x", 0)]
