"""The `edge.toml` sections of the services around the data path: signed model delivery
(`[deploy]`), the Prometheus endpoint (`[metrics]`), Home Assistant discovery
(`[homeassistant]`) and live forecast quality (`[quality]`). Same rules as `sections.py`:
every default and rule lives here, once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcast.edge.config.base import Section, opt
from seqcast.edge.config.validation import show

_CHANNEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _channel(value: str) -> str | None:
    return None if _CHANNEL.fullmatch(value) else "must be 1-64 of A-Z a-z 0-9 _ . -"


def _plain_topic(placeholder: str) -> Any:
    def rule(value: str) -> str | None:
        if any(c in value for c in "+#"):
            return "must not contain the wildcards '+' or '#'"
        if placeholder not in value:
            return f"must contain {placeholder}"
        return None

    return rule


@dataclass(frozen=True, kw_only=True)
class DeployConfig(Section):
    """Signed bundles delivered over MQTT (seqcast-deploy push): slots, probation, rollback."""

    channel: str = opt(
        "", "Release channel this device follows; empty = no deployment over MQTT", empty_ok=True
    )
    public_key: tuple[Path, ...] = opt(
        (), "Public key file(s) (minisign format) a release must be signed with; a path or a list",
        example="/etc/seqcast/seqcast.pub",
    )  # fmt: skip
    topic: str = opt(
        "seqcast/deploy/{channel}",
        "Topic releases arrive on (retained, QoS 1)",
        check=_plain_topic("{channel}"),
    )
    events_topic: str = opt(
        "seqcast/{client_id}/deploy",
        "Retained topic of this device's deploy events",
        check=_plain_topic("{client_id}"),
    )
    allow_downgrade: bool = opt(False, "Install a release older than the installed one")
    probation_batches: int = opt(
        20, "Batches with forecasts a new release must serve before it is committed", ge=1
    )
    probation_s: float = opt(
        60.0, "Seconds a new release must serve with finite outputs before it is committed", ge=0
    )
    crash_loop_starts: int = opt(
        3, "Starts a release on probation gets; the next start restores the previous one", ge=1
    )

    def _rules(self) -> Iterator[tuple[str, str]]:
        if self.channel and not self.public_key:
            yield "public_key", f"required when channel is set (channel = {show(self.channel)})"
        if self.channel and (broken := _channel(self.channel)):
            yield "channel", f"{broken}, got {show(self.channel)}"

    @property
    def enabled(self) -> bool:
        return bool(self.channel)


def _listen(value: str) -> str | None:
    host, colon, port = value.rpartition(":")
    if value and not (colon and host and port.isdigit() and 1 <= int(port) <= 65535):
        return 'must be "host:port" (e.g. "127.0.0.1:9108", "[::1]:9108") or "" (off)'
    return None


@dataclass(frozen=True, kw_only=True)
class MetricsConfig(Section):
    """Prometheus metrics over HTTP (GET /metrics), read from the counters at scrape time."""

    listen: str = opt(
        "",
        'Address and port serving /metrics, e.g. "127.0.0.1:9108"; empty = no endpoint',
        check=_listen,
        empty_ok=True,
    )

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) of `listen`; an IPv6 host without its brackets."""
        host, _, port = self.listen.rpartition(":")
        return host.removeprefix("[").removesuffix("]"), int(port)


_DISCOVERY_PREFIX = re.compile(r"[^\x00+#]+")


def _discovery_prefix(value: str) -> str | None:
    if not _DISCOVERY_PREFIX.fullmatch(value) or value.startswith("/") or value.endswith("/"):
        return "must be a topic prefix without wildcards and without a leading or trailing '/'"
    return None


def _no_wildcards(value: str) -> str | None:
    return "must not contain the wildcards '+' or '#'" if any(c in value for c in "+#") else None


@dataclass(frozen=True, kw_only=True)
class HomeAssistantConfig(Section):
    """Home Assistant MQTT discovery: each stream's next-step forecast as a sensor."""

    enabled: bool = opt(
        False, "Publish a retained discovery config per stream when it is first seen"
    )
    prefix: str = opt("homeassistant", "Home Assistant's discovery prefix", check=_discovery_prefix)
    streams: tuple[str, ...] = opt(
        (), "Streams to announce (fnmatch patterns such as \"meter-*\"); empty = every stream",
        example="meter-*",
    )  # fmt: skip
    birth_topic: str = opt(
        "homeassistant/status",
        "Home Assistant's birth topic: 'online' there makes the daemon send every config again",
        check=_no_wildcards,
    )


@dataclass(frozen=True, kw_only=True)
class QualityConfig(Section):
    """Live forecast quality: published forecasts scored as the actual values arrive."""

    enabled: bool = opt(True, "Score forecasts (and persistence) against the actuals")
    window: int = opt(
        288,
        "Steps per rolling MAE (kept in blocks of window/8: it covers the last 7/8 to all of it)",
        ge=1,
        le=1000000,
    )
    drift_after: int = opt(
        288, "Consecutive scored steps worse than persistence before a stream is drifting", ge=1
    )
    topic: str = opt(
        "",
        "Retained topic of the per-stream scores, published with each status; empty = none",
        empty_ok=True,
        check=_no_wildcards,
        example="seqcast/{client_id}/quality",
    )
