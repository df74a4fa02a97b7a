"""Benchmark 1: inference cost per sample, stream mode vs window mode, and the tutorial baseline.

Every variant ("cell") is a callable that processes B samples; each round times one block of
calls per cell, cells interleaved, so drift on a noisy machine hits every variant alike. We report
the median over rounds of microseconds per sample, and the interquartile range.

Levels: `model` is the interpreter wrapper alone (`LoadedModel.step` / `.window`, what the engine
calls); `engine` adds the stream table (slot lookup, state gather/scatter, ring buffer, scaling);
`pipeline` adds JSON decoding and forecast encoding (everything the daemon does except MQTT);
`keras` is what tutorials do: `model.predict` on the (1, L, F) window for each new sample.

# B: batch  L: seq_len  F: features  U: units  H: horizon  T: targets
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import bundles as B
from bench.common import LOAD_CORE, log, pin_self, summary
from bench.inference_report import QUANTS, derive, markdown, plot, targets_of

__all__ = ["markdown", "plot", "run"]

SEQ_LENS = (16, 48, 128, 256)
CELLS = ("lstm", "gru")
BATCHES = (1, 4, 16, 64, 256)


@dataclass(frozen=True, slots=True)
class Message:
    """What the MQTT layer hands the pipeline (the shape of `edge.pipeline.Inbound`)."""

    stream: str
    topic: str
    payload: bytes
    received_at: float
    mid: int = 0
    qos: int = 0
    dup: bool = False


@dataclass
class Cell:
    level: str  # model | engine | pipeline | keras
    mode: str  # stream | window | predict
    spec: B.BundleSpec
    batch: int
    fn: Callable[[], Any]
    calls: int = 1
    samples: list[float] = field(default_factory=list)  # us per sample, one per round

    def row(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "mode": self.mode,
            "cell": self.spec.cell,
            "seq_len": self.spec.seq_len,
            "quant": self.spec.quant,
            "batch": self.batch,
            "calls_per_block": self.calls,
            "us_per_sample": summary(self.samples),
        }


def plan(quick: bool) -> tuple[list[B.BundleSpec], tuple[int, ...]]:
    if quick:
        return [B.BundleSpec(48, "lstm", q) for q in ("float32", "dynamic")], (1, 64)
    return [B.BundleSpec(L, c, q) for L in SEQ_LENS for c in CELLS for q in QUANTS], BATCHES


def _model_cells(spec: B.BundleSpec, path: Path, batches: tuple[int, ...]) -> list[Cell]:
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model

    model, _ = load_model(read_bundle(path), "litert", 1)
    rng = np.random.default_rng(0)
    F, L = len(B.FEATURES), spec.seq_len
    cells = []
    for b in batches:
        x1 = rng.standard_normal((b, F)).astype(np.float32)  # (B, F)
        states = model.zero_states(b)  # [(B, U), ...]
        xw = rng.standard_normal((b, L, F)).astype(np.float32)  # (B, L, F)
        cells.append(Cell("model", "stream", spec, b, lambda x=x1, s=states: model.step(x, s)))
        cells.append(Cell("model", "window", spec, b, lambda x=xw: model.window(x)))
    return cells


def _engine_cells(spec: B.BundleSpec, path: Path, batches: tuple[int, ...]) -> list[Cell]:
    """Engine and whole-pipeline cells: B streams, one new sample each per call, kept warm."""
    from seqcast.edge.config import StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline

    model, _ = load_model(read_bundle(path), "litert", 1)
    cells = []
    rows = B.synthetic_rows(512)
    for mode in ("stream", "window"):
        for b in batches:
            pipe = Pipeline(model, mode=mode, streams=StreamsConfig(max_streams=b))
            names = [f"meter-{i}" for i in range(b)]
            clock = {"t": 0}

            def engine_call(p: Any = pipe, names: list[str] = names, clock: dict = clock) -> Any:
                k = clock["t"] = clock["t"] + 1
                _, load, temp = rows[k % len(rows)]
                ts = 1.0e9 + k * B.INTERVAL_S
                return p.engine.process([(n, ts, (load, temp)) for n in names])

            def pipeline_call(p: Any = pipe, names: list[str] = names, clock: dict = clock) -> Any:
                k = clock["t"] = clock["t"] + 1
                _, load, temp = rows[k % len(rows)]
                body = b'{"ts":%r,"load":%r,"temp":%r}' % (1.0e9 + k * B.INTERVAL_S, load, temp)
                return p.handle([Message(n, f"sensors/{n}/data", body, 2.0e9) for n in names])

            cells.append(Cell("engine", mode, spec, b, engine_call))
            cells.append(Cell("pipeline", mode, spec, b, pipeline_call))
    return cells


def _keras_cells(specs: list[B.BundleSpec]) -> list[Cell]:
    """The tutorial model (Input -> LSTM/GRU(64) -> Dense), `predict` on one window per sample.
    Untrained weights: the cost does not depend on them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    cells = []
    for spec in specs:
        layer = keras.layers.LSTM if spec.cell == "lstm" else keras.layers.GRU
        m = keras.Sequential(
            [
                keras.Input((spec.seq_len, len(B.FEATURES))),
                layer(B.UNITS),
                keras.layers.Dense(B.HORIZON * len(B.TARGETS)),
            ]
        )
        x = np.random.default_rng(0).standard_normal((1, spec.seq_len, 2)).astype(np.float32)
        cells.append(Cell("keras", "predict", spec, 1, lambda m=m, x=x: m.predict(x, verbose=0)))
    return cells


def _calibrate(cells: list[Cell], block_s: float) -> None:
    for c in cells:
        for _ in range(60 if c.level in ("engine", "pipeline") else 2):  # warm: streams, buckets
            c.fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < block_s / 2 or n < 1:
            c.fn()
            n += 1
        per_call = (time.perf_counter() - t0) / n
        c.calls = max(1, int(block_s / per_call))


def _measure(cells: list[Cell], rounds: int) -> None:
    for r in range(rounds):
        order = cells[r % len(cells) :] + cells[: r % len(cells)]  # rotate the start each round
        for c in order:
            fn, k = c.fn, c.calls
            t0 = time.perf_counter_ns()
            for _ in range(k):
                fn()
            c.samples.append((time.perf_counter_ns() - t0) / 1e3 / (k * c.batch))
        log(f"inference: round {r + 1}/{rounds} done")


def run(quick: bool, cache: Path) -> dict[str, Any]:
    specs, batches = plan(quick)
    paths = B.ensure(specs, cache)
    pinned = pin_self(LOAD_CORE)
    log(f"inference: pinned to core {pinned}; {len(specs)} bundles, batches {batches}")
    base = B.BundleSpec(48, "lstm", "float32")
    cells: list[Cell] = []
    for spec in specs:
        cells += _model_cells(spec, paths[spec], batches)
    cells += _engine_cells(base, paths[base], batches)
    cells += _keras_cells(sorted({B.BundleSpec(s.seq_len, s.cell, "float32") for s in specs}))
    block_s, rounds = (0.01, 3) if quick else (0.025, 7)
    _calibrate(cells, block_s)
    _measure(cells, rounds)
    results = [c.row() for c in cells]
    cells.clear()  # the interpreters (and Keras) hold a lot of memory: free it for what follows
    gc.collect()
    return {
        "name": "inference",
        "core": pinned,
        "rounds": rounds,
        "block_s": block_s,
        "batches": list(batches),
        "results": results,
        "derived": derive(results),
        "targets": targets_of(results),
    }
