"""Connection settings and counters of the MQTT link (checked on construction; no paho)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, fields

PROTOCOL_NAMES = ("3.1.1", "5")


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    client_id: str = "seqcast-edge"
    protocol: str = "3.1.1"  # or "5"
    keepalive: int = 60
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed
    clean_session: bool = False
    session_expiry_s: int = 86400  # MQTT 5 only
    qos_in: int = 1
    tls_enabled: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_insecure: bool = False
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    status_topic: str = "seqcast/seqcast-edge/status"
    max_queued_messages: int = 10000  # outgoing QoS>0 messages held while offline; 0 = unlimited
    max_inflight: int = 1000  # outgoing QoS>0 messages sent but not yet acknowledged

    def __post_init__(self) -> None:
        plain_status = bool(self.status_topic) and not set("+#\x00") & set(self.status_topic)
        checks = [
            ("protocol", self.protocol in PROTOCOL_NAMES, 'must be "3.1.1" or "5"'),
            ("port", 1 <= self.port <= 65535, "must be 1..65535"),
            ("qos_in", self.qos_in in (0, 1, 2), "must be 0, 1 or 2"),
            ("keepalive", self.keepalive >= 1, "must be >= 1"),
            ("session_expiry_s", 0 <= self.session_expiry_s <= 2**32 - 1, "must be 0..2**32-1"),
            ("reconnect_min_s", self.reconnect_min_s > 0, "must be > 0"),
            ("reconnect_max_s", self.reconnect_max_s >= self.reconnect_min_s, ">= reconnect_min_s"),
            ("max_queued_messages", self.max_queued_messages >= 0, "must be >= 0"),
            ("status_topic", plain_status, "must be a topic without '+', '#' or NUL"),
        ]
        for key, ok, rule in checks:
            if not ok:
                raise ValueError(f"mqtt.{key}: {rule}, got {getattr(self, key)!r}")
        if self.password is not None and self.username is None:
            raise ValueError("mqtt.password: needs mqtt.username")


@dataclass
class LinkCounters:
    """Monotonic counters, bumped from paho's thread and the main thread, read from others.

    `inc` takes a lock. A counter bumped by one thread only may be bumped in place instead
    (`received`, per message on paho's thread): a reader sees the old value or the new one.
    """

    received: int = 0  # every message the broker delivered on the input subscription
    dropped_queue_full: int = 0  # received, but the inbox was full
    unknown_topic: int = 0  # received on a topic the template does not match
    connects: int = 0  # accepted connections (CONNACK success)
    connect_failures: int = 0  # refused by the broker, or broker unreachable
    disconnects: int = 0  # established connections that were lost or closed
    published: int = 0  # publish() calls paho accepted (sent, or queued until reconnect)
    publish_failed: int = 0  # publish() calls that were not queued
    dropped_stopping: int = 0  # arrived after stop_input(); QoS 1 ones are left unacknowledged
    callback_errors: int = 0  # unexpected exceptions caught inside paho callbacks
    acked: int = 0  # inputs acknowledged after their forecasts were safe at the broker
    outbox_overflow: int = 0  # forecasts paho could not queue (its queue was full): lost, counted
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_lock"}
