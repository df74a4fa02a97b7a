"""The outgoing side of the MQTT link: forecasts, and acknowledging inputs once they are safe.

A batch's forecasts are handed to paho; the `AckGate` acknowledges the batch's inputs only when
the broker has acknowledged every forecast made from them and before them, in arrival order.
paho's queue is unbounded; what is pending is bounded by the daemon (`pending_count`,
`wait_for_acks`: backpressure), so a forecast is never dropped for lack of room.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from seqcast.edge.counters import CounterView
from seqcast.edge.mqtt.configure import wake_once
from seqcast.edge.mqtt.delivery import AckGate, InboundMessage
from seqcast.edge.ratelimit import RateLimitedLog

_Callback = TypeVar("_Callback", bound=Callable[..., None])


def guarded(method: _Callback) -> _Callback:
    """Nothing raised in a paho callback may reach paho: count it, log it rate-limited."""

    @functools.wraps(method)
    def guarded_call(self: Outgoing, *args: Any) -> None:
        try:
            method(self, *args)
        except Exception as exc:
            self.counters.inc("callback_errors")
            name = method.__name__
            self._ratelog(name, "error in MQTT callback %s: %r", name, exc, level=logging.ERROR)

    return guarded_call  # type: ignore[return-value]


class Outgoing:
    """Mixin of `MqttLink`: the attributes below are set by its constructor."""

    _client: paho.Client
    counters: CounterView
    _ratelog: RateLimitedLog
    _gate: AckGate
    _track_acks: bool
    _puback: threading.Event

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Hand a message to paho; False when it was neither sent nor queued."""
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            self.counters.inc("publish_failed")
            self._ratelog("publish-invalid", "cannot publish to %r: %s", topic, exc)
            return False
        rc = info.rc
        # QoS>0 messages stay in paho's queue while offline and go out after the reconnect.
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and qos):
            self.counters.inc("published")
            return True
        self.counters.inc("publish_failed")
        self._ratelog("publish-failed", "not published to %r: %s", topic, paho.error_string(rc))
        return False

    def publish_batch(
        self,
        forecasts: list[tuple[str, bytes]],
        inputs: list[InboundMessage],
        qos: int,
        retain: bool,
        tag: int | None = None,
    ) -> None:
        """Publish a batch's forecasts; its inputs are acknowledged once the broker has them all
        (and those of every earlier batch). `tag` numbers the batch for `acked_tag`.

        paho is never called with our lock held: its network thread holds its own locks while it
        reports PUBACKs, and taking ours then could deadlock.
        """
        self._track_acks = qos > 0
        sent: list[tuple[int, str, bytes]] = []
        published = 0
        client = self._client
        with wake_once(client):
            for topic, payload in forecasts:
                try:
                    info = client.publish(topic, payload, qos=qos, retain=retain)
                except (ValueError, TypeError) as exc:
                    self.counters.inc("publish_failed")
                    self._ratelog("publish-invalid", "cannot publish to %r: %s", topic, exc)
                    continue
                if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                    # paho's queue is unbounded (the daemon bounds what is pending instead), so
                    # this is a client that cannot take any message: count it, never hide it
                    self.counters.inc("outbox_overflow")
                    why = paho.error_string(info.rc)
                    self._ratelog("outbox-full", "forecast for %r dropped: %s", topic, why)
                    continue
                published += 1
                mid = getattr(info, "mid", None)
                if qos and mid is not None:
                    sent.append((mid, topic, payload))
        self.counters.inc("published", published)  # once per batch: it takes a lock
        self._gate.register(sent, [(m.mid, m.qos) for m in inputs if m.qos], qos, retain, tag)
        self._release()

    def pending_forecasts(self) -> list[tuple[str, bytes, int, bool]]:
        """Forecasts handed to paho that the broker has not acknowledged, oldest first."""
        return self._gate.pending_list()

    def acked_tag(self) -> int:
        """The highest `tag` of a batch whose forecasts the broker has all acknowledged."""
        return self._gate.released_tag

    def pending_count(self) -> int:
        """How many forecasts the broker has not acknowledged yet (cheap: no copy)."""
        return len(self._gate.pending)

    def wait_for_acks(self, timeout: float) -> None:
        """Sleep until the broker acknowledges a forecast, or `timeout` s (backpressure)."""
        self._puback.wait(timeout)
        self._puback.clear()

    def _release(self) -> None:
        """Acknowledge the inputs of every complete batch at the head, in arrival order."""
        gate = self._gate
        with gate.ack_lock:
            with gate.lock:
                inputs = gate.ready()
            for mid, qos in inputs:
                self._client.ack(mid, qos)
        if inputs:
            self.counters.inc("acked", len(inputs))

    @guarded
    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        # QoS 0 forecasts are never registered: no race to remember an early PUBACK for
        if self._gate.acked(mid, early=self._track_acks):
            self._release()
            self._puback.set()
