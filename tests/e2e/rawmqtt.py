"""Hand-built MQTT packets over a plain socket, for what client libraries will
not send: malformed packets, protocol violations, exact CONNACK codes.

Builders return bytes; `RawClient` sends them and reads whole packets back
with timeouts, and tells a closed connection apart from a silent one.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

TIMEOUT = 5.0

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)
NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
         7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
         12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# property identifiers (MQTT 5.0, 2.2.2.2)
P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE = 0x01, 0x02, 0x03
P_RESPONSE_TOPIC, P_CORRELATION_DATA, P_SUBSCRIPTION_ID = 0x08, 0x09, 0x0B
P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEP_ALIVE = 0x11, 0x12, 0x13
P_REASON_STRING, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS = 0x1F, 0x21, 0x22, 0x23
P_MAXIMUM_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY, P_MAXIMUM_PACKET_SIZE = 0x24, 0x25, 0x26, 0x27
P_WILDCARD_SUB_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_SUB_AVAILABLE = 0x28, 0x29, 0x2A
P_WILL_DELAY = 0x18
P_AUTH_METHOD, P_AUTH_DATA, P_REQUEST_PROBLEM_INFO = 0x15, 0x16, 0x17
P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO, P_SERVER_REFERENCE = 0x19, 0x1A, 0x1C

_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_U16 = {0x13, 0x21, 0x22, 0x23}
_U32 = {0x02, 0x11, 0x18, 0x27}
_VARINT = {0x0B}
_STR = {0x03, 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F}
_BIN = {0x09, 0x16}
_PAIR = {0x26}


# ------------------------------------------------------------------ encoding
def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u16(n: int) -> bytes:
    return struct.pack(">H", n)


def u32(n: int) -> bytes:
    return struct.pack(">I", n)


def string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return u16(len(b)) + b


def prop(pid: int, value) -> bytes:
    """One property, encoded by its identifier's type."""
    if pid in _BYTE:
        return bytes([pid, value])
    if pid in _U16:
        return bytes([pid]) + u16(value)
    if pid in _U32:
        return bytes([pid]) + u32(value)
    if pid in _VARINT:
        return bytes([pid]) + varint(value)
    if pid in _STR or pid in _BIN:
        return bytes([pid]) + string(value)
    if pid in _PAIR:
        return bytes([pid]) + string(value[0]) + string(value[1])
    raise ValueError(f"unknown property {pid:#x}")


def properties(*items: tuple[int, object]) -> bytes:
    body = b"".join(prop(p, v) for p, v in items)
    return varint(len(body)) + body


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(client_id: str | bytes = "", version: int = 4, clean: bool = True,
            keepalive: int = 60, will: tuple | None = None, username=None, password=None,
            props: bytes | None = None, will_props: bytes | None = None,
            protocol_name: bytes | None = None, reserved_flag: bool = False) -> bytes:
    """CONNECT. version 3 = MQTT 3.1 (MQIsdp), 4 = 3.1.1, 5 = 5.0.
    will = (topic, payload, qos, retain)."""
    name = protocol_name if protocol_name is not None else (b"MQIsdp" if version == 3 else b"MQTT")
    flags = 0x02 if clean else 0
    if reserved_flag:
        flags |= 0x01
    payload = string(client_id)
    if will is not None:
        topic, wpayload, wqos, wretain = will
        flags |= 0x04 | (wqos << 3) | (0x20 if wretain else 0)
        if version == 5:
            payload += will_props if will_props is not None else b"\x00"
        payload += string(topic) + string(wpayload)
    if username is not None:
        flags |= 0x80
        payload += string(username)
    if password is not None:
        flags |= 0x40
        payload += string(password)
    var = string(name) + bytes([version, flags]) + u16(keepalive)
    if version == 5:
        var += props if props is not None else b"\x00"
    return packet(0x10, var + payload)


def publish(topic: str | bytes, payload: bytes = b"", qos: int = 0, retain: bool = False,
            dup: bool = False, pid: int | None = None, version: int = 4,
            props: bytes | None = None) -> bytes:
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    body = string(topic)
    if qos > 0:
        body += u16(pid if pid is not None else 1)
    if version == 5:
        body += props if props is not None else b"\x00"
    return packet(first, body + payload)


def ack(kind: int, pid: int, version: int = 4, reason: int | None = None) -> bytes:
    """PUBACK / PUBREC / PUBREL / PUBCOMP."""
    first = (kind << 4) | (0x02 if kind == PUBREL else 0)
    body = u16(pid)
    if version == 5 and reason is not None:
        body += bytes([reason])
    return packet(first, body)


def subscribe(pid: int, filters: list[tuple[str | bytes, int]], version: int = 4,
              props: bytes | None = None, flags: int = 0x02) -> bytes:
    """filters: (filter, options byte: QoS | nl<<2 | rap<<3 | rh<<4)."""
    body = u16(pid)
    if version == 5:
        body += props if props is not None else b"\x00"
    for f, opts in filters:
        body += string(f) + bytes([opts])
    return packet(0x80 | flags, body)


def unsubscribe(pid: int, filters: list[str], version: int = 4) -> bytes:
    body = u16(pid)
    if version == 5:
        body += b"\x00"
    for f in filters:
        body += string(f)
    return packet(0xA2, body)


def pingreq() -> bytes:
    return b"\xc0\x00"


def disconnect(version: int = 4, reason: int | None = None, props: bytes | None = None) -> bytes:
    if version == 5 and (reason is not None or props is not None):
        body = bytes([reason or 0]) + (props if props is not None else b"")
        return packet(0xE0, body)
    return b"\xe0\x00"


# ------------------------------------------------------------------ decoding
def parse_properties(buf: bytes, i: int) -> tuple[list[tuple[int, object]], int]:
    n, i = read_varint(buf, i)
    end = i + n
    out = []
    while i < end:
        pid = buf[i]
        i += 1
        if pid in _BYTE:
            v, i = buf[i], i + 1
        elif pid in _U16:
            v, i = struct.unpack_from(">H", buf, i)[0], i + 2
        elif pid in _U32:
            v, i = struct.unpack_from(">I", buf, i)[0], i + 4
        elif pid in _VARINT:
            v, i = read_varint(buf, i)
        elif pid in _STR:
            v, i = read_string(buf, i)
            v = v.decode()
        elif pid in _BIN:
            v, i = read_string(buf, i)
        elif pid in _PAIR:
            k, i = read_string(buf, i)
            val, i = read_string(buf, i)
            v = (k.decode(), val.decode())
        else:
            raise ValueError(f"unknown property {pid:#x} in {buf!r}")
        out.append((pid, v))
    return out, end


def read_varint(buf: bytes, i: int) -> tuple[int, int]:
    mult, value = 1, 0
    for _ in range(4):
        b = buf[i]
        i += 1
        value += (b & 0x7F) * mult
        if not b & 0x80:
            return value, i
        mult *= 128
    raise ValueError("malformed variable byte integer")


def read_string(buf: bytes, i: int) -> tuple[bytes, int]:
    n = struct.unpack_from(">H", buf, i)[0]
    return buf[i + 2:i + 2 + n], i + 2 + n


@dataclass
class Packet:
    type: int
    flags: int
    body: bytes
    # the fixed header as received (type byte + Remaining Length bytes), for
    # checks of the encoding itself such as [MQTT-1.5.5-1]
    header: bytes = b""

    @property
    def name(self) -> str:
        return NAMES.get(self.type, str(self.type))

    def __repr__(self) -> str:
        return f"<{self.name} flags={self.flags:#x} body={self.body.hex()}>"

    # field accessors, per packet type
    def connack(self, version: int = 4) -> tuple[bool, int, dict]:
        assert self.type == CONNACK, self
        props = {}
        if version == 5 and len(self.body) > 2:
            plist, _ = parse_properties(self.body, 2)
            props = dict(plist)
        return bool(self.body[0] & 1), self.body[1], props

    def pid(self) -> int:
        return struct.unpack_from(">H", self.body, 0)[0]

    def reason(self) -> int:
        """Reason code of a 5.0 ack/DISCONNECT (0 when omitted)."""
        if self.type == DISCONNECT:
            return self.body[0] if self.body else 0
        return self.body[2] if len(self.body) > 2 else 0

    def suback_codes(self, version: int = 4) -> list[int]:
        i = 2
        if version == 5:
            _, i = parse_properties(self.body, i)
        return list(self.body[i:])

    def publish_fields(self, version: int = 4) -> dict:
        assert self.type == PUBLISH, self
        topic, i = read_string(self.body, 0)
        qos = (self.flags >> 1) & 3
        pid = None
        if qos:
            pid = struct.unpack_from(">H", self.body, i)[0]
            i += 2
        plist = []
        if version == 5:
            plist, i = parse_properties(self.body, i)
        return {"topic": topic.decode(errors="replace"), "qos": qos, "pid": pid,
                "retain": bool(self.flags & 1), "dup": bool(self.flags & 8),
                "props": plist, "payload": self.body[i:]}


class Closed(Exception):
    """The broker closed the connection."""


class RawClient:
    """A TCP connection that sends bytes and reads whole MQTT packets."""

    def __init__(self, host: str, port: int, timeout: float = TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from broker")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from broker") from None
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed()
        self.buf += chunk

    def recv(self, timeout: float = TIMEOUT) -> Packet:
        """The next packet; raises Closed or TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                mult, length, i = 1, 0, 1
                complete = False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + length:
                    first = self.buf[0]
                    header = self.buf[:i]
                    body = self.buf[i:i + length]
                    self.buf = self.buf[i + length:]
                    return Packet(first >> 4, first & 0x0F, body, header)
            self._fill(deadline)

    def expect(self, kind: int, timeout: float = TIMEOUT) -> Packet:
        """The next packet, which must be of type `kind`."""
        try:
            p = self.recv(timeout)
        except Closed:
            raise AssertionError(f"connection closed while waiting for {NAMES[kind]}") from None
        except TimeoutError:
            raise AssertionError(f"no {NAMES[kind]} within {timeout}s") from None
        assert p.type == kind, f"expected {NAMES[kind]}, got {p!r}"
        return p

    def wait_closed(self, timeout: float = TIMEOUT) -> list[Packet]:
        """Wait until the broker closes the connection; returns the packets it
        sent before closing. Fails if it is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            try:
                got.append(self.recv(max(deadline - time.monotonic(), 0.001)))
            except Closed:
                return got
            except TimeoutError:
                raise AssertionError(f"connection still open after {timeout}s; "
                                     f"received {got}") from None

    def receive_publishes(self, version: int = 4, n: int | None = None,
                          until: tuple[str, bytes] | None = None,
                          timeout: float = TIMEOUT) -> list[dict]:
        """PUBLISH packets in wire order, acknowledging each (PUBACK, or
        PUBREC then PUBCOMP for the PUBREL). Stops after `n` packets, or when
        the barrier `until=(topic, payload)` arrives (not included)."""
        deadline = time.monotonic() + timeout
        out: list[dict] = []
        while True:
            if n is not None and len(out) >= n:
                return out
            remaining = deadline - time.monotonic()
            try:
                p = self.recv(max(remaining, 0.001))
            except (TimeoutError, Closed) as e:
                raise AssertionError(f"{type(e).__name__} after {len(out)} PUBLISH: "
                                     f"{[(m['topic'], m['payload']) for m in out]}") from None
            if p.type == PUBREL:
                self.send(ack(PUBCOMP, p.pid(), version))
                continue
            assert p.type == PUBLISH, f"unexpected {p!r}"
            f = p.publish_fields(version)
            if f["qos"] == 1:
                self.send(ack(PUBACK, f["pid"], version))
            elif f["qos"] == 2:
                self.send(ack(PUBREC, f["pid"], version))
            if until is not None and (f["topic"], f["payload"]) == until:
                return out
            out.append(f)

    def still_open(self, timeout: float = 0.3) -> bool:
        """PINGREQ round trip: True if the broker answers PINGRESP."""
        try:
            self.send(pingreq())
            while True:
                p = self.recv(timeout)
                if p.type == PINGRESP:
                    return True
        except (Closed, TimeoutError, OSError):
            return False

    def connect(self, version: int = 4, expect_rc: int | None = 0, **kwargs) -> tuple:
        """Send CONNECT, read CONNACK: (session_present, rc, props)."""
        self.send(connect(version=version, **kwargs))
        ca = self.expect(CONNACK).connack(version)
        if expect_rc is not None:
            assert ca[1] == expect_rc, f"CONNACK rc {ca[1]:#x}, expected {expect_rc:#x}"
        return ca

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
