"""`seqcast-deploy status`: every device's state, model and last deploy event, from the retained
`seqcast/{client_id}/status` and `seqcast/{client_id}/deploy` messages.

Retained messages arrive right after the subscription is granted; the listing is printed once no
new one has come for `--settle` seconds.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

STATUS_TOPIC = "seqcast/+/status"
DEPLOY_TOPIC = "seqcast/+/deploy"
SETTLE_S = 0.5
MAX_WAIT_S = 10.0
COLUMNS = ("client_id", "state", "model_id", "version", "event", "reason")


@dataclass
class Device:
    client_id: str
    state: str = "unknown"  # online | offline | unknown (no status message)
    model_id: str | None = None
    version: int | None = None
    event: str | None = None  # the last deploy event
    reason: str | None = None
    channel: str | None = None
    event_time: float | None = None


def _json_object(payload: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


class Listing:
    """Devices by client id, fed by messages on the two topics (from paho's thread)."""

    def __init__(self) -> None:
        self.devices: dict[str, Device] = {}
        self.ignored = 0  # payloads that are not what the daemon publishes
        self.last_message = time.monotonic()
        self._lock = threading.Lock()

    def add(self, topic: str, payload: bytes, retained: bool = True) -> None:
        parts = topic.split("/")
        body = _json_object(payload)
        with self._lock:
            self.last_message = time.monotonic()
            if len(parts) != 3 or parts[2] not in ("status", "deploy") or body is None:
                self.ignored += 1 if payload else 0  # an empty payload clears a retained message
                return
            device = self.devices.setdefault(parts[1], Device(parts[1]))
            if parts[2] == "status":
                state = body.get("state")
                device.state = state if state in ("online", "offline") else "unknown"
            else:
                device.event = _text(body.get("event"))
                device.reason = _text(body.get("reason"))
                device.channel = _text(body.get("channel"))
                device.model_id = _text(body.get("model_id")) or device.model_id
                version = body.get("version")
                device.version = version if type(version) is int else None  # not a JSON true
                stamp = body.get("time")
                device.event_time = float(stamp) if isinstance(stamp, int | float) else None

    def quiet_for(self) -> float:
        with self._lock:
            return time.monotonic() - self.last_message

    def rows(self) -> list[Device]:
        with self._lock:
            return [self.devices[k] for k in sorted(self.devices)]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def collect(args: argparse.Namespace) -> Listing:
    from seqcast.deploy.keys import DeployError
    from seqcast.tools.clients import Publisher
    from seqcast.tools.replay import ReplayError, connection_options

    try:
        options = connection_options(args)
    except ReplayError as err:
        raise DeployError(str(err)) from None
    listing = Listing()
    client = Publisher(args.host, args.port, client_id=args.client_id, **options)
    try:
        client.subscribe([STATUS_TOPIC, DEPLOY_TOPIC], listing.add, timeout=args.connect_timeout)
        listing.last_message = time.monotonic()
        deadline = time.monotonic() + MAX_WAIT_S
        while listing.quiet_for() < args.settle and time.monotonic() < deadline:
            time.sleep(min(0.05, args.settle))
    finally:
        client.close(timeout=1.0)
    return listing


def render(rows: list[Device]) -> str:
    """A plain table: one line per device, `-` for what is not known."""
    table = [list(COLUMNS)]
    for d in rows:
        values = (d.client_id, d.state, d.model_id, d.version, d.event, d.reason)
        table.append(["-" if v is None else str(v) for v in values])
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in table
    )


def as_json(rows: list[Device]) -> str:
    return json.dumps([asdict(d) for d in rows], indent=2)


def add_status_args(p: argparse.ArgumentParser) -> None:
    from seqcast.tools.replay import add_broker_args

    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.add_argument(
        "--settle",
        type=float,
        default=SETTLE_S,
        metavar="S",
        help=f"print once no retained message has arrived for S seconds ({SETTLE_S:g})",
    )
    p.add_argument("--client-id", help="MQTT client id (default: a random seqcast-pub-...)")
    add_broker_args(p)
