"""FastClient (edge/mqtt/fastclient.py): paho with batched socket reads and writes.

A scripted broker (a listening socket driven by the test) makes the TCP side exact: many packets
in one segment, a packet cut across reads, a connection dropped with bytes still buffered. Real
mosquitto runs check the same over plain TCP and TLS, in both directions.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from seqcast.edge.mqtt.client import FastClient, compatible
from tls import OPENSSL, make_pki, mosquitto_lines

CONNACK = b"\x20\x02\x00\x00"


def _remaining(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_packet(topic: str, payload: bytes, qos: int = 0, mid: int = 0) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | qos << 1]) + _remaining(len(body)) + body


def _read_packet(conn: socket.socket) -> bytes:
    """One whole MQTT packet from `conn` (fixed header included)."""
    head = conn.recv(1)
    if not head:
        raise ConnectionError("closed")
    n, mult, raw = 0, 1, b""
    while True:
        b = conn.recv(1)
        raw += b
        n += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < n:
        body += conn.recv(n - len(body))
    return head + raw + body


class ScriptedBroker:
    """Accepts connections; each `script(conn, index)` answers one connection's CONNECT."""

    def __init__(self, script: Callable[[socket.socket, int], None]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.script = script
        self.connections = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            index, self.connections = self.connections, self.connections + 1
            try:
                with conn:
                    assert _read_packet(conn)[0] == 0x10  # CONNECT
                    self.script(conn, index)
            except (OSError, AssertionError) as exc:
                self.errors.append(exc)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def scripted() -> Iterator[Callable[[Callable[[socket.socket, int], None]], ScriptedBroker]]:
    made: list[ScriptedBroker] = []

    def make(script: Callable[[socket.socket, int], None]) -> ScriptedBroker:
        made.append(ScriptedBroker(script))
        return made[-1]

    yield make
    for b in made:
        b.close()


def _hold(conn: socket.socket, seconds: float = 5.0) -> None:
    conn.settimeout(seconds)
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


def send_then_hold(data: bytes) -> Callable[[socket.socket, int], None]:
    def script(conn: socket.socket, index: int) -> None:
        conn.sendall(data)
        _hold(conn)

    return script


class Received:
    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.items.append((msg.topic, bytes(msg.payload)))

    def wait(self, n: int, timeout: float = 10.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.items) < n:
            time.sleep(0.01)
        with self.lock:
            return list(self.items)


def _client(**kwargs: Any) -> FastClient:
    return FastClient(CallbackAPIVersion.VERSION2, client_id=f"fc-{time.monotonic_ns()}", **kwargs)


@pytest.fixture
def count_recv(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts paho's own `_sock_recv` calls: the real socket reads FastClient makes."""
    calls = [0]
    real = paho.Client._sock_recv

    def counting(self: paho.Client, bufsize: int) -> bytes:
        calls[0] += 1
        return real(self, bufsize)

    monkeypatch.setattr(paho.Client, "_sock_recv", counting)
    return calls


def test_paho_has_what_fastclient_overrides() -> None:
    assert compatible()


def test_a_burst_in_one_segment_arrives_whole_and_in_order(
    scripted: Any, count_recv: list[int]
) -> None:
    big = bytes(range(256)) * 800  # 200 KiB: more than one READ_SIZE
    burst = [publish_packet(f"s/{i}", b"%d" % i) for i in range(2000)]
    burst.insert(700, publish_packet("s/big", big))
    broker = scripted(send_then_hold(CONNACK + b"".join(burst)))
    got = Received()
    c = _client()
    c.on_message = got
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        items = got.wait(2001)
    finally:
        c.disconnect()
        c.loop_stop()
    want = [(f"s/{i}", b"%d" % i) for i in range(2000)]
    want.insert(700, ("s/big", big))
    assert items == want
    # stock paho: 3 recv() per packet (6,000+); here a few per 64 KiB
    assert count_recv[0] < 100, count_recv[0]
    assert c._quickack or not hasattr(socket, "TCP_QUICKACK")  # the socket took it
    assert not broker.errors


def test_a_packet_cut_across_reads_is_reassembled(scripted: Any) -> None:
    packets = b"".join(publish_packet(f"s/{i}", b"x" * i) for i in range(50))

    def script(conn: socket.socket, _: int) -> None:
        conn.sendall(CONNACK)
        for i in range(0, len(packets), 7):  # 7-byte pieces: headers and bodies split
            conn.sendall(packets[i : i + 7])
            time.sleep(0.001)
        _hold(conn)

    broker = scripted(script)
    got = Received()
    c = _client()
    c.on_message = got
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        items = got.wait(50)
    finally:
        c.disconnect()
        c.loop_stop()
    assert items == [(f"s/{i}", b"x" * i) for i in range(50)]


def test_a_reconnect_drops_what_the_old_connection_left_in_the_buffer(scripted: Any) -> None:
    def script(conn: socket.socket, index: int) -> None:
        if index == 0:  # a burst the client will abandon after its first message
            conn.sendall(CONNACK + b"".join(publish_packet("old", b"%d" % i) for i in range(300)))
        else:
            conn.sendall(CONNACK + b"".join(publish_packet("new", b"%d" % i) for i in range(10)))
        _hold(conn)

    broker = scripted(script)
    got = Received()
    c = _client()
    buffered_after_close: list[int] = []

    def on_message(client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        got(client, userdata, msg)
        if msg.topic == "old":
            client.reconnect()  # closes the socket with ~299 packets still in the buffer
            buffered_after_close.append(client.buffered())

    c.on_message = on_message
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        items = got.wait(11)
        time.sleep(0.2)  # anything stale would show up now
    finally:
        c.disconnect()
        c.loop_stop()
    assert items[0] == ("old", b"0")
    assert items[1:] == [("new", b"%d" % i) for i in range(10)]
    assert buffered_after_close == [0]


# -- through a real mosquitto: both directions, plain and TLS ---------------------------------


def _round_trip(port: int, n: int, qos: int, tls: dict[str, Any] | None = None) -> None:
    """A FastClient publishes n messages in one wake_once() block; another receives them."""
    got, subscribed = Received(), threading.Event()
    sub, pub = _client(), _client()
    for c in (sub, pub):
        if tls:
            c.tls_set(**tls)
    sub.on_message = got
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("fc/#", qos=qos)
    sub.connect("127.0.0.1", port)
    sub.loop_start()
    pub.max_inflight_messages_set(0)  # 0: no limit
    pub.max_queued_messages_set(0)
    published: list[int] = []
    pub.on_publish = lambda c, u, mid, rc, p: published.append(mid)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        assert subscribed.wait(10)
        with pub.wake_once():
            infos = [pub.publish(f"fc/{i % 7}", b"m%05d" % i, qos=qos) for i in range(n)]
        assert all(i.rc == paho.MQTT_ERR_SUCCESS for i in infos)
        infos[-1].wait_for_publish(10)
        assert infos[-1].is_published()
        items = got.wait(n, timeout=20)
    finally:
        for c in (pub, sub):
            c.disconnect()
            c.loop_stop()
    assert items == [(f"fc/{i % 7}", b"m%05d" % i) for i in range(n)]
    assert sorted(published) == sorted(i.mid for i in infos)  # on_publish once per message


# mosquitto drops QoS 1 messages for a client beyond 1,000 queued ones by default
ROOMY = ["max_queued_messages 100000"]


@pytest.mark.broker
@pytest.mark.parametrize("qos", [0, 1])
def test_mosquitto_round_trip(make_broker: Any, qos: int) -> None:
    _round_trip(make_broker(ROOMY).port, 3000, qos)


@pytest.mark.broker
def test_mosquitto_round_trip_over_tls(make_broker: Any, tmp_path: Path) -> None:
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    pki = make_pki(tmp_path / "pki")
    b = make_broker([*mosquitto_lines(pki, require_certificate=False), *ROOMY])
    _round_trip(b.port, 3000, 1, tls={"ca_certs": str(pki.ca)})


def test_qos0_info_waits_and_reports_like_paho(scripted: Any) -> None:
    broker = scripted(send_then_hold(CONNACK))
    c = _client()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        info = c.publish("a/b", b"x", qos=0)
        info.wait_for_publish(5)
        assert info.is_published() and info.rc == paho.MQTT_ERR_SUCCESS
        rc, mid = info  # still the (rc, mid) tuple of paho's MQTTMessageInfo
        assert (rc, mid) == (paho.MQTT_ERR_SUCCESS, info.mid)
        with pytest.raises(ValueError):
            c.publish("a/+", b"x")
    finally:
        c.disconnect()
        c.loop_stop()
