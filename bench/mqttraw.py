"""Just enough MQTT 3.1.1 over a raw socket for fast benchmark clients (no paho: the load
generators and counters must not be the bottleneck they are measuring).

QoS 0 and QoS 1 publishing (PUBACKs are read and discarded by a drain thread), subscribing, and a
packet reader that yields (first byte, body) for every packet in whatever the socket delivers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

CONNECT, CONNACK, PUBLISH, PUBACK, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 8, 9


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("!H", len(b)) + b


def publish_packet(topic: str | bytes, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = _str(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


def parse_publish(first: int, body: bytes | memoryview) -> tuple[str, bytes]:
    n = (body[0] << 8) | body[1]
    topic = bytes(body[2 : 2 + n]).decode()
    start = 2 + n + (2 if first & 0x06 else 0)
    return topic, bytes(body[start:])


class RawClient:
    def __init__(self, host: str, port: int, client_id: str, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        var = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", 0)  # clean session, no keepalive
        body = var + _str(client_id)
        self.sock.sendall(bytes([CONNECT << 4]) + _varint(len(body)) + body)
        self._buf, self._pos = b"", 0
        first, ack = next(self.packets())
        if first >> 4 != CONNACK or ack[1] != 0:
            raise ConnectionError(f"MQTT connect refused: {bytes(ack)!r}")
        self._next_id = 0

    def packet_id(self) -> int:
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def subscribe(self, topic: str, qos: int = 0) -> list[tuple[str, bytes]]:
        """Subscribe and wait for SUBACK; returns PUBLISHes (retained ones) that came first."""
        body = struct.pack("!H", 1) + _str(topic) + bytes([qos])
        self.sock.sendall(bytes([0x82]) + _varint(len(body)) + body)
        early = []
        for first, b in self.packets():
            if first >> 4 == SUBACK:
                return early
            if first >> 4 == PUBLISH:
                early.append(parse_publish(first, b))
        raise ConnectionError("connection closed before SUBACK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def packets(self) -> Iterator[tuple[int, memoryview]]:
        """(first byte, body) of each packet as it arrives; ends when the socket closes.

        A new generator continues where the previous one stopped (`_buf`, `_pos`)."""
        while True:
            data, i = self._buf, self._pos
            n = len(data)
            view = memoryview(data)
            while True:
                j, length, mult = i + 1, 0, 1
                while j < n:
                    byte = data[j]
                    length += (byte & 127) * mult
                    mult <<= 7
                    j += 1
                    if byte < 128:
                        break
                else:
                    break  # header incomplete
                if j + length > n:
                    break
                self._pos = j + length  # consumed, even if the caller stops here
                yield data[i], view[j : j + length]
                i = j + length
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                return
            self._buf, self._pos = data[i:] + chunk, 0

    def drain_in_background(self) -> threading.Thread:
        """Read and drop everything (PUBACKs of a QoS 1 publisher), counting bytes in
        `self.drained`: a PUBACK is 4 bytes. Closing a socket with unread data would reset the
        connection and lose what the broker had not read yet."""
        self.drained = 0

        def drain() -> None:
            try:
                while chunk := self.sock.recv(1 << 16):
                    self.drained += len(chunk)
            except OSError:
                pass

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        return t

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")  # DISCONNECT
        self.sock.close()


class StatusWatcher:
    """Follows a retained JSON status topic (the daemon's `seqcast/<id>/status`) in a thread."""

    def __init__(self, host: str, port: int, topic: str):
        self.topic = topic
        self.latest: dict[str, Any] = {}
        self.seen = 0
        self._cond = threading.Condition()
        self._client = RawClient(host, port, f"bench-status-{time.monotonic_ns() % 10**9}")
        self._client.sock.settimeout(None)
        for _, payload in self._client.subscribe(topic, 0):
            self._update(payload)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _update(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        with self._cond:
            self.latest = doc
            self.seen += 1
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            for first, body in self._client.packets():
                if first >> 4 == PUBLISH:
                    self._update(parse_publish(first, body)[1])
        except OSError:
            pass

    def wait(self, predicate: Any, timeout: float) -> dict[str, Any] | None:
        """The first status for which predicate(status) holds, or None after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (self.latest and predicate(self.latest)):
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.latest

    def fresh(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next status published from now on (counters that include everything so far)."""
        start = self.seen
        with self._cond:
            self._cond.wait_for(lambda: self.seen > start, timeout)
            return self.latest

    def close(self) -> None:
        self._client.close()
