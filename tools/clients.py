"""Small MQTT clients for tools (replay, demo, benchmarks): not used by the daemon itself."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


def _client(client_id: str | None, prefix: str) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"{prefix}-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )


class Publisher:
    """Connects once, publishes in order, and on `close` waits until the broker has everything."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str | None = None,
        max_inflight: int = 1000,
        connect_timeout: float = 10.0,
    ):
        self._client = _client(client_id, "seqcast-pub")
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._connected = threading.Event()
        self._client.on_connect = lambda c, u, f, rc, p: (
            self._connected.set() if not rc.is_failure else None
        )
        self._client.connect(host, port, keepalive=60)
        self._client.loop_start()
        if not self._connected.wait(connect_timeout):
            self._client.loop_stop()
            raise ConnectionError(
                f"no MQTT connection to {host}:{port} within {connect_timeout:.0f} s"
            )
        self._last: paho.MQTTMessageInfo | None = None
        self.sent = 0

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        self._last = info
        self.sent += 1

    def close(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if self._last is not None:
            self._last.wait_for_publish(timeout)
        # QoS 1/2: wait until nothing is in flight any more
        while self._client._out_messages and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        self._client.disconnect()
        self._client.loop_stop()


class Subscriber:
    """Calls `on_message(topic, payload)` from paho's thread for every message on `topic`."""

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        on_message: Callable[[str, bytes], None],
        qos: int = 1,
        client_id: str | None = None,
    ):
        self._client = _client(client_id, "seqcast-sub")
        self._subscribed = threading.Event()

        def connected(c: paho.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
            if not rc.is_failure:
                c.subscribe(topic, qos=qos)

        def message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
            try:
                on_message(msg.topic, bytes(msg.payload))
            except Exception:  # a tool's callback must not kill paho's thread
                log.exception("message handler failed for %s", msg.topic)

        self._client.on_connect = connected
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = message
        self._client.connect(host, port, keepalive=60)
        self._client.loop_start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
