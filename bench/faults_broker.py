"""The broker scenario's view of mosquitto itself, so that a run in which the broker misbehaved is
flagged instead of being counted silently against the daemon.

Per restart: how long the old broker took to exit (SIGTERM: it saves its database first), how big
that database was, how long the new broker took to listen (it loads the database first) and how
long after that the daemon's `online` came. Over the whole run: a probe client publishes a QoS 1
message every `PING_S` on a topic nobody subscribes to (nothing queued, nothing saved) and times
each PUBACK: a broker busy with itself (a save after every change of a big database, on a slow
disk) answers nobody, the daemon included, and that shows here without involving the daemon.
Plus the publisher's longest wait for PUBACKs and the inputs the broker never accepted.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

if TYPE_CHECKING:
    from bench.faults_rig import Rig

PING_S = 0.1
STALL_S = 2.0  # a broker silent this long is stalled (on loopback it answers in milliseconds)
TMPFS = Path("/dev/shm")  # the broker's database here: its saves cost memory copies, not a disk


def data_dir() -> Path | None:
    """Where the broker scenario's mosquitto keeps its database: tmpfs when the machine has one
    (None: the system's temp dir)."""
    return TMPFS if TMPFS.is_dir() and _is_tmpfs(TMPFS) else None


def _is_tmpfs(path: Path) -> bool:
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == str(path):
                return fields[2] == "tmpfs"
    return False


class Ping:
    """QoS 1 probes every `PING_S` on `bench/ping/<id>`; each PUBACK's round trip, and how long
    the broker went without answering one (disconnected time counts: the broker was down)."""

    def __init__(self, port: int):
        self.rtts: list[tuple[float, float]] = []  # (sent at, seconds to its PUBACK)
        self._pending: dict[int, float] = {}
        self._last_answer = time.monotonic()
        self.longest_silence = 0.0  # seconds between two answers, across the whole run
        self.silences: list[tuple[float, float]] = []  # (start, seconds) of those >= STALL_S
        self._stop = threading.Event()
        self._lock = threading.Lock()
        c = paho.Client(CallbackAPIVersion.VERSION2, f"bench-ping-{uuid.uuid4().hex[:8]}", True)
        c.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
        c.on_publish = self._acked
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _acked(self, c: Any, u: Any, mid: int, rc: Any, p: Any) -> None:
        now = time.monotonic()
        with self._lock:
            sent = self._pending.pop(mid, None)
            if sent is None:
                return
            self.rtts.append((sent, now - sent))
            self._note_silence(now)

    def _note_silence(self, now: float) -> None:
        gap = now - self._last_answer
        self.longest_silence = max(self.longest_silence, gap)
        if gap >= STALL_S:
            self.silences.append((self._last_answer, gap))
        self._last_answer = now

    def _run(self) -> None:
        while not self._stop.wait(PING_S):
            if self.client.is_connected():
                with self._lock:
                    info = self.client.publish(f"bench/ping/{id(self)}", b"", qos=1)
                    self._pending[info.mid] = time.monotonic()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            self._note_silence(time.monotonic())  # a broker silent at the end was silent too
        self.client.disconnect()
        self.client.loop_stop()

    def summary(self) -> dict[str, Any]:
        rtts = sorted(r for _, r in self.rtts)
        return {
            "probes": len(rtts),
            "rtt_ms_p50": round(1e3 * rtts[len(rtts) // 2], 2) if rtts else None,
            "rtt_ms_max": round(1e3 * rtts[-1], 1) if rtts else None,
            "longest_silence_s": round(self.longest_silence, 2),
            "silences": [(round(t, 2), round(s, 2)) for t, s in self.silences],
        }


def restart(rig: Rig, sig: signal.Signals) -> dict[str, Any]:
    """Send `sig` to the broker, start it again; the broker's part of the pause and the daemon's:
    `exit_s` signal → exited, `listen_s` start → listening, `online_s` listening → the daemon's
    `online`, `db_bytes` the database the new broker loaded."""
    proc, wall, t = rig.broker.proc, time.time(), time.monotonic()
    assert proc is not None
    proc.send_signal(sig)
    proc.wait(120)
    exited = time.monotonic()
    db = Path(rig.broker.conf.parent) / "mosquitto.db"
    size = db.stat().st_size if db.exists() else 0
    rig.broker.start(timeout=120)
    rig.pin_broker()
    up = time.monotonic()
    watcher = rig.daemon.watch()
    online = watcher.wait(lambda s: s.get("state") == "online" and s["ts"] > wall, 120)
    back = None if online is None else round(time.monotonic() - up, 2)
    detail = f"broker down {up - t:.2f} s, database {size:,} bytes"
    return {"exit_s": round(exited - t, 2), "listen_s": round(up - exited, 2), "back_s": back,
            "db_bytes": size, "detail": detail}  # fmt: skip


def stalls(events: list[dict[str, Any]], ping: dict[str, Any], res: dict[str, Any]) -> list[str]:
    """What the broker (not the daemon) did wrong, one line each; empty for a clean run."""
    out = [f"restart {i + 1}: {k} {e[k]} s" for i, e in enumerate(events)
           for k in ("exit_s", "listen_s") if e.get(k, 0) >= STALL_S]  # fmt: skip
    restarts = [(e["at_mono"], e["at_mono"] + e["exit_s"] + e["listen_s"]) for e in events]
    for start, seconds in ping["silences"]:  # silent while down is expected; beyond, not
        end = start + seconds
        busy = end - max([start, *(b for a, b in restarts if a - PING_S <= start <= b + PING_S)])
        if busy >= STALL_S:
            out.append(f"no PUBACK for {seconds:.1f} s ({busy:.1f} s of it while listening)")
    if res["longest_puback_wait_s"] >= STALL_S:
        out.append(f"the publisher waited {res['longest_puback_wait_s']:.1f} s for PUBACKs")
    if res["accepted"] < res["inputs"]:
        out.append(f"the broker accepted {res['accepted']:,} of {res['inputs']:,} inputs")
    return out
