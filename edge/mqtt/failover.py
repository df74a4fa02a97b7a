"""Broker failover: `[mqtt] host:port` first, then each of `fallback_brokers`, round the list.

The link moves on after every failed attempt (unreachable, TLS failure, closed before CONNACK,
refused); after a connection that was up drops, the same broker is tried once more first (the drop
may have been the network, or `ask_redelivery`), and only if that attempt fails is the next one
tried. Nothing else changes: paho's reconnect loop and its backoff, the client id, the credentials
and TLS settings, the persistent session. On the nodes of one cluster (nats-server with JetStream,
deploy/README.md "Three nodes") that session, and the QoS 1 messages it has not acknowledged,
continue on whichever node the link reaches; the link stays there until that one fails in turn.

paho 2.x's reconnect loop connects to `client._host`/`client._port` (TLS checks the certificate
against `_host`); its public `host`/`port` setters refuse while that loop runs, so `advance` sets
the two attributes itself, on paho's thread, between one attempt and the next `reconnect()`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from seqcast.edge.config import MqttConfig
from seqcast.edge.mqtt.diagnose import failure_text
from seqcast.edge.ratelimit import RateLimitedLog


def address(cfg: MqttConfig) -> str:
    """`host:port` of the broker `cfg` names (an IPv6 host in brackets)."""
    return f"[{cfg.host}]:{cfg.port}" if ":" in cfg.host else f"{cfg.host}:{cfg.port}"


class Brokers:
    """The brokers of one `[mqtt]` section, and the one the link is at (or trying)."""

    def __init__(self, cfg: MqttConfig) -> None:
        # one MqttConfig per broker: diagnose(), probe() and the log lines take the one at hand
        self.targets = [replace(cfg, host=host, port=port) for host, port in cfg.brokers]
        self._at = 0

    @property
    def current(self) -> MqttConfig:
        return self.targets[self._at]

    def retry_text(self) -> str:
        """What the next attempt will be, for a log line about this one's failure."""
        if len(self.targets) == 1:
            return "retrying with backoff"
        return f"trying {address(self.targets[(self._at + 1) % len(self.targets)])} next"

    def failed(self, client: Any, kind: str, reason: str, log: RateLimitedLog) -> str:
        """An attempt at the current broker failed (`kind` "tcp", "tls" or "closed", see
        `diagnose.failure_text`): log it (one line per broker and reason, rate-limited), point
        `client` at the next broker; the line without what comes next, for `last_error`."""
        text, level = failure_text(self.current, kind, reason)
        key = f"connect-{kind}:{address(self.current)}:{reason}"
        log(key, "%s (%s)", text, self.retry_text(), level=level)
        self.advance(client)
        return text

    def advance(self, client: Any) -> None:
        """Point `client` (a paho client, between attempts) at the next broker."""
        if len(self.targets) == 1:
            return
        self._at = (self._at + 1) % len(self.targets)
        client._host, client._port = self.current.host, self.current.port

    def __str__(self) -> str:
        first, *more = (address(t) for t in self.targets)
        return f"{first} (then {', '.join(more)})" if more else first
