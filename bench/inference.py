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

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench import bundles as B
from bench.common import LOAD_CORE, log, md_table, pin_self, spread, summary, target

SEQ_LENS = (16, 48, 128, 256)
CELLS = ("lstm", "gru")
QUANTS = ("float32", "float16", "dynamic", "int8")
BATCHES = (1, 4, 16, 64, 256)


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
        return {"level": self.level, "mode": self.mode, "cell": self.spec.cell,
                "seq_len": self.spec.seq_len, "quant": self.spec.quant, "batch": self.batch,
                "calls_per_block": self.calls, "us_per_sample": summary(self.samples)}


def plan(quick: bool) -> tuple[list[B.BundleSpec], tuple[int, ...]]:
    if quick:
        return [B.BundleSpec(48, "lstm", q) for q in ("float32", "dynamic")], (1, 64)
    return [B.BundleSpec(L, c, q) for L in SEQ_LENS for c in CELLS for q in QUANTS], BATCHES


def _model_cells(spec: B.BundleSpec, path: Path, batches: tuple[int, ...]) -> list[Cell]:
    from edge.bundle import read_bundle
    from edge.runtime import load_model

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
    from edge.bundle import read_bundle
    from edge.pipeline import Inbound, Pipeline, PipelineSettings
    from edge.runtime import load_model

    model, _ = load_model(read_bundle(path), "litert", 1)
    cells = []
    rows = B.synthetic_rows(512)
    for mode in ("stream", "window"):
        for b in batches:
            pipe = Pipeline(model, PipelineSettings(mode=mode, max_streams=b), "forecasts/{stream}")
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
                return p.handle([Inbound(n, f"sensors/{n}/data", body, 2.0e9) for n in names])

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
        m = keras.Sequential([keras.Input((spec.seq_len, len(B.FEATURES))), layer(B.UNITS),
                              keras.layers.Dense(B.HORIZON * len(B.TARGETS))])
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
        order = cells[r % len(cells):] + cells[: r % len(cells)]  # rotate the start each round
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
    return {"name": "inference", "core": pinned, "rounds": rounds, "block_s": block_s,
            "batches": list(batches), "results": results, "derived": derive(results),
            "targets": targets_of(results)}


# -- analysis ----------------------------------------------------------------------------------


def _find(results: list[dict], **want: Any) -> float | None:
    for r in results:
        if all(r[k] == v for k, v in want.items()):
            return float(r["us_per_sample"]["median"])
    return None


def derive(results: list[dict]) -> list[dict[str, Any]]:
    """stream/window and stream/keras ratios per (cell, seq_len, quant, batch)."""
    out = []
    for r in results:
        if r["level"] != "model" or r["mode"] != "stream":
            continue
        key = {k: r[k] for k in ("cell", "seq_len", "quant", "batch")}
        s = float(r["us_per_sample"]["median"])
        w = _find(results, level="model", mode="window", **key)
        k = _find(results, level="keras", cell=r["cell"], seq_len=r["seq_len"])
        out.append({**key, "stream_us": s, "window_us": w, "keras_us": k,
                    "stream_over_window": s / w if w else None,
                    "stream_over_keras": s / k if k else None})
    return out


def targets_of(results: list[dict]) -> list[dict[str, Any]]:
    d = {(x["cell"], x["seq_len"], x["quant"], x["batch"]): x for x in derive(results)}
    one = d.get(("lstm", 48, "float32", 1), {})
    b64 = d.get(("lstm", 48, "float32", 64), {})
    sw, sk = one.get("stream_over_window"), one.get("stream_over_keras")
    note = f"batch 64: {100 * b64['stream_over_window']:.2f}%" if b64.get("stream_over_window") else ""
    return [
        target("stream / window cost per sample, seq_len 48 (LSTM, batch 1)",
               None if sw is None else 100 * sw, 5, "<=", "%", note),
        target("stream / Keras predict per sample, seq_len 48 (LSTM, batch 1)",
               None if sk is None else 100 * sk, 0.1, "<=", "%"),
    ]


def markdown(doc: dict[str, Any]) -> str:
    res, der = doc["results"], doc["derived"]
    bs = doc["batches"]
    show = [b for b in (1, 64, 256) if b in bs]
    lines = [f"# Inference cost per sample (µs, median (p25–p75) of {doc['rounds']} interleaved rounds, "
             f"one core)", ""]
    head = ["cell", "L"] + [f"stream B={b}" for b in show] + [f"window B={b}" for b in show]
    head += ["stream/window B=1", "Keras predict", "stream/Keras B=1"]
    rows = []
    for x in der:
        if x["quant"] != "float32" or x["batch"] != 1:
            continue
        key = dict(cell=x["cell"], seq_len=x["seq_len"], quant="float32")
        cells = [_cell(res, "model", "stream", b, **key) for b in show]
        cells += [_cell(res, "model", "window", b, **key) for b in show]
        k = x["keras_us"]
        rows.append([x["cell"], x["seq_len"], *cells, _pct(x["stream_over_window"]),
                     f"{k / 1000:.2f} ms" if k else "-", _pct(x["stream_over_keras"], 4)])
    lines += ["## float32, interpreter wrapper (`LoadedModel.step` / `.window`)", "",
              md_table(head, rows), ""]
    qrows = []
    for x in der:
        if x["batch"] in show:
            qrows.append([x["cell"], x["seq_len"], x["quant"], x["batch"], f"{x['stream_us']:.3g}",
                          f"{x['window_us']:.3g}" if x["window_us"] else "-",
                          _pct(x["stream_over_window"])])
    lines += ["## Every bundle", "",
              md_table(["cell", "L", "quant", "B", "stream µs", "window µs", "stream/window"], qrows), ""]
    erows = []
    for level in ("model", "engine", "pipeline"):
        for mode in ("stream", "window"):
            erows.append([level, mode] + [_cell(res, level, mode, b, cell="lstm", seq_len=48,
                                                quant="float32") for b in bs])
    lines += ["## Layers of the daemon, LSTM L=48 float32 (µs per sample)", "",
              "`engine` adds the stream table to the interpreter; `pipeline` adds JSON decoding "
              "and forecast encoding (all the daemon does except MQTT).", "",
              md_table(["level", "mode"] + [f"B={b}" for b in bs], erows)]
    return "\n".join(lines)


def _cell(res: list[dict], level: str, mode: str, batch: int, **key: Any) -> str:
    for r in res:
        if r["level"] == level and r["mode"] == mode and r["batch"] == batch and all(
                r[k] == v for k, v in key.items()):
            return spread(r["us_per_sample"])
    return "-"


def _pct(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{100 * v:.{digits}g}%"


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        res = doc["results"]
        a1, a2 = fig.subplots(1, 2)
        for cell, ls in (("lstm", "-"), ("gru", "--")):
            for mode, color in (("stream", "tab:blue"), ("window", "tab:orange"), ("predict", "tab:red")):
                level = "keras" if mode == "predict" else "model"
                pts = sorted((r["seq_len"], r["us_per_sample"]["median"]) for r in res
                             if r["level"] == level and r["mode"] == mode and r["cell"] == cell
                             and r["quant"] == "float32" and r["batch"] == 1)
                if pts:
                    a1.plot(*zip(*pts), ls, marker="o", color=color, label=f"{cell} {mode}")
        a1.set(xscale="log", yscale="log", xlabel="seq_len", ylabel="µs per sample",
               title="batch 1, float32 (predict = Keras tutorial)")
        a1.legend(fontsize=7)
        for (level, mode, quant), style in _series(res).items():
            pts = sorted((r["batch"], r["us_per_sample"]["median"]) for r in res
                         if r["level"] == level and r["mode"] == mode and r["quant"] == quant
                         and r["cell"] == "lstm" and r["seq_len"] == 48)
            if pts:
                a2.plot(*zip(*pts), style, marker=".", label=f"{level} {mode} {quant}")
        a2.set(xscale="log", yscale="log", xlabel="batch", ylabel="µs per sample",
               title="LSTM, seq_len 48")
        a2.legend(fontsize=6, ncol=2)

    return draw


def _series(res: list[dict]) -> dict[tuple[str, str, str], str]:
    out = {}
    for q in QUANTS:
        out[("model", "stream", q)] = "-"
        out[("model", "window", q)] = ":"
    out[("engine", "stream", "float32")] = "k-"
    out[("pipeline", "stream", "float32")] = "k--"
    return out
