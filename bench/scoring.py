"""Live scoring's cost in process: `Pipeline.handle` with `[quality]` on and off, side by side.

    python -m bench.scoring [--quick] [--out bench/results]     (or bench.run --only scoring)

The same messages go through two pipelines on the same loaded model, one scoring its forecasts
(`[quality]`, the default) and one with `enabled = false`, in interleaved rounds (the order
rotating); each cell is the CPU time (`time.process_time`) per message, the median over the
rounds with min-max. Three shapes of load:

- `1 stream`: one stream sends everything, each message its own batch (every step an invoke of
  one row: the scorer's single-slot path);
- `1,000 streams, batches of 125`: what a flood through mosquitto looks like to the daemon (the
  e2e benchmark's 1,000-stream runs average about 124 rows per invoke);
- `1,000 streams, batches of 1,000`: a backlog drained in big batches.

The end-to-end figure (through mosquitto, processes pinned) is `bench.e2e`'s `unscored` row and
`python -m bench.ab ... scored=. unscored=. --unscored unscored`. To compare with an older
checkout, run this file with that checkout's `seqcast` first on PYTHONPATH (bench/ab.py's view).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import (
    CACHE,
    RESULTS,
    log,
    machine_info,
    machine_line,
    md_table,
    target,
    targets_table,
    write_results,
)
from bench.inference import Message  # what the MQTT layer hands the pipeline

BASE = B.BundleSpec(48, "lstm", "float32")  # the e2e benchmark's bundle
SHAPES = (("1 stream", 1, 1), ("1,000 streams, batches of 125", 1000, 125))
SHAPES += (("1,000 streams, batches of 1,000", 1000, 1000),)
VARIANTS = ("scored", "unscored")


class Feed:
    """Round-robin messages of `streams` streams on the bundle's grid, cut into batches."""

    def __init__(self, streams: int, batch: int) -> None:
        self.names = [f"meter-{i}" for i in range(streams)]
        self.rows = B.synthetic_rows(512)
        self.batch = batch
        self.step = 0  # the next grid step (every stream sends once per step)
        self.at = 0  # the next stream within the step

    def batches(self, messages: int) -> list[list[Message]]:
        out: list[list[Message]] = []
        current: list[Message] = []
        for _ in range(messages):
            name = self.names[self.at]
            _, load, temp = self.rows[(self.step + self.at) % len(self.rows)]
            body = b'{"ts":%r,"load":%r,"temp":%r}' % (1.0e9 + self.step * B.INTERVAL_S, load, temp)
            current.append(Message(name, f"sensors/{name}/data", body, 2.0e9))
            self.at += 1
            if self.at == len(self.names):
                self.at, self.step = 0, self.step + 1
            if len(current) == self.batch:
                out.append(current)
                current = []
        return out + ([current] if current else [])


def _pipelines(bundle: Path, streams: int) -> dict[str, Any]:
    from seqcast.edge.config import QualityConfig, StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline

    model, _ = load_model(read_bundle(bundle), "litert", 1)
    table = StreamsConfig(max_streams=max(streams, 16))
    return {
        "scored": Pipeline(model, streams=table),
        "unscored": Pipeline(model, streams=table, quality=QualityConfig(enabled=False)),
    }


def _cpu_per_message(pipe: Any, batches: list[list[Message]]) -> float:
    n = sum(len(b) for b in batches)
    t0 = time.process_time()
    for b in batches:
        pipe.handle(b)
    return (time.process_time() - t0) / n * 1e6


def run(quick: bool = False, cache: Path = CACHE, rounds: int | None = None) -> dict[str, Any]:
    bundle = B.ensure([BASE], cache)[BASE]
    rounds = rounds or (2 if quick else 7)
    per_round = 2_000 if quick else 10_000
    cells: list[dict[str, Any]] = []
    for label, streams, batch in SHAPES:
        pipes = _pipelines(bundle, streams)
        feeds = {v: Feed(streams, batch) for v in VARIANTS}  # each pipeline its own clock
        warm = BASE.seq_len * streams  # every stream past its warm-up, scores flowing
        for v in VARIANTS:
            for b in feeds[v].batches(warm + per_round):
                pipes[v].handle(b)
        samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for r in range(rounds):
            order = VARIANTS[r % 2 :] + VARIANTS[: r % 2]
            for v in order:
                samples[v].append(_cpu_per_message(pipes[v], feeds[v].batches(per_round)))
        scored = pipes["scored"].quality_snapshot()["summary"]["streams_scored"]
        assert scored == streams, f"{label}: {scored} of {streams} streams scored"
        for v in VARIANTS:
            s = samples[v]
            cells.append(
                {"shape": label, "variant": v, "streams": streams, "batch": batch, "us": s}
            )
            log(f"scoring: {label} {v}: {statistics.median(s):.1f} µs/msg CPU")
    return {"rounds": rounds, "messages_per_round": per_round, "cells": cells,
            "targets": targets_of(cells)}  # fmt: skip


def _median(cells: list[dict[str, Any]], shape: str, variant: str) -> float:
    return statistics.median(
        next(c["us"] for c in cells if c["shape"] == shape and c["variant"] == variant)
    )


def targets_of(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    label = SHAPES[1][0]
    ratio = _median(cells, label, "unscored") / _median(cells, label, "scored") * 100
    name = "live scoring's cost in process: messages/CPU-s with / without (1,000 streams, 125)"
    return [target(name, ratio, 95, ">=", "%")]


def markdown(doc: dict[str, Any]) -> str:
    rows = []
    for label, _, _ in SHAPES:
        on, off = (
            next(c["us"] for c in doc["cells"] if c["shape"] == label and c["variant"] == v)
            for v in VARIANTS
        )
        m_on, m_off = statistics.median(on), statistics.median(off)
        rows.append(
            [
                label,
                f"{m_on:.1f} ({min(on):.1f}–{max(on):.1f})",
                f"{m_off:.1f} ({min(off):.1f}–{max(off):.1f})",
                f"{m_on - m_off:+.1f}",
                f"{m_off / m_on * 100:.1f}%",
            ]
        )
    head = "## Live scoring in process (`Pipeline.handle`, CPU µs per message"
    head += f", median of {doc['rounds']} interleaved rounds of {doc['messages_per_round']:,})"
    table = md_table(["load", "scored", "unscored", "scoring", "throughput with / without"], rows)
    return head + "\n\n" + table


def plot(doc: dict[str, Any]) -> Any:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot(1, 1, 1)
        labels = [s[0] for s in SHAPES]
        for k, v in enumerate(VARIANTS):
            med = [_median(doc["cells"], label, v) for label in labels]
            ax.bar([i + 0.4 * k for i in range(len(labels))], med, 0.4, label=v)
        ax.set_xticks([i + 0.2 for i in range(len(labels))], labels)
        ax.set_ylabel("CPU µs per message")
        ax.set_title("Live scoring's cost, Pipeline.handle in process")
        ax.legend()

    return draw


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 rounds of 2,000 messages")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (7; --quick: 2)")
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results folder ({RESULTS})")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    doc = {"name": "scoring", "quick": args.quick, "machine": machine_info()}
    doc |= run(args.quick, CACHE, args.rounds)
    doc["elapsed_s"] = round(time.monotonic() - t0, 1)
    md = markdown(doc) + "\n\n## Targets\n\n" + targets_table(doc["targets"])
    md += f"\n\nMachine: {machine_line(doc['machine'])}. Took {doc['elapsed_s']:.0f} s."
    write_results(args.out, "scoring", doc, md, plot(doc))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
