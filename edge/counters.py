"""The counters registry: every count the daemon keeps, under one name each.

One `Counters` lives as long as the daemon. The MQTT link, the pipeline, the engine and the
stream table all bump the same registry, so nothing is copied (or forgotten) across a model swap,
and the status topic, the logs and a metrics endpoint read the same names.

Names are `CATALOG` keys, plus the `bad_<reason>` family (one per payload rejection reason;
the reasons the decoders raise are `BAD_REASONS`, present from the start, so every snapshot has
the same names from the first on).
Gauges (live streams, queued messages) are functions read when a snapshot is taken.
Histograms (`HISTOGRAMS`: seconds per invoke, rows per invoke, messages per batch) have fixed
buckets; each has one writer (the main thread), observing once per invoke or batch.

Threads: `inc` takes a lock and is safe from any thread; `add` does not, and is for counters that
only one thread ever bumps (the main thread's data path, or paho's thread for `mqtt_received`).
A reader on another thread sees the old value or the new one.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence

CATALOG: dict[str, str] = {
    # the data path (main thread)
    "messages": "input messages handed to the data path",
    "samples": "samples stepped through the model",
    "forecasts": "forecasts produced",
    "invokes": "interpreter invocations",
    "bad_payloads": "input messages rejected as bad input (all reasons; see bad_<reason>)",
    "extra_fields": "payload fields the model does not use (ignored)",
    "encode_errors": "forecasts that could not be encoded (not published)",
    # the stream table (main thread)
    "streams_created": "streams started (first sample, or after eviction)",
    "streams_evicted": "streams evicted, least recently used first, when the table was full",
    "streams_resets_gap": "streams restarted after a gap longer than max_gap",
    "streams_resets_out_of_order": 'streams restarted by a late sample (out_of_order = "reset")',
    "streams_dropped_duplicate": "samples dropped: same timestamp as the stream's last",
    "streams_dropped_late": "samples dropped: older than the stream's last",
    "streams_resets_nonfinite": "streams restarted: the model state or output was not finite",
    "streams_held": "samples held: a jump beyond max_gap (and its run), waiting for older ones",
    "streams_dropped_outlier": "held samples dropped: the stream went on without the jump",
    "streams_aligned": "samples averaged into (or replaced in) an interval with other samples",
    "streams_filled": "missing intervals filled by linear interpolation (up to max_fill)",
    "streams_dropped_stale": "samples dropped: their interval was already stepped",
    # live forecast quality (path/quality.py; main thread)
    "quality_drift_flagged": "streams flagged drifting: worse than persistence for drift_after",
    "quality_drift_cleared": "drifting streams no longer worse than persistence",
    # the MQTT link (paho's thread and the main thread)
    "mqtt_received": "messages the broker delivered on the input subscription",
    "mqtt_dropped_queue_full": "messages dropped because the inbox was full",
    "mqtt_unknown_topic": "messages on a topic the input template does not match",
    "mqtt_connects": "accepted broker connections",
    "mqtt_connect_failures": "connection attempts refused or failed",
    "mqtt_disconnects": "established connections lost or closed",
    "mqtt_published": "forecasts handed to the MQTT client (sent, or queued until reconnect)",
    "mqtt_publish_failed": "forecasts the MQTT client refused",
    "mqtt_dropped_stopping": "messages that arrived while stopping (left unacknowledged)",
    "mqtt_callback_errors": "unexpected errors caught in MQTT callbacks",
    "mqtt_acked": "inputs acknowledged after their forecasts were safe at the broker",
    "mqtt_outbox_overflow": "forecasts the MQTT client could not queue (its queue was full)",
    "mqtt_stream_id_too_long": "messages whose stream id is longer than input.max_stream_id_bytes",
    "mqtt_takeovers": "connections ended because another client took over the session",
    "mqtt_backpressure": "times input was paused because too many forecasts awaited the broker",
    "mqtt_held_for_clock": "messages left unacknowledged while the device clock was not trusted",
    # local state (main thread)
    "state_outbox_dropped": "unsent forecasts the outbox file had no room for",
    "state_commits": "journal fsyncs (one for every batch handed over since the last)",
    "state_commit_errors": "journal fsyncs that failed (those inputs stay unacknowledged)",
    "state_journal_replayed": "samples replayed from the journal at start",
    "model_selftest_crashes": "interpreter backends that crashed during their self-test",
    # signed releases over MQTT (service/deploy.py; main thread, but deploy_received on paho's)
    "deploy_received": "release messages received on the deploy topic",
    "deploy_unchanged": "releases already installed (or already rolled back): nothing to do",
    "deploy_verified": "releases whose signature, channel and version checked",
    "deploy_installed": "releases written to the current slot, self-tested and swapped in",
    "deploy_committed": "releases that passed probation",
    "deploy_rolled_back": "releases rolled back (probation failure or crash loop at start)",
    "deploy_rejected_unsigned": "releases refused: no signature",
    "deploy_rejected_malformed": "releases refused: signature or trusted comment malformed",
    "deploy_rejected_bad_signature": "releases refused: signature does not match (tampered)",
    "deploy_rejected_unknown_key": "releases refused: signed by a key not in deploy.public_key",
    "deploy_rejected_wrong_channel": "releases refused: signed for another channel",
    "deploy_rejected_downgrade": "releases refused: older than the installed version",
    "deploy_rejected_same_version": "releases refused: installed version number, other bytes",
    "deploy_rejected_bad_bundle": "releases refused: the bundle does not load or fails self-test",
    "deploy_rejected_write_failed": "releases refused: the slot could not be written",
    # Home Assistant discovery (service/homeassistant.py; main thread, births on paho's)
    "hass_configs_published": "discovery configs published (a stream first seen, or all again)",
    "hass_configs_removed": "discovery configs removed (empty retained): the stream was evicted",
    "hass_birth_messages": "messages on Home Assistant's birth topic",
}
# why input is rejected (`PayloadError.reason`, edge/path/; out_of_range: the engine's screen)
BAD_REASONS = (
    "too_large",
    "invalid_utf8",
    "invalid_json",
    "empty",
    "not_an_object",
    "missing_field",
    "extra_field",
    "too_many_samples",
    "csv_arity",
    "not_a_number",
    "non_finite",
    "invalid_timestamp",
    "future_timestamp",
    "senml_invalid",
    "out_of_range",
)
# gauges: registered as functions by their owners (pipeline, link, daemon)
GAUGES: dict[str, str] = {
    "streams": "live streams in the stream table",
    "queue": "input messages waiting in the inbox",
    "clock_untrusted": "1 while input is held because the device clock is not trusted",
}
FAMILIES: dict[str, str] = {"bad_": "input messages (or samples) rejected for this reason"}
_POWERS_OF_TWO = tuple(float(2**k) for k in range(13))  # 1 .. 4096
HISTOGRAMS: dict[str, tuple[str, tuple[float, ...]]] = {
    "inference_seconds": (
        "seconds per interpreter invoke",
        (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    ),
    "invoke_rows": ("rows (stream samples or windows) per interpreter invoke", _POWERS_OF_TWO[:8]),
    "batch_messages": ("input messages per batch the main loop took", _POWERS_OF_TWO),
}


class Histogram:
    """Counts of observations per bucket (`bounds`: upper bounds, ascending, then +Inf) and their
    sum. One writer thread; a reader on another thread may see an observation half counted."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # a value equal to a bound is in it
        self.sum += value

    def cumulative(self) -> tuple[list[tuple[float, int]], float]:
        """[(upper bound, observations <= it)...] ending with (inf, all), and the sum."""
        total, out = 0, []
        for bound, n in zip((*self.bounds, float("inf")), list(self.counts), strict=True):
            total += n
            out.append((bound, total))
        return out, self.sum


def help_of(name: str) -> str:
    """The one-line help of a counter name (catalog entry, or its family's)."""
    if name in CATALOG:
        return CATALOG[name]
    if name in GAUGES:
        return GAUGES[name]
    for prefix, text in FAMILIES.items():
        if name.startswith(prefix):
            return f"{text}: {name.removeprefix(prefix)}"
    raise KeyError(f"unknown counter {name!r}")


class Counters:
    """name -> monotonic count, and name -> gauge function; see the module doc for threads."""

    def __init__(self) -> None:
        self._values: dict[str, int] = dict.fromkeys(CATALOG, 0)
        self._values.update((f"bad_{reason}", 0) for reason in BAD_REASONS)
        self._gauges: dict[str, Callable[[], int]] = {}
        self._histograms = {name: Histogram(b) for name, (_, b) in HISTOGRAMS.items()}
        self._lock = threading.Lock()

    def _check(self, name: str) -> None:
        if name not in self._values:
            help_of(name)  # raises for a name that is neither declared nor in a family

    def inc(self, name: str, n: int = 1) -> None:
        """Add `n` to `name`; safe from any thread."""
        with self._lock:
            if name not in self._values:
                self._check(name)
            self._values[name] = self._values.get(name, 0) + n

    def add(self, name: str, n: int = 1) -> None:
        """Add `n` to `name` without the lock: for a counter only one thread bumps."""
        if name not in self._values:
            self._check(name)
        self._values[name] = self._values.get(name, 0) + n

    def __getitem__(self, name: str) -> int:
        if name in self._gauges:
            return self._gauges[name]()
        self._check(name)
        return self._values.get(name, 0)

    def gauge(self, name: str, read: Callable[[], int]) -> None:
        """Register (or replace) a gauge: `read()` is called whenever the counters are read."""
        self._gauges[name] = read

    def is_gauge(self, name: str) -> bool:
        return name in self._gauges

    def histogram(self, name: str) -> Histogram:
        """The `HISTOGRAMS` entry `name` (the same object for the registry's life)."""
        return self._histograms[name]

    def as_dict(self) -> dict[str, int]:
        """Every counter and gauge by name, sorted, the same schema from the first call on."""
        with self._lock:
            values = dict(self._values)
        values.update({name: read() for name, read in self._gauges.items()})
        return dict(sorted(values.items()))

    def view(self, prefix: str) -> CounterView:
        return CounterView(self, prefix)


class CounterView:
    """The counters under one prefix, read as attributes: `view.connects` is `mqtt_connects`."""

    __slots__ = ("_prefix", "_registry")

    def __init__(self, registry: Counters, prefix: str) -> None:
        self._registry = registry
        self._prefix = prefix

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._registry[self._prefix + name]
        except KeyError:
            raise AttributeError(name) from None

    def inc(self, name: str, n: int = 1) -> None:
        self._registry.inc(self._prefix + name, n)

    def add(self, name: str, n: int = 1) -> None:
        self._registry.add(self._prefix + name, n)

    def as_dict(self) -> dict[str, int]:
        """The counters under the prefix, without it."""
        p = self._prefix
        return {
            k.removeprefix(p): v for k, v in self._registry.as_dict().items() if k.startswith(p)
        }
