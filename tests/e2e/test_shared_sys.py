"""Shared subscriptions ($share/GROUP/filter) and the $SYS tree."""

import queue
import re
import time

import pytest

import rawmqtt as r
from mqttclient import V311, V5

N = 30


@pytest.mark.parametrize("protocol", [V311, V5], ids=["v311", "v5"])
def test_shared_subscription_each_message_once(broker, clients, protocol):
    # 5.0 4.8.2: each message goes to exactly one member of the group
    members = []
    for _ in range(3):
        m = clients(broker, protocol=protocol)
        m.connect()
        m.subscribe("$share/g1/sh/t", qos=1)
        members.append(m)
    plain = clients(broker, protocol=protocol)
    plain.connect()
    plain.subscribe("sh/t", qos=1)
    other_group = clients(broker, protocol=protocol)
    other_group.connect()
    other_group.subscribe("$share/g2/sh/+", qos=1)
    pub = clients(broker, protocol=protocol)
    pub.connect()
    for i in range(N):
        pub.publish("sh/t", str(i).encode(), qos=1)
    # non-shared and other-group subscribers get every message
    assert [m.payload for m in plain.get_n(N)] == [str(i).encode() for i in range(N)]
    assert sorted(int(m.payload) for m in other_group.get_n(N)) == list(range(N))
    got = _collect(members, N)
    assert sorted(x for g in got for x in g) == list(range(N)), "each message once in the group"
    # a last message, then nothing more anywhere in the group
    pub.publish("sh/t", b"-1", qos=1)
    assert plain.get_n(1)[0].payload == b"-1"
    last = _collect(members, 1)
    assert [x for g in last for x in g] == [-1]
    for m in members:
        m.expect_none(0.2)


def _collect(members, n, timeout=5.0):
    """Payloads (as ints) received by each member, until n in total."""
    deadline = time.monotonic() + timeout
    got = [[] for _ in members]
    while sum(map(len, got)) < n:
        if time.monotonic() > deadline:
            raise AssertionError(f"group received {sum(map(len, got))} of {n}: {got}")
        for i, m in enumerate(members):
            try:
                got[i].append(int(m.messages.get(timeout=0.02).payload))
            except queue.Empty:
                pass
    return got


@pytest.mark.midge_only
def test_shared_subscription_round_robin(broker, clients):
    members = []
    for _ in range(3):
        m = clients(broker, protocol=V5)
        m.connect()
        m.subscribe("$share/rr/rr/t", qos=1)
        members.append(m)
    pub = clients(broker, protocol=V5)
    pub.connect()
    for i in range(N):
        pub.publish("rr/t", str(i).encode(), qos=1)
    got = _collect(members, N)
    assert [len(g) for g in got] == [N // 3] * 3, got
    for m in members:
        m.expect_none(0.2)


def test_shared_subscription_member_leaves(broker, clients):
    a = clients(broker, protocol=V5)
    a.connect()
    a.subscribe("$share/g/lv/t", qos=1)
    b = clients(broker, protocol=V5)
    b.connect()
    b.subscribe("$share/g/lv/t", qos=1)
    b.disconnect()
    pub = clients(broker, protocol=V5)
    pub.connect()
    for i in range(5):
        pub.publish("lv/t", str(i).encode(), qos=1)
    assert [m.payload for m in a.get_n(5)] == [str(i).encode() for i in range(5)]


def test_shared_subscription_unsubscribe(broker, clients):
    a = clients(broker, protocol=V5)
    a.connect()
    a.subscribe("$share/g/us/t", qos=1)
    a.subscribe("us/barrier", qos=1)
    assert a.unsubscribe("$share/g/us/t") == [0]
    pub = clients(broker, protocol=V5)
    pub.connect()
    pub.publish("us/t", b"x", qos=1)
    pub.publish("us/barrier", b"b", qos=1)
    assert a.drain_until("us/barrier", b"b") == []


@pytest.mark.parametrize("bad", [
    pytest.param("$share/g", marks=pytest.mark.mosquitto_deviates("accepts $share/g without a filter")),
    pytest.param("$share//t", marks=pytest.mark.mosquitto_deviates("accepts an empty ShareName")),
    "$share/g+/t", "$share/g#/t",
])
def test_invalid_shared_filter(broker, raw_clients, bad):
    # [MQTT-4.8.2-1], [MQTT-4.8.2-2]: ShareName non-empty, no wildcards, followed by '/' and a filter
    c = raw_clients(broker)
    c.connect(version=5, client_id="badshare")
    c.send(r.subscribe(1, [(bad, 1)], version=5))
    try:
        p = c.recv()
    except r.Closed:
        return
    if p.type == r.SUBACK:
        assert p.suback_codes(5)[0] >= 0x80, p
    else:
        assert p.type == r.DISCONNECT and p.reason() >= 0x80, p


def test_v5_connack_shared_subscription_available(broker, raw_clients):
    c = raw_clients(broker)
    _, _, p = c.connect(version=5, client_id="caps-share")
    assert p.get(r.P_SHARED_SUB_AVAILABLE, 1) == 1


def _sys_values(client, topic, n):
    vals = []
    while len(vals) < n:
        m = client.get(timeout=5)
        if m.topic == topic:
            vals.append(m.payload.decode())
    return vals


def test_sys_uptime_published(broker_factory, clients):
    b = broker_factory(sys_interval=1)
    c = clients(b)
    c.connect()
    c.subscribe("$SYS/broker/uptime", qos=0)
    vals = _sys_values(c, "$SYS/broker/uptime", 3)  # at least two periodic publications
    secs = [int(re.match(r"\s*(\d+)", v).group(1)) for v in vals]
    assert secs == sorted(secs) and secs[-1] >= secs[0], vals


def test_sys_clients_connected(broker_factory, clients):
    b = broker_factory(sys_interval=1)
    watcher = clients(b)
    watcher.connect()
    watcher.subscribe("$SYS/broker/clients/connected", qos=0)
    extra = [clients(b) for _ in range(3)]
    for e in extra:
        e.connect()
    # wait for a publication that counts all five (watcher + 3 + none) = 4
    for _ in range(10):
        v = int(_sys_values(watcher, "$SYS/broker/clients/connected", 1)[0])
        if v == 4:
            break
    else:
        raise AssertionError(f"$SYS/broker/clients/connected never reached 4 (last {v})")
    for e in extra:
        e.disconnect()
    for _ in range(10):
        v = int(_sys_values(watcher, "$SYS/broker/clients/connected", 1)[0])
        if v == 1:
            break
    else:
        raise AssertionError(f"$SYS/broker/clients/connected never fell back to 1 (last {v})")


def test_sys_publish_by_client_not_accepted_as_sys(broker_factory, clients):
    # clients should not be able to fake broker statistics: a client PUBLISH to $SYS/...
    # is either dropped or at least not retained over the broker's own value
    b = broker_factory(sys_interval=1)
    faker = clients(b)
    faker.connect()
    faker.publish("$SYS/broker/uptime", b"999999 seconds", qos=1, retain=True)
    c = clients(b)
    c.connect()
    c.subscribe("$SYS/broker/uptime", qos=0)
    vals = _sys_values(c, "$SYS/broker/uptime", 2)
    assert vals[-1] != "999999 seconds"
