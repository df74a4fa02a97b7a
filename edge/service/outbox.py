"""Forecasts that were produced but not yet acknowledged by the broker, kept across restarts.

In memory they live in paho's queue (and the link's pending table) and go out in order when the
connection returns. At shutdown, and with every snapshot, whatever is still pending is written to
`outbox.jsonl` (mode 0600, at most `max_bytes`; overflow is counted and logged) and published
first at the next start. Forecasts published again this way carry `"redelivered": true`: a
consumer that needs exactly-once deduplicates on (stream, ts).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from seqcast.edge.service.statedir import atomic_write

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutboxItem:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def mark_redelivered(payload: bytes) -> bytes:
    """Add `"redelivered": true` to a forecast payload (a JSON object)."""
    if payload.endswith(b"}"):
        return payload[:-1] + b',"redelivered":true}'
    return payload


def save_outbox(
    path: Path, items: list[tuple[str, bytes, int, bool]], max_bytes: int
) -> tuple[int, int]:
    """Write what fits in `max_bytes`, oldest first; returns (kept, dropped)."""
    lines: list[bytes] = []
    size = 0
    for topic, payload, qos, retain in items:
        line = (
            json.dumps(
                {
                    "topic": topic,
                    "payload": payload.decode("utf-8", "replace"),
                    "qos": qos,
                    "retain": retain,
                }
            ).encode()
            + b"\n"
        )
        if size + len(line) > max_bytes:
            break
        lines.append(line)
        size += len(line)
    dropped = len(items) - len(lines)
    if dropped:
        log.error("outbox full (%d bytes): %d unsent forecasts dropped", max_bytes, dropped)
    if lines:
        atomic_write(path, lambda f: f.writelines(lines))
    else:
        path.unlink(missing_ok=True)
    return len(lines), dropped


def load_outbox(path: Path) -> list[OutboxItem]:
    """The saved forecasts, marked as redelivered; unreadable lines are reported and skipped."""
    if not path.exists():
        return []
    items: list[OutboxItem] = []
    bad = 0
    for line in path.read_bytes().splitlines():
        try:
            d = json.loads(line)
            items.append(
                OutboxItem(
                    str(d["topic"]),
                    mark_redelivered(d["payload"].encode()),
                    int(d["qos"]),
                    bool(d["retain"]),
                )
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            bad += 1
    if bad:
        log.warning("%s: %d unreadable lines skipped", path, bad)
    return items
