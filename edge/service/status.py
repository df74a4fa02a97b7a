"""What the daemon says about itself: the status message's fields and the metrics' info.

The status message (`MqttLink.publish_status`) and the metrics endpoint (service/metrics.py) read
the same `StatusReport`, at publish or scrape time, from whichever thread does that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from seqcast.edge.counters import Counters
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.service.clockhold import ClockHold

log = logging.getLogger("seqcast.edge.service.daemon")  # the daemon's own log lines


def package_version() -> str:
    try:
        return metadata.version("seqcast")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


def per_stream_quality(snapshot: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The per-stream entries of a `quality_snapshot()` (`{"mae": [...], "persistence_mae":
    [...], "n": int, "drifting": bool}` each), under `"streams"` or at the top level beside the
    overall summary."""
    entries = snapshot.get("streams", snapshot)
    if not isinstance(entries, Mapping):
        return {}
    return {str(k): v for k, v in entries.items() if isinstance(v, Mapping) and "drifting" in v}


def quality_summary(snapshot: Mapping[str, Any]) -> dict[str, int]:
    streams = per_stream_quality(snapshot)
    return {
        "streams_scored": sum(1 for q in streams.values() if q.get("n", 0) > 0),
        "streams_drifting": sum(1 for q in streams.values() if q.get("drifting")),
    }


# what the periodic log line counts (since the last one)
SUMMARY_TOTALS = ("messages", "samples", "forecasts", "bad_payloads", "dropped", "resets")


def summary_totals(counts: Mapping[str, int]) -> dict[str, int]:
    """The periodic line's totals from the registry: drops and resets summed over reasons."""
    out = {k: int(counts.get(k, 0)) for k in SUMMARY_TOTALS[:4]}
    out["dropped"] = sum(
        v for k, v in counts.items() if k.startswith(("streams_dropped_", "mqtt_dropped_"))
    )
    out["resets"] = sum(v for k, v in counts.items() if k.startswith("streams_resets_"))
    return out


class StatusReport:
    def __init__(
        self,
        pipeline: Pipeline,
        clock: ClockHold,
        release: Callable[[], int | None] = lambda: None,
    ) -> None:
        """`release()`: the installed release's version (None without deployment over MQTT)."""
        self.pipeline = pipeline
        self.clock = clock
        self.release = release
        self.version = package_version()
        self.started_at = time.time()
        self._started = time.monotonic()
        self._summary_at = self._started
        self._summary_totals: dict[str, int] = {}

    def log_summary(self, counters: Counters, every_s: float) -> bool:
        """One info line with what happened since the last one, at most every `every_s` seconds
        (0: never), so a journal shows a running daemon is working without a metrics stack."""
        now = time.monotonic()
        if every_s <= 0 or now - self._summary_at < every_s:
            return False
        totals = summary_totals(counters.as_dict())
        since = {k: v - self._summary_totals.get(k, 0) for k, v in totals.items()}
        drifting = self.quality_counts()["streams_drifting"]
        log.info(
            "in the last %.0f s: %d messages, %d samples, %d forecasts, %d bad payloads, "
            "%d dropped, %d stream resets; %d streams, %d drifting",
            now - self._summary_at,
            *(since[k] for k in SUMMARY_TOTALS),
            counters["streams"],
            drifting,
        )
        self._summary_at, self._summary_totals = now, totals
        return True

    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def quality(self) -> Mapping[str, Any] | None:
        """The pipeline's live forecast quality, when it keeps one (else None)."""
        read = getattr(self.pipeline, "quality_snapshot", None)
        return read() if callable(read) else None

    def quality_counts(self) -> dict[str, int]:
        """`quality_summary` of the pipeline's live quality, read without the per-stream
        snapshot (it runs with every status message)."""
        return self.pipeline.quality_counts()

    def about(self) -> dict[str, str]:
        """The version and the model serving (the metrics' `seqcast_info` labels)."""
        p = self.pipeline
        release = self.release()
        return {
            "version": self.version,
            "model_id": p.model_id,
            "backend": p.model.backend,
            "mode": p.mode,
            "release": "" if release is None else str(release),
        }

    def fields(self) -> dict[str, Any]:
        """The status message's fields besides state, ts and counters (the same keys in every
        message from the first on; `quality` counts zeros when scoring is off)."""
        about = self.about()
        out: dict[str, Any] = {
            "uptime_s": round(self.uptime_s(), 3),
            "version": about["version"],
            "model_id": about["model_id"],
            "backend": about["backend"],
            "mode": about["mode"],
            "clock": self.clock.state(),
        }
        out["quality"] = self.quality_counts()
        return out
