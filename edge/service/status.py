"""What the daemon says about itself: the status message's fields and the metrics' info.

The status message (`MqttLink.publish_status`) and the metrics endpoint (service/metrics.py) read
the same `StatusReport`, at publish or scrape time, from whichever thread does that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.service.clockhold import ClockHold


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

    def uptime_s(self) -> float:
        return time.monotonic() - self._started

    def quality(self) -> Mapping[str, Any] | None:
        """The pipeline's live forecast quality, when it keeps one (else None)."""
        read = getattr(self.pipeline, "quality_snapshot", None)
        return read() if callable(read) else None

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
        message from the first on; `quality` only when the pipeline keeps it)."""
        about = self.about()
        out: dict[str, Any] = {
            "uptime_s": round(self.uptime_s(), 3),
            "version": about["version"],
            "model_id": about["model_id"],
            "backend": about["backend"],
            "mode": about["mode"],
            "clock": self.clock.state(),
        }
        quality = self.quality()
        if quality is not None:
            out["quality"] = quality_summary(quality)
        return out
