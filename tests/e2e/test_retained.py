"""Retained messages: set, replace, delete, delivery on subscribe with the
retain flag, QoS of retained delivery, 5.0 retain handling 0/1/2 and
retain-as-published."""

import pytest

import rawmqtt as r
from mqttclient import V311, V5


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_retained_set_replace_delete(broker, clients, protocol):
    pub = clients(broker, protocol=protocol)
    pub.connect()
    pub.publish("ret/a", b"one", qos=1, retain=True)
    pub.publish("ret/a", b"two", qos=1, retain=True)  # [MQTT-3.3.1-5] replaces
    s1 = clients(broker, protocol=protocol)
    s1.connect()
    s1.subscribe("ret/#", qos=1)
    m = s1.get()
    assert (m.topic, m.payload, m.retain) == ("ret/a", b"two", True)  # [MQTT-3.3.1-8]
    s1.expect_none(0.3)
    # live forwarding clears the retain flag for existing subscribers [MQTT-3.3.1-9]
    pub.publish("ret/a", b"three", qos=1, retain=True)
    m = s1.get()
    assert (m.payload, m.retain) == (b"three", False)
    # empty retained payload deletes [MQTT-3.3.1-10], [MQTT-3.3.1-11]
    pub.publish("ret/a", b"", qos=1, retain=True)
    m = s1.get()
    assert m.payload == b""  # forwarded to current subscribers as normal
    s2 = clients(broker, protocol=protocol)
    s2.connect()
    s2.subscribe("ret/#", qos=1)
    s2.subscribe("ret-barrier", qos=1)
    pub.publish("ret-barrier", b"b", qos=1)
    assert s2.drain_until("ret-barrier", b"b") == []


def test_retained_qos0_replaces(broker, clients):
    # [MQTT-3.3.1-7]: a QoS 0 retained message replaces any retained message
    pub = clients(broker)
    pub.connect()
    pub.publish("ret0/a", b"q1", qos=1, retain=True)
    pub.publish("ret0/a", b"q0", qos=0, retain=True)
    pub.publish("ret0/sync", b"s", qos=1)  # orders after the QoS 0 publish
    s = clients(broker)
    s.connect()
    s.subscribe("ret0/a", qos=1)
    m = s.get()
    assert (m.payload, m.retain) == (b"q0", True)


def test_non_retained_publish_keeps_retained(broker, clients):
    pub = clients(broker)
    pub.connect()
    pub.publish("ret/keep", b"kept", qos=1, retain=True)
    pub.publish("ret/keep", b"live only", qos=1, retain=False)
    s = clients(broker)
    s.connect()
    s.subscribe("ret/keep", qos=1)
    assert s.get().payload == b"kept"


def test_retained_delivery_qos_is_min(broker, clients):
    pub = clients(broker)
    pub.connect()
    pub.publish("retq/a", b"x", qos=2, retain=True)
    s = clients(broker)
    s.connect()
    s.subscribe("retq/a", qos=1)
    m = s.get()
    assert (m.qos, m.retain) == (1, True)


def test_retained_wildcard_many(broker, clients):
    pub = clients(broker)
    pub.connect()
    topics = [f"retw/{i}/v" for i in range(10)]
    for t in topics:
        pub.publish(t, t.encode(), qos=1, retain=True)
    s = clients(broker)
    s.connect()
    s.subscribe("retw/+/v", qos=1)
    got = s.get_n(10)
    assert sorted(m.topic for m in got) == sorted(topics) and all(m.retain for m in got)


def test_resubscribe_resends_retained_v311(broker, clients):
    # [MQTT-3.8.4-3]: retained messages are re-sent on a repeated SUBSCRIBE
    pub = clients(broker)
    pub.connect()
    pub.publish("retr/a", b"r", qos=1, retain=True)
    s = clients(broker)
    s.connect()
    s.subscribe("retr/a", qos=1)
    assert s.get().payload == b"r"
    s.subscribe("retr/a", qos=1)
    assert s.get().payload == b"r"


@pytest.mark.parametrize("rh,expect_first,expect_again", [(0, True, True), (1, True, False),
                                                          (2, False, False)])
def test_v5_retain_handling(broker, clients, rh, expect_first, expect_again):
    # [MQTT-3.3.1-9] .. [MQTT-3.3.1-11] (5.0 numbering): retain handling 0/1/2
    pub = clients(broker, protocol=V5)
    pub.connect()
    pub.publish("rh/a", b"kept", qos=1, retain=True)
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("rh-barrier", qos=1)

    def round_trip():
        s.subscribe("rh/a", qos=1, retainHandling=rh)
        pub.publish("rh-barrier", b"b", qos=1)
        return [m.payload for m in s.drain_until("rh-barrier", b"b")]

    assert round_trip() == ([b"kept"] if expect_first else [])
    assert round_trip() == ([b"kept"] if expect_again else [])


@pytest.mark.parametrize("rap", [False, True])
def test_v5_retain_as_published(broker, clients, rap):
    # [MQTT-3.3.1-12], [MQTT-3.3.1-13]
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("rap/a", qos=1, retainAsPublished=rap)
    pub = clients(broker, protocol=V5)
    pub.connect()
    pub.publish("rap/a", b"r", qos=1, retain=True)
    pub.publish("rap/a", b"n", qos=1, retain=False)
    a, b = s.get_n(2)
    assert (a.payload, a.retain) == (b"r", rap)
    assert (b.payload, b.retain) == (b"n", False)
    # retained delivery on subscribe always has the flag
    s2 = clients(broker, protocol=V5)
    s2.connect()
    s2.subscribe("rap/a", qos=1, retainAsPublished=rap)
    m = s2.get()
    assert (m.payload, m.retain) == (b"r", True)


def test_v5_retained_keeps_properties(broker, clients):
    from mqttclient import props
    pub = clients(broker, protocol=V5)
    pub.connect()
    pub.publish("retp/a", b"{}", qos=1, retain=True,
                properties=props("PUBLISH", ContentType="application/json",
                                 UserProperty=[("k", "v")]))
    s = clients(broker, protocol=V5)
    s.connect()
    s.subscribe("retp/a", qos=1)
    m = s.get()
    assert m.properties.get("ContentType") == "application/json"
    assert m.properties.get("UserProperty") == [("k", "v")]


def test_retained_survives_publisher_session_end(broker, clients):
    # [MQTT-3.1.2-7] (3.1.1): retained messages are not part of the session
    p = clients(broker, client_id="ret-pub", clean=True)
    p.connect()
    p.publish("rets/a", b"stays", qos=1, retain=True)
    p.disconnect()
    s = clients(broker)
    s.connect()
    s.subscribe("rets/a", qos=1)
    assert s.get().payload == b"stays"


def test_retained_on_the_wire_flag(broker, raw_clients):
    # raw check that the retain bit is set in the PUBLISH fixed header
    p = raw_clients(broker)
    p.connect(version=4, client_id="rwp")
    p.send(r.publish("rw/a", b"z", qos=1, pid=1, retain=True))
    p.expect(r.PUBACK)
    s = raw_clients(broker)
    s.connect(version=4, client_id="rws")
    s.send(r.subscribe(1, [("rw/a", 0)]))
    s.expect(r.SUBACK)
    f = s.expect(r.PUBLISH).publish_fields()
    assert f["retain"] and f["payload"] == b"z" and f["qos"] == 0
    assert not f["dup"]  # [MQTT-3.3.1-2]: DUP is 0 for QoS 0
