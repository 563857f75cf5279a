"""A synchronous test client over paho-mqtt 2.x.

Every call that waits for the broker (connect, subscribe, publish with QoS > 0,
a received message) waits on a threading.Event or a queue with a timeout and
fails the test with a clear message when it runs out. Automatic reconnection
is off: a test sees exactly the connections it asked for.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

TIMEOUT = 5.0
V31, V311, V5 = mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5
_ids = itertools.count(1)


def props(packet_type: str, **values) -> Properties:
    """props("PUBLISH", UserProperty=[("a", "1")], ContentType="x")."""
    p = Properties(getattr(PacketTypes, packet_type))
    for k, v in values.items():
        setattr(p, k, v)
    return p


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    mid: int
    properties: dict = field(default_factory=dict)


def _props_dict(p) -> dict:
    if p is None:
        return {}
    d = p.json()
    # user properties keep their order as a list of pairs
    if hasattr(p, "UserProperty"):
        d["UserProperty"] = list(p.UserProperty)
    if hasattr(p, "CorrelationData"):
        d["CorrelationData"] = bytes(p.CorrelationData)
    return d


class Client:
    """One paho client with its own network thread."""

    def __init__(self, broker, client_id: str | None = None, protocol: int = V311,
                 clean: bool = True, keepalive: int = 60):
        self.broker = broker
        self.protocol = protocol
        self.client_id = client_id if client_id is not None else f"e2e-{next(_ids)}-{time.monotonic_ns() % 100000}"
        kwargs = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                      client_id=self.client_id, protocol=protocol, reconnect_on_failure=False)
        if protocol != V5:
            kwargs["clean_session"] = clean
        self.clean = clean
        self.keepalive = keepalive
        self.c = mqtt.Client(**kwargs)
        self.messages: queue.Queue[Message] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None  # (reason code int, session_present, properties dict)
        self.disconnect_reason: int | None = None
        self.disconnect_properties: dict = {}
        self._lock = threading.Lock()
        self._acks: dict[int, threading.Event] = {}
        self._ack_results: dict[int, object] = {}
        self._loop_started = False
        c = self.c
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_unsubscribe = self._on_unsubscribe
        c.on_publish = self._on_publish

    # ------------------------------------------------------------ callbacks
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = (reason_code.value, bool(flags.session_present), _props_dict(properties))
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code.value if reason_code is not None else None
        self.disconnect_properties = _props_dict(properties)
        self.disconnected.set()
        self.connected.clear()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                                  bool(msg.dup), msg.mid,
                                  _props_dict(getattr(msg, "properties", None))))

    def _ack(self, mid, result):
        with self._lock:
            self._ack_results[mid] = result
            ev = self._acks.setdefault(mid, threading.Event())
        ev.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        self._ack(mid, [rc.value for rc in reason_codes])

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        self._ack(mid, [rc.value for rc in reason_codes] if reason_codes else [])

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        self._ack(mid, reason_code.value if reason_code is not None else 0)

    def _wait_ack(self, mid, what, timeout):
        with self._lock:
            ev = self._acks.setdefault(mid, threading.Event())
        if not ev.wait(timeout):
            raise AssertionError(f"{self.client_id}: no {what} for mid {mid} within {timeout}s")
        with self._lock:
            return self._ack_results.pop(mid)

    # -------------------------------------------------------------- actions
    def will_set(self, topic, payload=b"", qos=0, retain=False, properties=None):
        self.c.will_set(topic, payload, qos, retain, properties)
        return self

    def connect(self, expect_rc: int | None = 0, timeout: float = TIMEOUT,
                clean_start: bool | None = None, properties=None, port: int | None = None):
        """Connect and wait for CONNACK; returns (rc, session_present, props)."""
        kwargs = {}
        if self.protocol == V5:
            kwargs["clean_start"] = self.clean if clean_start is None else clean_start
            if properties is not None:
                kwargs["properties"] = properties
        self.connected.clear()
        self.disconnected.clear()
        self.connack = None
        self.c.connect(self.broker.host, port or self.broker.port, keepalive=self.keepalive, **kwargs)
        if not self._loop_started:
            self.c.loop_start()
            self._loop_started = True
        deadline = time.monotonic() + timeout
        while self.connack is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.client_id}: no CONNACK within {timeout}s")
            if self.disconnected.wait(0.02) and self.connack is None:
                raise AssertionError(f"{self.client_id}: connection closed before CONNACK "
                                     f"(reason {self.disconnect_reason})")
        if expect_rc is not None and self.connack[0] != expect_rc:
            raise AssertionError(f"{self.client_id}: CONNACK reason {self.connack[0]:#x}, "
                                 f"expected {expect_rc:#x}")
        return self.connack

    @property
    def session_present(self) -> bool:
        assert self.connack is not None
        return self.connack[1]

    def subscribe(self, topic, qos: int = 0, timeout: float = TIMEOUT, options=None,
                  properties=None, **opts):
        """Subscribe to a filter (or a list of (filter, qos|SubscribeOptions));
        returns the SUBACK reason codes."""
        if isinstance(topic, list):
            rc, mid = self.c.subscribe(topic, properties=properties)
        else:
            if self.protocol == V5:
                options = options or SubscribeOptions(qos=qos, **opts)
                rc, mid = self.c.subscribe(topic, options=options, properties=properties)
            else:
                rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe failed locally: {rc}"
        return self._wait_ack(mid, "SUBACK", timeout)

    def unsubscribe(self, topic, timeout: float = TIMEOUT, properties=None):
        rc, mid = self.c.unsubscribe(topic, properties=properties)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"unsubscribe failed locally: {rc}"
        return self._wait_ack(mid, "UNSUBACK", timeout)

    def publish(self, topic, payload=b"", qos: int = 0, retain: bool = False,
                properties=None, timeout: float = TIMEOUT, wait: bool = True):
        """Publish; with wait, returns once PUBACK/PUBCOMP came (or, for QoS 0,
        once the packet was written). Returns the PUBACK/PUBREC reason code."""
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish failed locally: {info.rc}"
        if not wait:
            return info
        if qos == 0:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"{self.client_id}: QoS 0 publish not written in {timeout}s"
            return 0
        return self._wait_ack(info.mid, "PUBACK/PUBCOMP", timeout)

    def get(self, timeout: float = TIMEOUT) -> Message:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.client_id}: no message within {timeout}s") from None

    def get_n(self, n: int, timeout: float = TIMEOUT) -> list[Message]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id}: got {len(out)} of {n} messages in "
                                     f"{timeout}s: {[(m.topic, m.payload) for m in out]}")
            try:
                out.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                continue
        return out

    def expect_none(self, timeout: float = 0.5):
        """Assert no further message arrives within `timeout`. Callers first use
        a barrier (a later message on the same path) so that this short wait is
        a final check, not the only evidence."""
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {m}")

    def drain_until(self, topic: str, payload: bytes, timeout: float = TIMEOUT) -> list[Message]:
        """Messages received before the barrier message (topic, payload), which is consumed."""
        before = []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id}: barrier {topic} {payload!r} not received; "
                                     f"got {[(m.topic, m.payload) for m in before]}")
            try:
                m = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if m.topic == topic and m.payload == payload:
                return before
            before.append(m)

    def wait_disconnected(self, timeout: float = TIMEOUT):
        if not self.disconnected.wait(timeout):
            raise AssertionError(f"{self.client_id}: still connected after {timeout}s")
        return self.disconnect_reason

    def disconnect(self, reasoncode=None, properties=None, timeout: float = TIMEOUT):
        """Send DISCONNECT and wait for the connection to close."""
        rc = None
        if reasoncode is not None:
            from paho.mqtt.reasoncodes import ReasonCode
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reasoncode)
        self.c.disconnect(reasoncode=rc, properties=properties)
        self.wait_disconnected(timeout)
        self._stop_loop()

    def drop(self, timeout: float = TIMEOUT):
        """Close the TCP connection without DISCONNECT (so the will fires)."""
        sock = self.c.socket()
        assert sock is not None, "not connected"
        import socket as _s
        try:
            sock.shutdown(_s.SHUT_RDWR)
        except OSError:
            pass
        self.wait_disconnected(timeout)
        self._stop_loop()

    def _stop_loop(self):
        if self._loop_started:
            self.c.loop_stop()
            self._loop_started = False

    def close(self):
        """Teardown: disconnect if connected, stop the network thread."""
        try:
            if self.c.is_connected():
                self.c.disconnect()
                self.disconnected.wait(2)
        except Exception:  # noqa: BLE001 - teardown must go on
            pass
        self._stop_loop()
