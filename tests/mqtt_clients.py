"""Persistent-session paho clients for fault-injection tests (they survive broker restarts)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.waiting import eventually


def _client(client_id: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
    c.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    return c


class Collector:
    """Subscribes with QoS 1 in a persistent session; records (arrival time, topic, payload), and
    in `redelivered` the indexes of messages that came with the DUP flag (the broker's retry)."""

    def __init__(self, host: str, port: int, topics: list[str], client_id: str | None = None):
        self.messages: list[tuple[float, str, bytes]] = []
        self.redelivered: set[int] = set()
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = _client(client_id or f"collector-{uuid.uuid4().hex[:8]}")

        def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            if not rc.is_failure:
                c.subscribe([(t, 1) for t in topics])

        def on_message(c: Any, u: Any, msg: paho.MQTTMessage) -> None:
            with self.lock:
                if msg.dup:
                    self.redelivered.add(len(self.messages))
                self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload)))

        self.client.on_connect = on_connect
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = on_message
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "collector could not subscribe"

    def forecasts(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for _, t, p in self.messages if "/forecasts/" in t]

    def counters(self) -> dict[str, Any]:
        """The counters of the newest status message received ({} before the first)."""
        with self.lock:
            docs = [json.loads(p) for _, t, p in self.messages if t.endswith("/status")]
        return docs[-1]["counters"] if docs else {}

    def wait_for(self, predicate: Any, timeout: float) -> bool:
        return eventually(predicate, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Sender:
    """Publishes QoS 1 in a persistent session; `accepted` holds what the broker acknowledged.

    With `fallbacks` ((host, port) of other nodes of one cluster) it moves to the next broker
    whenever a connection drops or an attempt fails, as a device would; paho then sends again,
    in order, whatever was not acknowledged. `connections` lists where each connection went.
    """

    def __init__(self, host: str, port: int, fallbacks: Sequence[tuple[str, int]] = ()):
        self.client = _client(f"sender-{uuid.uuid4().hex[:8]}")
        self.brokers = [(host, port), *fallbacks]
        self.connections: list[tuple[str, int]] = []
        self.connected = threading.Event()
        self.lock = threading.Lock()
        self.by_mid: dict[int, Any] = {}
        self.early: set[int] = set()  # PUBACKs that overtook the bookkeeping in send()
        self.accepted: list[Any] = []

        def on_publish(c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
            with self.lock:
                key = self.by_mid.pop(mid, None)
                if key is None:
                    self.early.add(mid)
                else:
                    self.accepted.append(key)

        def on_connect(c: Any, u: Any, f: Any, rc: Any, p: Any) -> None:
            if not rc.is_failure:
                self.connections.append((c._host, c._port))
                self.connected.set()

        def move_on(c: Any, *args: Any) -> None:  # between attempts: paho's next one goes there
            at = self.brokers.index((c._host, c._port))
            c._host, c._port = self.brokers[(at + 1) % len(self.brokers)]

        self.client.on_connect = on_connect
        self.client.on_connect_fail = move_on
        self.client.on_disconnect = move_on
        self.client.on_publish = on_publish
        self.client.connect(host, port)
        self.client.loop_start()
        assert self.connected.wait(10)

    def send(self, topic: str, payload: bytes, key: Any) -> None:
        # never hold our lock while calling paho: its thread holds its own when it calls on_publish
        info = self.client.publish(topic, payload, qos=1)
        with self.lock:
            if info.mid in self.early:
                self.early.discard(info.mid)
                self.accepted.append(key)
            else:
                self.by_mid[info.mid] = key

    def wait_all_accepted(self, n: int, timeout: float) -> bool:
        def accepted() -> bool:
            with self.lock:
                return len(self.accepted) >= n

        return eventually(accepted, timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_mqtt_link(template: str, *, maxsize: int = 0, factory: Any = None, **flat: Any) -> Any:
    """An `MqttLink` from flat keyword settings (`host`, `tls_ca_file`, `password`,
    `status_topic`, ...), built into the `[mqtt]` section the daemon would pass."""
    from seqcast.edge.config import MqttConfig, TlsConfig, TopicTemplate
    from seqcast.edge.mqtt import MqttLink

    tls = {k.removeprefix("tls_"): flat.pop(k) for k in list(flat) if k.startswith("tls_")}
    password = flat.pop("password", None)
    flat.setdefault("client_id", f"link-{uuid.uuid4().hex[:8]}")
    status_topic = flat.pop("status_topic", "seqcast/seqcast-edge/status")
    cfg = MqttConfig(**flat, tls=TlsConfig(**tls))
    return MqttLink(
        cfg,
        TopicTemplate(template),
        status_topic=status_topic,
        password=password,
        inbox_size=maxsize,
        client_factory=factory,
    )
