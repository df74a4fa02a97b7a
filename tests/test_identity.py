"""One identity per device: the default client id, and a session takeover said in one line.

Two clients with one id kick each other off the broker forever. With MQTT 5 a broker may say so
(DISCONNECT 0x8E "Session taken over"; mosquitto from 2.0.15); otherwise it just closes the
socket, and `TakeoverDetector` recognises the pattern. Both paths run against real sockets: a
real mosquitto for the fight, and a scripted MQTT 5 server for the 0x8E packet where the
installed mosquitto does not send it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from broker import MOSQUITTO, Broker
from seqcast.edge.config import MqttConfig, parse_config
from seqcast.edge.config.files import default_client_id
from seqcast.edge.mqtt.diagnose import TakeoverDetector, takeover_text

LINE = (
    "another client with id 'dev-1' took over the session "
    "(each device needs its own mqtt.client_id)"
)


# -- the default client id -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hostname", "expected"),
    [
        ("raspberrypi", "seqcast-raspberrypi"),
        ("Pi-Kitchen.local", "seqcast-pi-kitchen"),
        ("pump_3.plant.example.org", "seqcast-pump_3"),
        ("weird host+#/ä", "seqcast-weird-host"),
        ("", "seqcast-edge"),
        ("...", "seqcast-edge"),
        ("x" * 300, "seqcast-" + "x" * 120),
    ],
)
def test_default_client_id_from_a_host_name(hostname: str, expected: str) -> None:
    assert default_client_id(hostname) == expected
    cfg = parse_config({"model": {"path": "m"}, "mqtt": {"client_id": expected}})
    assert cfg.mqtt.client_id == expected  # always passes the config's own client id rule


def test_default_client_id_of_this_machine() -> None:
    host_id = default_client_id()
    assert re.fullmatch(r"seqcast-[a-z0-9_-]{1,120}", host_id), host_id
    assert host_id == default_client_id(socket.gethostname())


def test_an_unset_or_empty_client_id_becomes_the_default() -> None:
    host_id = default_client_id()
    model = {"path": "m"}
    for mqtt in ({}, {"client_id": ""}):  # unset or empty: derived from the machine
        cfg = parse_config({"model": model, "mqtt": mqtt})
        assert cfg.mqtt.client_id == host_id
        assert cfg.status_topic == f"seqcast/{host_id}/status"
    cfg = parse_config({"model": model, "mqtt": {"client_id": "pump-3"}})
    assert cfg.mqtt.client_id == "pump-3" and cfg.status_topic == "seqcast/pump-3/status"
    assert MqttConfig().client_id == ""  # only parse_config knows the machine


# -- the one line --------------------------------------------------------------------------------


def disconnect_reason(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.DISCONNECT, name)


def test_takeover_text_for_the_mqtt5_reason_only() -> None:
    taken = disconnect_reason("Session taken over")
    assert taken.value == 0x8E
    assert takeover_text(taken, "dev-1") == LINE
    assert takeover_text(0x8E, "dev-1") == LINE and takeover_text("Session taken over", "dev-1")
    for other in ("Unspecified error", "Keep alive timeout", "Server shutting down"):
        assert takeover_text(disconnect_reason(other), "dev-1") is None
    assert takeover_text(None, "dev-1") is None and takeover_text(True, "dev-1") is None


def test_detector_says_probably_after_three_quick_closes_in_a_row() -> None:
    closed = disconnect_reason("Unspecified error")
    d = TakeoverDetector("dev-1")
    lines = []
    for t in (0.0, 2.0, 4.0, 6.0):
        d.connected(now=t)
        lines.append(d.disconnected(closed, now=t + 1.0))
    assert lines[:2] == [None, None]
    assert lines[3] is not None and "closed 4 connections in a row" in lines[3]
    assert lines[2] is not None and lines[2].startswith("probably another client with id 'dev-1'")
    assert "took over the session" in lines[2] and "mqtt.client_id" in lines[2]
    assert "\n" not in lines[2]


def test_detector_ignores_what_is_not_a_takeover() -> None:
    closed = disconnect_reason("Unspecified error")
    d = TakeoverDetector("dev-1", window_s=5.0, repeats=3)
    d.connected(now=0.0)
    assert d.disconnected(closed, now=1.0) is None
    d.connected(now=2.0)
    assert d.disconnected(closed, now=3.0) is None and d.streak == 2
    d.connected(now=4.0)
    assert d.disconnected(closed, now=60.0) is None and d.streak == 0  # it lasted: a real drop
    for _ in range(2):
        d.connected(now=100.0)
        d.disconnected(closed, now=101.0)
    d.connected(now=102.0)  # the broker gave a reason of its own: not a takeover
    assert d.disconnected(disconnect_reason("Keep alive timeout"), now=103.0) is None
    assert d.streak == 0
    for _ in range(2):
        d.connected(now=200.0)
        d.disconnected(closed, now=201.0)
    assert d.disconnected(closed, now=202.0) is None and d.streak == 0  # closed before CONNACK


def test_detector_is_certain_at_once_with_the_mqtt5_reason() -> None:
    d = TakeoverDetector("dev-1")
    d.connected(now=0.0)
    assert d.disconnected(disconnect_reason("Session taken over"), now=3600.0) == LINE


# -- real sockets --------------------------------------------------------------------------------


def _read_packet(conn: socket.socket) -> bytes:
    head = conn.recv(1)
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return head + body


def test_paho_hands_the_mqtt5_takeover_reason_to_takeover_text() -> None:
    """A scripted MQTT 5 server accepts the client, then disconnects it with 0x8E, on the wire."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            assert _read_packet(conn)[0] >> 4 == 1  # CONNECT
            conn.sendall(bytes([0x20, 3, 0, 0, 0]))  # CONNACK: no session, success, no props
            time.sleep(0.2)
            conn.sendall(bytes([0xE0, 2, 0x8E, 0]))  # DISCONNECT: Session taken over
            time.sleep(0.5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    seen: list[tuple[Any, Any]] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="dev-1", protocol=paho.MQTTv5)

    def on_disconnect(c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        seen.append((flags, reason))
        done.set()

    client.on_disconnect = on_disconnect
    try:
        client.connect("127.0.0.1", port, 60)
        client.loop_start()
        assert done.wait(10), "no disconnect"
    finally:
        client.loop_stop()
        server.close()
    flags, reason = seen[0]
    assert flags.is_disconnect_packet_from_server and str(reason) == "Session taken over"
    assert takeover_text(reason, "dev-1") == LINE


def _mosquitto_version() -> tuple[int, ...]:
    out = subprocess.run([str(MOSQUITTO), "-h"], capture_output=True, text=True).stdout
    found = re.search(r"version (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in found.groups()) if found else (0,)


class Contender:
    """A paho client that reconnects like the daemon's and reports to a `TakeoverDetector`."""

    def __init__(self, broker: Broker, client_id: str, protocol: str) -> None:
        self.detector = TakeoverDetector(client_id)
        self.reasons: list[str] = []
        self.lines: list[str] = []
        self.said = threading.Event()
        v5 = protocol == "5"
        kwargs: dict[str, Any] = {} if v5 else {"clean_session": False}
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            **kwargs,
        )
        self.client.reconnect_delay_set(0.2, 0.5)  # type: ignore[arg-type]
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(broker.host, broker.port, 60)
        self.client.loop_start()

    def _on_connect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self.detector.connected()

    def _on_disconnect(self, c: Any, u: Any, flags: Any, reason: Any, props: Any) -> None:
        self.reasons.append(str(reason))
        line = self.detector.disconnected(reason)
        if line is not None:
            self.lines.append(line)
            self.said.set()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_clients_with_one_id_on_a_real_broker(broker: Broker, protocol: str) -> None:
    client_id = f"same-{uuid.uuid4().hex[:8]}"
    first = Contender(broker, client_id, protocol)
    time.sleep(0.5)
    second = Contender(broker, client_id, protocol)
    try:
        assert first.said.wait(15), f"no takeover line; disconnects: {first.reasons}"
        reasons = list(first.reasons)  # before stop(): our own disconnect is not the broker's
    finally:
        second.stop()
        first.stop()
    line = first.lines[0]
    assert f"another client with id {client_id!r} took over the session" in line
    assert line.endswith("(each device needs its own mqtt.client_id)") and "\n" not in line
    if protocol == "5" and _mosquitto_version() >= (2, 0, 15):
        assert reasons[0] == "Session taken over" and not line.startswith("probably")
    else:  # MQTT 3.1.1, or a mosquitto that just closes the socket: the pattern tells
        assert set(reasons) == {"Unspecified error"} and line.startswith("probably")
