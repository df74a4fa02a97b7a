"""Partitioned workers benchmark, analysis: summary, targets, markdown tables and the plot of
`bench.workers`."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.common import md_table, summary, target

BASE_SCALE = "nats-1"  # the scaling ratios are against one worker on the same engine
REFERENCE = "mosquitto-1"  # ... and against the single daemon on mosquitto (what runs today)
GOAL_2 = 1.7
P99_GOAL_MS = 2.0  # bench/e2e.py's latency goal at 1,000 samples/s


def _names(runs: list[dict[str, Any]]) -> list[str]:
    """Variants in first-seen order of (engine, workers): mosquitto first, then by workers."""
    seen = {(r["engine"] != "mosquitto", r["workers"], r["variant"]) for r in runs}
    return [n for _, _, n in sorted(seen)]


def paired_ratios(runs: list[dict[str, Any]], num: str, den: str, key: str) -> list[float]:
    """`num`'s value over `den`'s within each round (both ran in it): drift between rounds
    cancels."""
    by_round: dict[int, dict[str, float]] = {}
    for r in runs:
        by_round.setdefault(r["round"], {})[r["variant"]] = r[key]
    return [
        v[num] / v[den] for _, v in sorted(by_round.items()) if num in v and den in v and v[den]
    ]


def _ceilings(rows: list[dict[str, Any]], n_cores: int) -> None:
    """The most N workers could reach over one, from the CPU each forecast costs: one worker has
    a core of its own (rate <= 1 / W1), N workers share all `n_cores` with the broker and the
    load (rate <= n_cores / (W + B + L)), and no more than min(N, n_cores) cores' worth of
    workers; `without_load`: the same when publishers and subscribers run elsewhere."""
    one = next((r for r in rows if r["variant"] == BASE_SCALE), None)
    for r in rows:
        if one is None or r["engine"] != "nats" or r["workers"] < 2:
            continue
        w1, cpu = one["cpu_us"]["workers"], r["cpu_us"]
        cap = min(r["workers"], n_cores) * w1 / cpu["workers"]
        r["ceiling_over_nats_1"] = min(cap, n_cores * w1 / sum(cpu.values()))
        r["ceiling_without_load"] = min(cap, n_cores * w1 / (cpu["workers"] + cpu["broker"]))


def summarize(
    thr: list[dict[str, Any]], lat: list[dict[str, Any]], n_cores: int = 2
) -> dict[str, Any]:
    out: dict[str, Any] = {"throughput": [], "latency": []}
    for name in _names(thr):
        mine = [r for r in thr if r["variant"] == name]
        rate = summary([r["forecasts_per_s"] for r in mine])
        row: dict[str, Any] = {
            "variant": name,
            "engine": mine[0]["engine"],
            "workers": mine[0]["workers"],
            "partitions": mine[0]["partitions"],
            "cores": mine[0]["worker_cores"],
            "runs": len(mine),
            "forecasts_per_s": rate,
            "cpu_us": {
                part: statistics.median(r["cpu_us_per_forecast"][part] for r in mine)
                for part in ("workers", "broker", "load")
            },
            "messages": sum(r["messages"] for r in mine),
            "lost": sum(r["lost"] for r in mine),
            "dropped": sum(
                r["counters"].get("mqtt_dropped_queue_full", 0)
                + r["counters"].get("mqtt_outbox_overflow", 0)
                for r in mine
            ),
        }
        for label, den in (("over_nats_1", BASE_SCALE), ("over_mosquitto", REFERENCE)):
            ratios = paired_ratios(thr, name, den, "forecasts_per_s")
            row[label] = summary(ratios) if ratios else None
        out["throughput"].append(row)
    _ceilings(out["throughput"], n_cores)
    ref = [r for r in lat if r["variant"] == REFERENCE]
    ref_p50 = statistics.median(r["ms"]["p50"] for r in ref) if ref else None
    ref_p99 = statistics.median(r["ms"]["p99"] for r in ref) if ref else None
    for name in _names(lat):
        mine = [r for r in lat if r["variant"] == name]
        p50 = statistics.median(r["ms"]["p50"] for r in mine)
        p99 = statistics.median(r["ms"]["p99"] for r in mine)
        out["latency"].append(
            {
                "variant": name,
                "workers": mine[0]["workers"],
                "streams": mine[0]["streams"],
                "runs": len(mine),
                "p50_ms": p50,
                "p99_ms": p99,
                "p99_runs": [r["ms"]["p99"] for r in mine],
                "p50_runs": [r["ms"]["p50"] for r in mine],
                "added_p50_ms": None if ref_p50 is None else p50 - ref_p50,
                "added_p99_ms": None if ref_p99 is None else p99 - ref_p99,
                "sent": sum(r["sent"] for r in mine),
                "matched": sum(r["matched"] for r in mine),
                "achieved_rate": statistics.median(r["achieved_rate"] for r in mine),
            }
        )
    return out


def _row(rows: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((r for r in rows if r["variant"] == name), None)


def targets_of(
    rows: dict[str, Any], quick: bool, streams: int, rate: float
) -> list[dict[str, Any]]:
    thr, lat = rows["throughput"], rows["latency"]
    two = _row(thr, "nats-2")
    note = "--quick: tiny floods" if quick else ""
    ts = []
    if two is not None:
        for key, base in (("over_nats_1", "1 worker on nats"), ("over_mosquitto", "one daemon")):
            s = two[key]
            ts.append(
                target(
                    f"2 workers / {base}, forecasts/s ({streams:,} streams, QoS 0; paired rounds)",
                    s["median"] if s else None,
                    GOAL_2,
                    ">=",
                    "x",
                    note
                    or (
                        f"rounds {s['min']:.2f}–{s['max']:.2f}; 2 cores shared with broker and load"
                        if s
                        else ""
                    ),
                )
            )
    lost = sum(r["lost"] for r in thr)
    total = sum(r["messages"] for r in thr)
    ts.append(target("forecasts lost in every flood", lost, 0, "<=", "", f"of {total:,} messages"))
    for r in lat:
        if r["variant"] == REFERENCE:
            continue
        ts.append(
            target(
                f"p99 latency, {r['variant']} ({rate:,.0f}/s, QoS 1, {r['streams']} streams)",
                r["p99_ms"],
                P99_GOAL_MS,
                "<",
                " ms",
                f"mosquitto-1 {r['p99_ms'] - r['added_p99_ms']:.2f} ms"
                if r["added_p99_ms"] is not None
                else "",
            )
        )
    return ts


def _ratio(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{s['median']:.2f}× ({s['min']:.2f}–{s['max']:.2f})"


def _cores(cs: list[int | None]) -> str:
    return ", ".join("-" if c is None else str(c) for c in cs)


def markdown(doc: dict[str, Any]) -> str:
    rows = doc["summary"]
    lines = [
        "# Partitioned workers: 1, 2 and 4 daemons behind nats-server vs one on mosquitto",
        "",
        f"Throughput: {doc['streams']:,} streams warmed, then {doc['messages']:,} single-sample "
        f"QoS 0 messages flooded per run; {doc['rounds']} rounds, every variant once per round in "
        "rotating order, each with a fresh broker and fresh workers. P = workers (a daemon serves "
        "one partition). Workers pinned round robin over the cores (column `cores`); broker, "
        "publisher, counter and orchestrator unpinned, sharing the same cores. Ratios are the "
        "median (min–max) of the per-round ratios.",
        "",
        md_table(
            [
                "variant",
                "workers (cores)",
                "forecasts/s median (min–max)",
                "× nats-1",
                "× mosquitto-1",
                "CPU µs/forecast workers / broker / load",
                "lost",
            ],
            [
                [
                    r["variant"],
                    f"{r['workers']} ({_cores(r['cores'])})",
                    f"{r['forecasts_per_s']['median']:,.0f} "
                    f"({r['forecasts_per_s']['min']:,.0f}–{r['forecasts_per_s']['max']:,.0f})",
                    _ratio(r["over_nats_1"]),
                    _ratio(r["over_mosquitto"]),
                    f"{r['cpu_us']['workers']:.1f} / {r['cpu_us']['broker']:.1f} / "
                    f"{r['cpu_us']['load']:.1f}",
                    f"{r['lost']:,} of {r['messages']:,}",
                ]
                for r in rows["throughput"]
            ],
        ),
        "",
        "Per run (forecasts/s, in the order they ran):",
        "",
        md_table(
            ["round", "order", *[r["variant"] for r in rows["throughput"]]],
            [
                [
                    rnd,
                    " → ".join(r["variant"] for r in doc["throughput"] if r["round"] == rnd),
                    *[
                        next(
                            (
                                f"{r['forecasts_per_s']:,.0f}"
                                for r in doc["throughput"]
                                if r["round"] == rnd and r["variant"] == t["variant"]
                            ),
                            "-",
                        )
                        for t in rows["throughput"]
                    ],
                ]
                for rnd in sorted({r["round"] for r in doc["throughput"]})
            ],
        ),
        "",
        "Streams per partition (nats-server's FNV-1a of the ids m000000...): "
        + "; ".join(f"P = {p}: {c}" for p, c in doc["partition_streams"].items()),
        "",
    ]
    ceilings = [r for r in rows["throughput"] if "ceiling_over_nats_1" in r]
    if ceilings:
        lines += [
            f"CPU ceiling on these {len(doc['cores'])} cores (from the CPU medians above: one "
            "worker owns a core, N workers share every core with the broker and the load): "
            + "; ".join(
                f"{r['variant']} ≤ {r['ceiling_over_nats_1']:.2f}× nats-1 "
                f"({r['ceiling_without_load']:.2f}× with publishers and subscribers elsewhere)"
                for r in ceilings
            )
            + ".",
            "",
        ]
    spec = doc["latency_spec"]
    lines += [
        f"## Latency: sensor publish → forecast received, {spec['rate']:,.0f} samples/s, "
        f"QoS {spec['qos']}, {spec['streams']} streams, {spec['seconds']:g} s a run",
        "",
        f"{doc['latency_rounds']} rounds, rotating order; medians over the runs; "
        "added = this variant's median minus mosquitto-1's.",
        "",
        md_table(
            ["variant", "p50 ms", "p99 ms", "p99 per run", "added p50 / p99 ms", "matched"],
            [
                [
                    r["variant"],
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                    " ".join(f"{x:.2f}" for x in r["p99_runs"]),
                    "-"
                    if r["variant"] == REFERENCE or r["added_p50_ms"] is None
                    else f"{r['added_p50_ms']:+.2f} / {r['added_p99_ms']:+.2f}",
                    f"{r['matched']:,} / {r['sent']:,}",
                ]
                for r in rows["latency"]
            ],
        ),
        "",
        "Load average (1, 5, 15 min) before the run and after each round: "
        + "; ".join("/".join(f"{x:g}" for x in la) for la in doc["load_average"])
        + ".",
    ]
    return "\n".join(lines)


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        rows = doc["summary"]
        thr = rows["throughput"]
        names = [r["variant"] for r in thr]
        ax1, ax2, ax3 = fig.subplots(1, 3)
        xs = range(len(names))
        ax1.bar(xs, [r["forecasts_per_s"]["median"] for r in thr], color="#4c72b0")
        for i, n in enumerate(names):
            pts = [r["forecasts_per_s"] for r in doc["throughput"] if r["variant"] == n]
            ax1.plot([i] * len(pts), pts, "k.", ms=4)
        ax1.set_xticks(list(xs), names, rotation=20)
        ax1.set_ylabel("forecasts/s")
        ax1.set_title(f"flood, {doc['streams']:,} streams, QoS 0")
        bottom = [0.0] * len(thr)
        for part, color in (("workers", "#4c72b0"), ("broker", "#dd8452"), ("load", "#999999")):
            vals = [r["cpu_us"][part] for r in thr]
            ax2.bar(xs, vals, bottom=bottom, color=color, label=part)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax2.set_xticks(list(xs), names, rotation=20)
        ax2.set_ylabel("CPU µs per forecast")
        ax2.set_title("CPU per forecast (medians)")
        ax2.legend(fontsize=8)
        lat = rows["latency"]
        lx = range(len(lat))
        ax3.bar([x - 0.2 for x in lx], [r["p50_ms"] for r in lat], 0.4, label="p50")
        ax3.bar([x + 0.2 for x in lx], [r["p99_ms"] for r in lat], 0.4, label="p99")
        ax3.set_xticks(list(lx), [r["variant"] for r in lat], rotation=20)
        ax3.set_ylabel("ms")
        spec = doc["latency_spec"]
        ax3.set_title(f"latency, {spec['rate']:,.0f}/s QoS {spec['qos']}")
        ax3.legend(fontsize=8)

    return draw


def rerender(path: str) -> None:
    """Rewrite workers.md and workers.png from workers.json (after a change to this module)."""
    import json
    from pathlib import Path

    from bench.common import machine_line, targets_table, write_results

    doc = json.loads(Path(path).read_text())
    doc["summary"] = summarize(doc["throughput"], doc["latency"], len(doc["cores"]))
    spec = doc["latency_spec"]
    doc["targets"] = targets_of(doc["summary"], doc["quick"], doc["streams"], spec["rate"])
    md = markdown(doc) + "\n\n## Targets\n\n" + targets_table(doc["targets"])
    md += f"\n\nMachine: {machine_line(doc['machine'])}. Took {doc['elapsed_s']:.0f} s"
    md += " (--quick)." if doc["quick"] else "."
    write_results(Path(path).parent, doc["name"], doc, md, plot(doc))


if __name__ == "__main__":
    import sys

    rerender(sys.argv[1])
