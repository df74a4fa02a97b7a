"""`GET /metrics` in the Prometheus text format (`[metrics] listen`), read at scrape time.

The hot path pays nothing per message for it: a custom collector reads the counters registry
(edge/counters.py), its histograms and the `StatusReport` only when Prometheus scrapes, on the
HTTP server's own thread (prometheus-client's `start_http_server`).

Registry names become `seqcast_<name>_total` counters, except the families below, which become
one counter with a `reason` label (`bad_<reason>` -> `seqcast_bad_input_total{reason=...}`);
gauges keep their name (`seqcast_streams`), histograms add `_bucket`, `_sum` and `_count`.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Iterator, Mapping
from typing import Any
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from seqcast.edge.config import ConfigError, MetricsConfig
from seqcast.edge.counters import HISTOGRAMS, Counters, help_of
from seqcast.edge.ratelimit import RateLimitedLog
from seqcast.edge.service.status import StatusReport, per_stream_quality

log = logging.getLogger(__name__)

PREFIX = "seqcast_"
# registry name prefix -> (metric name, help): one counter, the rest of the name as `reason`
REASON_FAMILIES: dict[str, tuple[str, str]] = {
    "bad_": ("bad_input", "input rejected as bad, by reason (messages; samples for out_of_range)"),
    "streams_dropped_": ("samples_dropped", "samples dropped by the stream table, by reason"),
    "streams_resets_": ("stream_resets", "streams restarted, by reason"),
    "mqtt_dropped_": ("messages_dropped", "input messages dropped by the MQTT link, by reason"),
    "deploy_rejected_": ("deploy_rejected", "signed releases refused, by reason"),
}
UNLABELLED = frozenset({"bad_payloads"})  # the total of bad_<reason>: its own counter


class RegistryCollector(Collector):
    """The counters registry, its histograms and the daemon's report, as metric families."""

    def __init__(self, counters: Counters, report: StatusReport) -> None:
        self.counters = counters
        self.report = report
        self._warn = RateLimitedLog(log)

    def collect(self) -> Iterator[Metric]:
        families: dict[str, CounterMetricFamily] = {}
        for name, value in self.counters.as_dict().items():
            if self.counters.is_gauge(name):
                yield GaugeMetricFamily(PREFIX + name, help_of(name), value=value)
                continue
            prefix = next((p for p in REASON_FAMILIES if name.startswith(p)), None)
            if prefix is None or name in UNLABELLED:
                yield CounterMetricFamily(PREFIX + name, help_of(name), value=value)
                continue
            metric, text = REASON_FAMILIES[prefix]
            family = families.get(metric)
            if family is None:
                family = families[metric] = CounterMetricFamily(
                    PREFIX + metric, text, labels=["reason"]
                )
            family.add_metric([name.removeprefix(prefix)], value)
        yield from families.values()
        yield from self._histograms()
        yield InfoMetricFamily(
            "seqcast", "the package version and the model serving", value=self.report.about()
        )
        uptime = self.report.uptime_s()
        yield GaugeMetricFamily(PREFIX + "uptime_seconds", "seconds since start", value=uptime)
        yield from self._quality()

    def _histograms(self) -> Iterator[Metric]:
        for name, (text, _) in HISTOGRAMS.items():
            buckets, total = self.counters.histogram(name).cumulative()
            yield HistogramMetricFamily(
                PREFIX + name,
                text,
                buckets=[("+Inf" if math.isinf(b) else repr(b), n) for b, n in buckets],
                sum_value=total,
            )

    def _quality(self) -> Iterator[Metric]:
        try:
            snapshot = self.report.quality()
        except Exception as exc:  # a scrape without quality beats a failed scrape
            self._warn("quality", "live forecast quality unavailable: %r", exc)
            return
        if snapshot is None:
            return
        streams = per_stream_quality(snapshot)
        scored = sum(1 for q in streams.values() if q.get("n", 0) > 0)
        drifting = sorted(name for name, q in streams.items() if q.get("drifting"))
        yield GaugeMetricFamily(
            PREFIX + "quality_streams_scored", "streams with scored forecasts", value=scored
        )
        # one series per drifting stream only: a drift alert names the stream, and a fleet of
        # healthy streams adds nothing
        family = GaugeMetricFamily(
            PREFIX + "quality_drifting",
            "1 for each stream whose model has been worse than persistence for quality.drift_after",
            labels=["stream"],
        )
        for name in drifting:
            family.add_metric([name], 1)
        yield family
        yield self._mae_by_step(streams)

    @staticmethod
    def _mae_by_step(streams: Mapping[str, Mapping[str, Any]]) -> Metric:
        """Rolling MAE per horizon step, the model's and persistence's, averaged over the scored
        streams (per stream: the `[quality] topic` message), so a dashboard compares the two."""
        family = GaugeMetricFamily(
            PREFIX + "quality_mae",
            "live rolling MAE per horizon step (1 = next), mean over the scored streams",
            labels=["step", "method"],
        )
        scored = [q for q in streams.values() if q.get("n", 0) > 0]
        for key, method in (("mae", "model"), ("persistence_mae", "persistence")):
            rows = [[math.nan if v is None else v for v in q.get(key, [])] for q in scored]
            if not rows or len({len(r) for r in rows}) != 1:
                continue
            with warnings.catch_warnings():  # a step no stream has scored yet stays out
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nanmean(np.asarray(rows, float), axis=0)
            for step, mean in enumerate(means, start=1):
                if math.isfinite(mean):
                    family.add_metric([str(step), method], float(mean))
        return family


class MetricsServer:
    """The HTTP endpoint on its own thread; `close()` stops it."""

    def __init__(self, cfg: MetricsConfig, counters: Counters, report: StatusReport) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(RegistryCollector(counters, report))
        host, port = cfg.address
        try:
            server, thread = start_http_server(port, host, self.registry)
        except OSError as e:  # in use, not an address of this host, a name that does not resolve
            why = e.strerror or str(e)
            raise ConfigError(f"metrics.listen: cannot serve on {cfg.listen}: {why}") from None
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread
        self.port = server.server_address[1]
        log.info("metrics on http://%s/metrics", cfg.listen)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
