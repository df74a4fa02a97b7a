"""Benchmark 2: end to end through a real mosquitto, the daemon against the bare relay floor.

The daemon (or `bench/relay.py`) runs pinned to core 0; mosquitto, the publisher, the counting
subscriber and this orchestrator run on core 1. Runs alternate relay, daemon, relay, daemon, ...

Throughput: N streams are first warmed (each sends seq_len - 1 samples in one JSON array, so the
next sample of every stream yields a forecast), then a separate publisher process sends R rounds
of single-sample JSON messages as fast as it can. Rate = forecasts received / (last forecast -
first publish). The daemon's inbox is made large enough that nothing is dropped.

Latency: one process publishes at a fixed rate and subscribes to the forecasts, timing each
sample's publish to its forecast's arrival, matched by (stream, ts): no change to the payloads.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import LOAD_CORE, log, pin_self
from bench.e2e_report import markdown, plot, summarize, targets_of
from bench.procs import Counter, Running, start_daemon, start_relay, tool

__all__ = ["markdown", "plot", "run"]

TS0 = B.TS0  # 2001, on the bundles' grid
BASE = B.BundleSpec(48, "lstm", "float32")
# the daemon beside itself with one feature off, same floods, interleaved: that feature's cost
VARIANTS: dict[str, dict[str, Any]] = {
    "unaligned": {"align": "off"},  # streams.align = "off": the aligner's cost
    "unscored": {"quality": False},  # [quality] enabled = false: live scoring's cost
}
# ... and with one feature on that is off by default: [metrics] listen, scraped every second
SCRAPED = "scraped"
SCRAPE_EVERY_S = 1.0


def _start(
    kind: str,
    port: int,
    bundle: Path,
    work: Path,
    qos: int,
    queue: int,
    root: Path | None = None,
    metrics_listen: str = "",
) -> Running:
    if kind == "relay":
        return start_relay(port, work, qos)
    return start_daemon(
        port,
        bundle,
        work,
        root=root,
        qos_in=qos,
        qos_out=qos,
        max_streams=10000,
        queue_size=queue,
        metrics_listen=metrics_listen,
        **VARIANTS.get(kind, {}),
    )


def _warm(run: Running, port: int, streams: int, seq_len: int) -> None:
    """Every stream sends seq_len - 1 samples (one array each): the next sample forecasts."""
    if run.kind != "daemon":
        return
    before = run.counters().get("samples", 0)
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "streams": streams,
        "rounds": seq_len - 1,
        "per_message": seq_len - 1,
        "ts0": TS0,
        "interval": B.INTERVAL_S,
    }
    tool("flood", spec, timeout=120)
    if not run.wait_samples(before + streams * (seq_len - 1), timeout=300):
        raise RuntimeError(f"warm-up of {streams} streams did not finish:\n{run.log_tail()}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Scraper:
    """GET /metrics every SCRAPE_EVERY_S on a thread, as a Prometheus server would."""

    def __init__(self, listen: str) -> None:
        self.url, self.done, self.count = f"http://{listen}/metrics", threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                with urllib.request.urlopen(self.url, timeout=5) as reply:
                    reply.read()
                self.count += 1
            except OSError:  # stopping
                pass
            if self.done.wait(SCRAPE_EVERY_S):
                return

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.count


def throughput(
    kind: str,
    port: int,
    bundle: Path,
    work: Path,
    streams: int,
    messages: int,
    qos: int,
    root: Path | None = None,
    metrics_listen: str = "",
) -> dict[str, Any]:
    """One flood; `root`: the daemon's `edge` package comes from there (see bench/ab.py);
    `metrics_listen`: its `[metrics] listen`."""
    if kind == SCRAPED:
        metrics_listen = f"127.0.0.1:{_free_port()}"
    run = _start(kind, port, bundle, work, qos, 2_000_000, root, metrics_listen)
    scraping = _Scraper(metrics_listen) if metrics_listen else None
    try:
        _warm(run, port, streams, BASE.seq_len)
        rounds = max(1, messages // streams)
        total = rounds * streams
        before = run.counters() if kind != "relay" else {}
        counter = Counter(port, expect=total, idle_s=10.0)
        cpu0 = run.cpu_s()
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "streams": streams,
            "rounds": rounds,
            "start_round": BASE.seq_len - 1,
            "ts0": TS0,
            "interval": B.INTERVAL_S,
            "qos": qos,
        }
        pub = tool("flood", spec, timeout=600)
        got = counter.result(timeout=total / 500 + 60)
        cpu = run.cpu_s() - cpu0
        after = run.counters() if kind != "relay" else {}
    finally:
        scrapes = scraping.stop() if scraping else 0
        code = run.stop()
    seconds = max(1e-9, (got["last_ns"] - pub["start_ns"]) / 1e9)
    samples = (
        after.get("samples", 0) - before.get("samples", 0) if kind != "relay" else got["count"]
    )
    r = {
        "kind": kind,
        "streams": streams,
        "qos": qos,
        "messages": total,
        "received": got["count"],
        "seconds": seconds,
        "forecasts_per_s": got["count"] / seconds,
        "samples_per_s": samples / seconds,
        "publish_per_s": total / max(1e-9, (pub["end_ns"] - pub["start_ns"]) / 1e9),
        "cpu_us_per_msg": 1e6 * cpu / max(1, got["count"]),  # robust to a noisy neighbour
        "start_s": run.start_s,
        "exit_code": code,
    }
    if scraping:
        r["scrapes"] = scrapes
    if kind != "relay":
        r["counters"] = {
            k: after.get(k, 0) - before.get(k, 0)
            for k in (
                "samples",
                "forecasts",
                "messages",
                "invokes",
                "mqtt_received",
                "mqtt_dropped_queue_full",
                "mqtt_outbox_overflow",
                "mqtt_publish_failed",
                "bad_payloads",
            )
        }
    log(
        f"e2e: {kind:6s} {streams:>6} streams qos {qos}: {r['forecasts_per_s']:>8.0f} forecasts/s "
        f"({got['count']}/{total} in {seconds:.2f} s; {r['cpu_us_per_msg']:.1f} µs CPU each; "
        f"publisher {r['publish_per_s']:.0f}/s)"
    )
    return r


def latency(
    kind: str,
    port: int,
    bundle: Path,
    work: Path,
    streams: int,
    rate: float,
    seconds: float,
    qos: int,
    root: Path | None = None,
) -> dict[str, Any]:
    run = _start(kind, port, bundle, work, qos, queue=10000, root=root)
    try:
        _warm(run, port, streams, BASE.seq_len)
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "streams": streams,
            "rate": rate,
            "seconds": seconds,
            "start_round": BASE.seq_len - 1,
            "ts0": TS0,
            "interval": B.INTERVAL_S,
            "qos": qos,
            "filter": "forecasts/+",
        }
        res = tool("latency", spec, timeout=seconds + 60)
    finally:
        run.stop()
    ms = res["ms"]
    log(
        f"e2e: {kind:6s} latency at {rate:.0f}/s qos {qos}: p50 {ms['p50']} ms, p99 {ms['p99']} ms "
        f"({res['matched']}/{res['sent']} matched)"
    )
    return {"kind": kind, "streams": streams, "rate": rate, "qos": qos, **res}


def run(quick: bool, cache: Path) -> dict[str, Any]:
    from seqcast.tools.localbroker import LocalMosquitto

    bundle = B.ensure([BASE], cache)[BASE]
    pinned = pin_self(LOAD_CORE)
    stream_counts = (1, 100) if quick else (1, 100, 1000, 10000)
    repeats, messages = (1, 6_000) if quick else (3, 100_000)  # ~3 s a flood: noise averages out
    rates, lat_s = ((1000.0,), 2.0) if quick else ((100.0, 1000.0, 5000.0), 3.0)
    thr: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp, LocalMosquitto() as broker:
        if broker.proc is not None and pinned is not None:
            os.sched_setaffinity(broker.proc.pid, {pinned})
        work, port = Path(tmp), broker.port
        for n in stream_counts:
            # each feature's cost: the same flood without it (VARIANTS), at the head figures
            variants = (*VARIANTS, SCRAPED)
            kinds = ("relay", "daemon", *variants) if n in (100, 1000) else ("relay", "daemon")
            for _ in range(repeats):
                for kind in kinds:
                    thr.append(throughput(kind, port, bundle, work, n, messages, qos=0))
        if not quick:
            for kind in ("relay", "daemon"):
                # 12,500 as before: a longer QoS 1 flood overflows paho's 10,000-message outbox
                thr.append(throughput(kind, port, bundle, work, 1000, 12_500, qos=1))
        for _ in range(repeats):  # interleaved too: one 3 s run's p99 is 30 samples
            for rate in rates:
                for kind in ("relay", "daemon"):
                    lat.append(latency(kind, port, bundle, work, 100, rate, lat_s, qos=1))
    summary_rows = summarize(thr)
    return {
        "name": "e2e",
        "orchestrator_core": pinned,
        "bundle": BASE.key,
        "repeats": repeats,
        "throughput": thr,
        "latency": lat,
        "summary": summary_rows,
        "targets": targets_of(summary_rows, lat, quick),
    }
