"""The MQTT link: the daemon's connection (its paho client is built by `fastclient`).

paho's network thread calls our callbacks; they only turn a message into an `InboundMessage` and
hand it over a bounded queue (`inbox.put_nowait`), counting what they drop. Nothing raised in a
callback reaches paho. Subscribing happens in `on_connect`, so every reconnect resubscribes; a
refused connection (bad credentials, not authorised) is not "connected": it is logged with the
broker's reason and paho retries with exponential backoff. The status topic carries a retained
JSON `{"state": "online"|"offline", "ts", <status_fields>, "counters"}`; the last will says
`offline` if the process dies.

paho's reconnect loop swallows why a connection attempt failed (`on_connect_fail` gets no
reason), and a broker that drops us before CONNACK (a TLS 1.3 broker rejecting our certificate,
a TLS-only port) is not even a failure to it. `diagnose` finds the reason: the exception paho is
handling, else one bounded probe that connects and does the TLS handshake the way paho does. It
lands in `last_error` and in one rate-limited log line per reason; never a password. A failed
attempt moves on to the next of `[mqtt] fallback_brokers`, if any (`failover.py`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from seqcast.edge.clock import ArrivalClock
from seqcast.edge.config import (
    InputConfig,
    MqttConfig,
    StateConfig,
    StreamsConfig,
    TopicTemplate,
)
from seqcast.edge.counters import Counters
from seqcast.edge.mqtt.births import Births
from seqcast.edge.mqtt.configure import build_client, connect_options
from seqcast.edge.mqtt.delivery import AckGate, InboundMessage
from seqcast.edge.mqtt.diagnose import TakeoverDetector, diagnose, probe
from seqcast.edge.mqtt.failover import Brokers, address
from seqcast.edge.mqtt.inbox import Inbox
from seqcast.edge.mqtt.outgoing import Outgoing, guarded
from seqcast.edge.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

STATUS_STATES = ("online", "offline")
_AUTH_REFUSALS = ("Not authorized", "Bad user name or password")


class MqttLink(Outgoing):
    """Connects, subscribes to `input_topic`, fills `inbox`, publishes forecasts and status."""

    def __init__(
        self,
        cfg: MqttConfig,
        input_topic: TopicTemplate,
        *,
        status_topic: str,
        password: str | None = None,
        counters: Counters | None = None,
        inbox_size: int = StateConfig().queue_size,
        max_stream_id_bytes: int = InputConfig().max_stream_id_bytes,
        topic_cache_size: int = StreamsConfig().max_streams,
        client_factory: Callable[..., paho.Client] | None = None,
        deploy_topic: str | None = None,
        status_fields: Callable[[], dict[str, Any]] | None = None,
        birth_topic: str | None = None,
    ) -> None:
        """`status_fields()`: what the status message says besides state, time and counters
        (the daemon's uptime, version, model...); called on whichever thread publishes it."""
        self.cfg = cfg
        self.input_topic = input_topic
        self.status_topic = status_topic
        self._status_fields = status_fields
        self.registry = counters if counters is not None else Counters()
        self.counters = self.registry.view("mqtt_")
        self.last_error: str | None = None  # latest problem; cleared by a successful connect
        self.inbox = Inbox(inbox_size)
        self._subscription = input_topic.subscription()
        # releases (seqcast-deploy push) arrive on their own topic and queue, never the decoder's
        self.deploy_topic = deploy_topic
        self.deploy_inbox: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._subscriptions = [(self._subscription, cfg.qos_in)]
        # topics that are never input: releases, and Home Assistant's birth message
        self._side: dict[str, Callable[[bytes], None]] = {}
        self.births = Births(self.registry)  # its `online` asks for every discovery config
        for topic, on_side in ((deploy_topic, self._on_release), (birth_topic, self.births.heard)):
            if topic is not None:
                self._subscriptions.append((topic, 1))
                self._side[topic] = on_side
        self._streams: dict[str, str] = {}  # topic -> stream, a cache of input_topic.stream_of
        self._topic_cache_size = topic_cache_size
        self._max_stream_id_bytes = max_stream_id_bytes
        self._puback = threading.Event()  # set by every forecast PUBACK: wakes a paused main loop
        self._connected = False
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self._started = self._stopping = self._input_stopped = False
        self._offline_info: paho.MQTTMessageInfo | None = None
        self._refused = False  # this attempt's CONNACK refusal is already reported
        self._gate = AckGate()
        self._track_acks = True
        self._ratelog = RateLimitedLog(log)
        self._takeover = TakeoverDetector(cfg.client_id)
        self._brokers = Brokers(cfg)  # host:port, then [mqtt] fallback_brokers (failover.py)
        self._arrival = ArrivalClock()
        # MQTT 5: the broker keeps at most this many unacknowledged QoS 1/2 messages in flight
        self._receive_maximum = inbox_size if inbox_size > 0 else 65535
        self._client = self._make_client(client_factory, password, status_topic)

    def _make_client(
        self,
        factory: Callable[..., paho.Client] | None,
        password: str | None,
        status_topic: str,
    ) -> paho.Client:
        client = build_client(self.cfg, password, status_topic, factory)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    # -- public API ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True between an accepted CONNACK and the next disconnect (never after a refusal)."""
        return self._connected

    @property
    def broker(self) -> str:
        """`host:port` of the broker the link is connected to (or trying)."""
        return address(self._brokers.current)

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    def start(self) -> None:
        """Connect in the background; paho's thread keeps reconnecting with backoff."""
        if self._started:
            raise RuntimeError("MqttLink.start() called twice")
        s = self.cfg
        self._started = True
        options = connect_options(s, self._receive_maximum)
        self._client.connect_async(s.host, s.port, keepalive=s.keepalive, **options)
        self._client.loop_start()
        tls = " with TLS" if s.tls.enabled else ""
        log.info("MQTT %s: connecting to %s%s as %r", s.protocol, self._brokers, tls, s.client_id)

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def next_batch(self, timeout: float, limit: int) -> list[InboundMessage]:
        """The messages waiting in the inbox (at most `limit`), after waiting up to `timeout` s."""
        return self.inbox.next_batch(timeout, limit)

    def take_deliveries(self) -> list[bytes]:
        """Release payloads that arrived on the deploy topic since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self.deploy_inbox.get_nowait())
            except queue.Empty:
                return out

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """One retained QoS 1 message (deploy events); paho queues it while disconnected."""
        try:
            self._client.publish(topic, payload, qos=1, retain=True)
        except (ValueError, TypeError) as exc:
            self._ratelog("retained", "cannot publish on %s: %s", topic, exc)

    def publish_status(self, state: str, counters: dict[str, int] | None = None) -> None:
        """Retained `{"state", "ts", "counters"}` on the status topic: every counter of the
        registry by default, so the first `online` has the same schema as every later one."""
        self._publish_status(state, counters)

    def ask_redelivery(self) -> None:
        """Drop the connection but keep the session: when paho reconnects, the broker delivers
        every message we have not acknowledged again (used after holding input for the clock)."""
        sock = self._client.socket()
        if isinstance(sock, socket.socket):  # paho's SocketLike; TLS sockets are socket.socket too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop_input(self) -> None:
        """Stop taking input before a shutdown, so the inbox can be drained.

        The subscription stays (a persistent session keeps collecting for the next start), and
        QoS 1 messages arriving from now on are left unacknowledged: the broker stops sending
        after its in-flight window and delivers them again in the next session.
        """
        self._input_stopped = True

    def stop(self, timeout: float = 5.0) -> None:
        """Publish retained `offline` (unless the caller just did), wait for it (bounded),
        disconnect, stop paho's thread."""
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self._connected:
            info = self._offline_info or self._publish_status("offline")
            try:
                if info is not None:
                    info.wait_for_publish(timeout)
                    if not info.is_published():
                        log.warning("offline status not acknowledged within %.1f s", timeout)
            except (ValueError, RuntimeError) as exc:
                log.warning("offline status not published: %s", exc)
        self._client.disconnect()
        self._client.loop_stop()
        self._connected = False
        self._subscribed.clear()
        log.debug("MQTT link stopped; counters %s", self.counters.as_dict())

    # -- internals; the callbacks run on paho's thread -----------------------------------------

    def _publish_status(
        self, state: str, counters: dict[str, int] | None = None
    ) -> paho.MQTTMessageInfo | None:
        if state not in STATUS_STATES:
            raise ValueError(f"status state must be one of {STATUS_STATES}, got {state!r}")
        counts = dict(counters) if counters is not None else self.registry.as_dict()
        doc: dict[str, Any] = {"state": state, "ts": round(time.time(), 3)}
        try:
            doc.update(self._status_fields() if self._status_fields is not None else {})
        except Exception as exc:  # a status without them beats no status
            self._ratelog("status-fields", "status fields unavailable: %r", exc)
        body = json.dumps({**doc, "counters": counts})
        try:
            info = self._client.publish(self.status_topic, body, qos=1, retain=True)
        except (ValueError, TypeError) as exc:
            self._ratelog("status", "cannot publish status: %s", exc)
            return None
        self._offline_info = info if state == "offline" else None
        return info

    @guarded
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        s, where = self.cfg, self.broker
        if reason.is_failure:
            self._connected, self._refused = False, True
            self.counters.inc("connect_failures")
            self.last_error = f"connection refused: {reason}"
            auth = "check mqtt.username and mqtt.password_file; "
            hint = (auth if str(reason) in _AUTH_REFUSALS else "") + self._brokers.retry_text()
            msg = "MQTT broker %s refused the connection: %s (%s)"
            self._ratelog(f"connect-refused:{where}", msg, where, reason, hint, level=logging.ERROR)
            self._brokers.advance(client)
            return
        self._refused, self._connected = False, True
        self.last_error = None
        self.counters.inc("connects")
        self._takeover.connected()
        present = bool(getattr(flags, "session_present", False))
        log.info("connected to MQTT broker %s (session present: %s)", where, present)
        if len(self._subscriptions) == 1:
            result, mid = client.subscribe(self._subscription, qos=s.qos_in)
        else:  # the input and the deploy topic in one SUBSCRIBE
            result, mid = client.subscribe(self._subscriptions)
        if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
            names = " and ".join(t for t, _ in self._subscriptions)
            self.last_error = f"subscribe to {names} failed: {paho.error_string(result)}"
            log.error("%s", self.last_error)
        self._sub_mid = mid

    @guarded
    def _on_connect_fail(self, client: Any, userdata: Any) -> None:
        # paho calls this from inside its `except OSError:`, so the error it swallowed is at hand
        exc = e if isinstance(e := sys.exc_info()[1], OSError) else None
        self._refused = False
        self.counters.inc("connect_failures")
        if not self._stopping:
            self._report(*diagnose(self._brokers.current, exc))

    def _report(self, kind: str, reason: str) -> None:
        self.last_error = self._brokers.failed(self._client, kind, reason, self._ratelog)

    def _closed_before_connack(self, reason: Any) -> None:
        """The broker (or TLS) dropped an attempt that never got a CONNACK; say why if we can."""
        self.counters.inc("connect_failures")
        found = probe(self._brokers.current) if self.cfg.tls.enabled else None
        if found is not None:
            self._report(*found)
            return
        why = f"closed the connection before CONNACK ({reason})"
        self._report("closed", why if self.cfg.tls.enabled else why + "; a TLS-only port?")

    @guarded
    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        was_connected, self._connected = self._connected, False
        self._subscribed.clear()
        if not was_connected:
            refused, self._refused = self._refused, False
            if not refused and not self._stopping:
                self._closed_before_connack(reason)
            return
        self.counters.inc("disconnects")
        if self._stopping:
            return
        if (takeover := self._takeover.disconnected(reason)) is not None:
            self.counters.inc("takeovers")
            self.last_error = takeover
            self._ratelog("takeover", "%s", takeover, level=logging.ERROR)
            return
        self.last_error = f"disconnected: {reason}"
        self._ratelog("disconnect", "lost connection to MQTT broker: %s (reconnecting)", reason)

    @guarded
    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid != self._sub_mid:
            return
        pairs = zip(self._subscriptions, reasons, strict=False)
        refused = [(t, r) for (t, _), r in pairs if r.is_failure]
        if refused:
            self.last_error = f"subscription to {refused[0][0]} refused: {refused[0][1]}"
            log.error("%s", self.last_error)
            return
        self._subscribed.set()
        log.info("subscribed to %s", " and ".join(t for t, _ in self._subscriptions))
        if not self._stopping:
            self._publish_status("online")

    @guarded
    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        received_at = self._arrival.now()  # never runs backwards (edge/clock.py)
        if self._side and (on_side := self._side.get(self._topic_of(message))) is not None:
            on_side(bytes(message.payload))  # never input: acknowledged now, never counted bad
            self._ack_now(client, message)
            return
        # only ever bumped here, on paho's thread: no lock needed (full name: no view per message)
        self.registry.add("mqtt_received")
        if self._input_stopped:  # not acknowledged: the broker delivers it again next session
            self.counters.inc("dropped_stopping")
            return
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "<topic is not UTF-8>"
        stream = self._streams.get(topic)
        if stream is None and (stream := self.input_topic.stream_of(topic)) is not None:
            if len(stream.encode()) > self._max_stream_id_bytes:
                self.counters.inc("stream_id_too_long")
                self._ack_now(client, message)  # bad input: it can never be processed
                limit = self._max_stream_id_bytes
                self._ratelog(
                    "stream-id", "dropped message: stream id longer than %d bytes: %.60r...", limit,
                    stream,
                )  # fmt: skip
                return
            if len(self._streams) >= self._topic_cache_size:  # a cache, as big as the table
                self._streams.clear()
            self._streams[topic] = stream
        if stream is None:
            self.counters.inc("unknown_topic")
            self._ack_now(client, message)
            tpl = self.input_topic.template
            self._ratelog("unknown-topic", "dropped message on %r: not %s", topic, tpl)
            return
        m, at = message, received_at
        inbound = InboundMessage(stream, topic, bytes(m.payload), at, m.mid, m.qos, bool(m.dup))
        if not self.inbox.offer(inbound):  # only QoS 0 is ever refused (see Inbox)
            self.counters.inc("dropped_queue_full")
            size = self.inbox.limit
            self._ratelog(
                "inbox-full", "inbox full (%d): dropped QoS 0 message of %r", size, stream
            )

    @staticmethod
    def _topic_of(message: paho.MQTTMessage) -> str:
        try:
            return message.topic
        except UnicodeDecodeError:
            return ""

    def _on_release(self, payload: bytes) -> None:
        # retained, so a crash before it is installed gets it again on the next subscribe; the
        # main thread verifies it
        self.registry.inc("deploy_received")
        self.deploy_inbox.put(payload)

    def _ack_now(self, client: Any, message: paho.MQTTMessage) -> None:
        if message.qos:
            client.ack(message.mid, message.qos)
