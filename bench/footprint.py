"""Benchmark 3: footprint: resident memory with N streams, and cold start per backend.

RSS: the daemon runs with `[streams] max_streams = N`; every stream sends seq_len samples (one
JSON array each, in bursts of 1,000 streams, each taken in full before the next), so every ring
buffer and state row has been written. We read VmRSS and VmHWM from /proc/PID/status.

Cold start: Popen of `seqcast-edge run` -> the retained `online` status arrives (published after
the subscription is acknowledged); bundle verification and self-test included.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import LOAD_CORE, log, md_table, pin_self, summary, target
from bench.mqttraw import RawClient
from bench.procs import start_daemon
from bench.publisher import encode_messages

BASE = B.BundleSpec(48, "lstm", "float32")
CHUNK = 1000  # streams per burst: keeps the daemon's transient batch memory small


def rss(
    port: int, bundle: Path, work: Path, streams: int, root: Path | None = None
) -> dict[str, Any]:
    """`root`: run the `edge` package found there (A/B, see bench/ab.py)."""
    run = start_daemon(
        port,
        bundle,
        work,
        root=root,
        max_streams=streams,
        qos_in=0,
        qos_out=0,
        status_interval_s=0.2,
    )
    pub = RawClient("127.0.0.1", port, f"bench-fp-{streams}")
    pub.sock.settimeout(None)
    try:
        idle = run.memory_kb()
        L = BASE.seq_len
        for lo in range(0, streams, CHUNK):  # a burst, then wait until the daemon took it all
            hi = min(streams, lo + CHUNK)
            pub.send(
                b"".join(
                    encode_messages(
                        {
                            "stream_lo": lo,
                            "streams": hi,
                            "rounds": L,
                            "per_message": L,
                            "ts0": B.TS0,
                            "interval": B.INTERVAL_S,
                        }
                    )
                )
            )
            if not run.wait_samples(hi * L, timeout=600):
                raise RuntimeError(f"daemon did not take {hi * L} samples:\n{run.log_tail()}")
        counters = run.counters()
        mem = run.memory_kb()
    finally:
        pub.close()
        run.stop()
    r = {
        "streams": streams,
        "idle_rss_mb": idle["VmRSS"] / 1024,
        "rss_mb": mem["VmRSS"] / 1024,
        "hwm_mb": mem["VmHWM"] / 1024,
        "anon_mb": mem.get("RssAnon", 0) / 1024,  # heap, numpy arrays: ours
        "file_mb": mem.get("RssFile", 0) / 1024,  # pages of mapped libraries (shared, reclaimable)
        "idle_anon_mb": idle.get("RssAnon", 0) / 1024,
        "samples": counters.get("samples"),
        "forecasts": counters.get("forecasts"),
        "streams_live": counters.get("streams"),
        "bytes_per_stream": (mem["VmRSS"] - idle["VmRSS"]) * 1024 / streams,
    }
    log(
        f"footprint: {streams:>7} streams: RSS {r['rss_mb']:.1f} MB (idle {r['idle_rss_mb']:.1f}, "
        f"peak {r['hwm_mb']:.1f})"
    )
    return r


def backends() -> dict[str, str | None]:
    """backend -> None if importable here, else why not (without importing it)."""
    import numpy

    out: dict[str, str | None] = {}
    for key, module in (
        ("litert", "ai_edge_litert"),
        ("tflite_runtime", "tflite_runtime"),
    ):
        if importlib.util.find_spec(module) is None:
            why = f"{module} is not installed"
            if key == "tflite_runtime":
                why += (
                    f" (tflite-runtime's last release, 2.14, needs numpy<2; numpy here is "
                    f"{numpy.__version__})"
                )
            out[key] = why
        else:
            out[key] = None
    return out


def cold_starts(
    port: int, bundle: Path, work: Path, runs: int, keys: list[str]
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(runs):
        for key in keys:  # interleaved
            run = start_daemon(port, bundle, work, backend=key)
            times[key].append(run.start_s)
            run.stop()
            log(f"footprint: cold start {key}: {run.start_s:.2f} s")
    return times


def run(quick: bool, cache: Path) -> dict[str, Any]:
    from seqcast.tools.localbroker import LocalMosquitto

    bundle = B.ensure([BASE], cache)[BASE]
    pinned = pin_self(LOAD_CORE)
    counts = (10, 1000) if quick else (10, 1000, 10_000, 100_000)
    avail = backends()
    usable = [k for k, why in avail.items() if why is None]
    if quick:
        usable = usable[:1]
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp, LocalMosquitto() as broker:
        if broker.proc is not None and pinned is not None:
            os.sched_setaffinity(broker.proc.pid, {pinned})
        work = Path(tmp)
        mem = [rss(broker.port, bundle, work, n) for n in counts]
        cold = cold_starts(broker.port, bundle, work, 1 if quick else 3, usable)
    cold_rows = []
    for key, why in avail.items():
        cold_rows.append(
            {
                "backend": key,
                "available": why is None,
                "reason": why,
                "seconds": summary(cold[key]) if key in cold else None,
                "runs": cold.get(key, []),
            }
        )
    return {
        "name": "footprint",
        "orchestrator_core": pinned,
        "bundle": BASE.key,
        "rss": mem,
        "cold_start": cold_rows,
        "targets": targets_of(mem, cold_rows),
    }


def targets_of(mem: list[dict[str, Any]], cold: list[dict[str, Any]]) -> list[dict[str, Any]]:
    at10k = next((m["rss_mb"] for m in mem if m["streams"] == 10_000), None)
    lit = next((c for c in cold if c["backend"] == "litert" and c["seconds"]), None)
    return [
        target(
            "RSS with 10,000 streams",
            at10k,
            80,
            "<=",
            " MB",
            "" if at10k is not None else "not measured in --quick",
        ),
        target(
            "cold start, litert (process start -> subscribed)",
            statistics.median(lit["runs"]) if lit else None,
            1,
            "<=",
            " s",
        ),
    ]


def markdown(doc: dict[str, Any]) -> str:
    rows = [
        [
            f"{m['streams']:,}",
            f"{m['idle_rss_mb']:.1f}",
            f"{m['rss_mb']:.1f}",
            f"{m['hwm_mb']:.1f}",
            f"{m.get('anon_mb', 0):.1f} / {m.get('file_mb', 0):.1f}",
            f"{m['bytes_per_stream']:,.0f}",
            m["samples"],
        ]
        for m in doc["rss"]
    ]
    crows = []
    for c in doc["cold_start"]:
        if c["available"] and c["seconds"]:
            s = c["seconds"]
            crows.append(
                [c["backend"], f"{s['median']:.2f}", f"{s['min']:.2f}–{s['max']:.2f}", s["n"], ""]
            )
        else:
            crows.append([c["backend"], "-", "-", 0, c["reason"] or "not measured in --quick"])
    return "\n".join(
        [
            "# Footprint (daemon pinned to core 0, seq_len 48 LSTM 64 float32)",
            "",
            "## Resident memory once every stream sent seq_len samples (max_streams = N)",
            "",
            md_table(
                [
                    "streams",
                    "idle RSS MB",
                    "RSS MB",
                    "peak (VmHWM) MB",
                    "anon / file-backed MB",
                    "bytes / stream",
                    "samples taken",
                ],
                rows,
            ),
            "",
            "## Cold start: process start -> subscribed (retained `online` status), with self-test",
            "",
            md_table(["backend", "median s", "min–max s", "runs", "note"], crows),
        ]
    )


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        xs = [m["streams"] for m in doc["rss"]]
        a1.plot(xs, [m["rss_mb"] for m in doc["rss"]], "o-", label="RSS")
        a1.plot(xs, [m["hwm_mb"] for m in doc["rss"]], "s--", label="peak (VmHWM)")
        a1.axhline(80, color="gray", ls=":", label="target at 10k: 80 MB")
        a1.set(xscale="log", xlabel="streams", ylabel="MB", title="daemon resident memory")
        a1.legend(fontsize=7)
        cs = [c for c in doc["cold_start"] if c["seconds"]]
        a2.bar([c["backend"] for c in cs], [c["seconds"]["median"] for c in cs])
        a2.axhline(1, color="gray", ls=":")
        a2.set(ylabel="s", title="cold start (median)")

    return draw
