"""`python -m bench.accuracy [--series a,b] [--seeds N] [--quick] [--auto-budget MIN] [--out DIR]`

The forecast-quality table of issue 11 on real public series (`bench/accuracy_series.py`): the
seqcast defaults (`train.fit.fit`, N seeds; stream and window mode; the same model at dynamic
and float16 precision), and on the very same test origins the trainer's baselines (persistence,
seasonal naive, AutoTheta: read from the bundle's metrics), statsforecast AutoETS
(`bench/accuracy_stats.py`) and LightGBM direct per step, with and without calendar columns
(`bench/accuracy_lgbm.py`), and `seqcast-train auto` within `--auto-budget` minutes per series
(0: not run; --quick never runs it).
Writes accuracy.json, accuracy.md and accuracy.png into the results folder.

# M: test origins  H: horizon  T: targets
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.accuracy_report import markdown, plot, targets
from bench.accuracy_series import EXTRA, KNOWN, SERIES, SeriesSpec
from bench.common import RESULTS, log, machine_info, machine_line, write_results

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the converter's C++ log: 30 lines a bundle
QUICK_EPOCHS = 2
AUTO_BUDGET = 5.0  # minutes of `seqcast-train auto` per series (its own default is 20)
PRECISIONS = ("dynamic", "float16")  # besides float32: the same weights converted again


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "mean": float(np.mean(values)),
        "min": float(np.min(values)),
        "max": float(np.max(values)),
        "n": len(values),
        "values": [float(v) for v in values],
    }


def _seqcast_runs(spec: SeriesSpec, o: Any, p: Any, seeds: list[int], workdir: Path) -> list[dict]:
    from bench.accuracy_quant import requantize
    from seqcast.train.fit import fit

    runs = []
    for seed in seeds:
        out = workdir / f"{spec.name}-seed{seed}.seqcast"
        t0 = time.perf_counter()
        r = fit(dataclasses.replace(o, seed=seed, out=str(out)), p)
        fit_s = time.perf_counter() - t0
        m = r.metrics
        run: dict[str, Any] = {
            "seed": seed,
            "stream": m["stream"]["mae"],
            "window": m["window"]["mae"],
            "stream_rmse": m["stream"]["rmse"],
            "window_rmse": m["window"]["rmse"],
            "origins": m["origins"],
            "train_seconds": m["train_seconds"],
            "fit_seconds": round(fit_s, 1),
            "epochs": r.bundle.manifest.architecture["epochs_run"],
            "stopped": m["stopped"],
            "predict": r.bundle.manifest.architecture["predict"],
            "bundle_bytes": out.stat().st_size,
            "metrics": m,
        }
        for q in PRECISIONS:
            run[q] = requantize(r, p, q, workdir / f"{spec.name}-seed{seed}-{q}.seqcast")
        log(
            f"{spec.name} seed {seed}: stream MAE {run['stream']:.4g} "
            f"(dynamic {run['dynamic']['stream']:.4g}), {run['epochs']} epochs, "
            f"{run['train_seconds']:.0f} s training, {fit_s:.0f} s in all"
        )
        runs.append(run)
    return runs


def _other_baselines(spec: SeriesSpec, o: Any, p: Any, season: int, quick: bool) -> dict:
    """AutoETS and LightGBM (+calendar) on the test origins -> {method: ((M, H, T), info)}"""
    from statsforecast.models import AutoETS

    from bench.accuracy_lgbm import lgbm_forecasts
    from bench.accuracy_stats import stats_forecasts
    from seqcast.train.windows import window_origins

    test = p.splits.test
    origins = window_origins(test.segment_starts, len(test), o.seq_len, o.horizon)
    history = p.series.slice(0, len(p.splits.train) + len(p.splits.val))
    out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    ets = stats_forecasts(AutoETS, history, test, origins, season, o.horizon)
    out["ets"] = (
        ets.forecasts,
        {"model": ets.model, "season": ets.season, "fallbacks": ets.fallbacks},
    )
    log(f"{spec.name}: AutoETS {ets.model} in {ets.fit_seconds:.0f} s")
    for method, names in (("lightgbm", ()), ("lightgbm_calendar", p.calendar)):
        lg = lgbm_forecasts(p.splits, o.seq_len, o.horizon, names, quick)
        if not np.array_equal(lg.origins, origins):
            raise AssertionError(f"{method}: its test origins differ from the trainer's")
        out[method] = (lg.forecasts, {"calendar": list(names), "rounds": lg.rounds})
        log(f"{spec.name}: {method} in {lg.seconds:.0f} s (best rounds {lg.rounds})")
    return out


def _method_rows(spec: SeriesSpec, runs: list[dict], others: dict, truth: np.ndarray) -> list:
    """One row per method: MAE (mean, min, max over seeds for seqcast), RMSE, origins, size, s."""
    rows: list[dict[str, Any]] = []

    def seqcast(method: str, mae: list[float], extra: dict[str, Any]) -> None:
        rows.append({"method": method, "kind": "seqcast", "mae": _stats(mae), **extra})

    common = {
        "origins": runs[0]["origins"],
        "train_seconds": _stats([r["train_seconds"] for r in runs]),
        "fit_seconds": _stats([r["fit_seconds"] for r in runs]),
        "epochs": [r["epochs"] for r in runs],
        "predict": [r.get("predict", "?") for r in runs],
    }
    size = _stats([r["bundle_bytes"] for r in runs])
    for mode in ("stream", "window"):
        seqcast(
            f"seqcast {mode}",
            [r[mode] for r in runs],
            {**common, "bundle_bytes": size, "rmse": _stats([r[f"{mode}_rmse"] for r in runs])},
        )
    for q in PRECISIONS:
        seqcast(
            f"seqcast stream {q}",
            [r[q]["stream"] for r in runs],
            {
                "origins": runs[0][q]["origins"],
                "bundle_bytes": _stats([r[q]["bundle_bytes"] for r in runs]),
            },
        )
    first = runs[0]["metrics"]
    for method, v in first.items():
        if isinstance(v, dict) and "mae" in v and method not in ("stream", "window"):
            same = all(r["metrics"][method]["mae"] == v["mae"] for r in runs)
            rows.append(
                {
                    "method": method,
                    "kind": "baseline",
                    "mae": _stats([v["mae"]]),
                    "rmse": _stats([v["rmse"]]),
                    "origins": first["origins"],
                    "note": "" if same else "differs between seeds",
                }
            )
    for method, (yhat, info) in others.items():
        err = yhat - truth  # (M, H, T)
        rows.append(
            {
                "method": method,
                "kind": "baseline",
                "mae": _stats([float(np.mean(np.abs(err)))]),
                "rmse": _stats([float(np.sqrt(np.mean(err**2)))]),
                "origins": int(len(truth)),
                "info": info,
            }
        )
    return rows


def verdict(rows: list[dict]) -> dict[str, Any]:
    """seqcast stream (mean over seeds) against the best baseline, and against the naive ones
    and Theta (the issue's bar for every series)."""
    model = next(r for r in rows if r["method"] == "seqcast stream")["mae"]["mean"]
    base = {r["method"]: r["mae"]["mean"] for r in rows if r["kind"] == "baseline"}
    best = min(base, key=base.__getitem__)
    simple = {k: v for k, v in base.items() if k.startswith(("persistence", "seasonal", "theta"))}
    simple_best = min(simple, key=simple.__getitem__)
    return {
        "model_mae": model,
        "best_baseline": best,
        "best_baseline_mae": base[best],
        "beats_best": bool(model < base[best]),
        "gain": 1 - model / base[best] if base[best] > 0 else 0.0,
        "best_simple": simple_best,
        "beats_naive_and_theta": bool(model < simple[simple_best]),
    }


def run_series(
    spec: SeriesSpec, seeds: list[int], quick: bool, workdir: Path, auto_budget: float
) -> dict[str, Any]:
    from seqcast.train.fit import time_summary
    from seqcast.train.prepare import prepare
    from seqcast.train.windows import future_targets, window_origins

    o = spec.options(workdir)
    if quick:
        o.epochs = QUICK_EPOCHS
    p = prepare(o)
    log(
        f"{spec.name}: {len(p.series)} rows, {len(p.series.segment_starts)} segments, "
        f"calendar {list(p.calendar)}"
    )
    runs = _seqcast_runs(spec, o, p, seeds, workdir)
    test = p.splits.test
    origins = window_origins(test.segment_starts, len(test), o.seq_len, o.horizon)
    truth = future_targets(test.targets, o.horizon)[origins]  # (M, H, T)
    season = runs[0]["metrics"]["season_steps"]
    others = _other_baselines(spec, o, p, season, quick)
    rows = _method_rows(spec, runs, others, truth)
    from bench.accuracy_intervals import run_intervals

    intervals = run_intervals(o, workdir / f"{spec.name}-intervals.seqcast")
    log(f"{spec.name}: intervals {intervals.get('stream', intervals.get('window'))}")
    if auto_budget > 0 and not quick:
        from bench.accuracy_auto import run_auto

        auto = run_auto(o, workdir / f"{spec.name}-auto.seqcast", auto_budget)
        log(f"{spec.name}: auto {auto}")
    else:
        why = "--quick" if quick else "--auto-budget 0"
        auto = {"status": "not run", "error": why}
    for run in runs:  # keep the JSON small: what the tables need, not every per-step metric
        m = run.pop("metrics")
        run["baselines"] = m.get("baselines")
    return {
        "name": spec.name,
        "title": spec.title,
        "unit": spec.unit,
        "seq_len": o.seq_len,
        "horizon": o.horizon,
        "epochs_cap": o.epochs,
        "calendar": list(p.calendar),
        "data": time_summary(p.series),
        "splits": {k: len(getattr(p.splits, k)) for k in ("train", "val", "test")},
        "origins": int(len(origins)),
        "season": season,
        "runs": runs,
        "methods": rows,
        "auto": auto,
        "intervals": intervals,
        "verdict": verdict(rows),
    }


def run(
    names: list[str],
    seeds: int,
    quick: bool,
    auto_budget: float,
    workdir: Path,
    out: Path | None = None,
) -> dict[str, Any]:
    """Every series in turn; with `out`, the results so far are written after each series (a
    long run that is stopped still leaves its finished series behind)."""
    seed_list = list(range(1 if quick else seeds))
    t0 = time.monotonic()
    doc: dict[str, Any] = {
        "name": "accuracy",
        "quick": quick,
        "seeds": seed_list,
        "machine": machine_info(),
        "series": [],
    }
    for name in names:
        log(f"{name}: start ({len(seed_list)} seeds{', --quick' if quick else ''})")
        series = run_series(KNOWN[name], seed_list, quick, workdir / name, auto_budget)
        doc["series"].append(series)
        log(f"{name}: done at {time.monotonic() - t0:.0f} s")
        doc["targets"] = targets(doc)
        doc["elapsed_s"] = round(time.monotonic() - t0, 1)
        doc["complete"] = len(doc["series"]) == len(names)
        if out is not None:
            write(doc, out)
    return doc


def write(doc: dict[str, Any], out: Path) -> str:
    """accuracy.json, .md and .png into `out`; returns the markdown."""
    md = markdown(doc)
    md += f"\n\nMachine: {machine_line(doc['machine'])}. Took {doc['elapsed_s']:.0f} s"
    md += " (--quick)." if doc["quick"] else "."
    if not doc["complete"]:
        md += " Partial: the run was still going when this was written."
    write_results(out, "accuracy", doc, md, plot(doc))
    return md


def merge(paths: list[Path]) -> dict[str, Any]:
    """One document from the results of several runs (e.g. one series each, run separately)."""
    import json

    docs = [json.loads(p.read_text()) for p in paths]
    doc = {
        **docs[0],
        "seeds": sorted({s for d in docs for s in d["seeds"]}),
        "quick": any(d["quick"] for d in docs),
        "series": [s for d in docs for s in d["series"]],
        "elapsed_s": round(sum(d["elapsed_s"] for d in docs), 1),
        "complete": True,  # a document holds finished series only; a merge is the set it joins
        "merged_from": [
            {"file": str(p), "date": d["machine"]["date"]} for p, d in zip(paths, docs, strict=True)
        ],
    }
    doc["targets"] = targets(doc)
    return doc


def _series_list(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOWN]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown series {unknown[0] if unknown else text!r}; known: {', '.join(KNOWN)}"
        )
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--series",
        type=_series_list,
        default=list(SERIES),
        metavar="A,B",
        help=f"series to run ({','.join(SERIES)}; on request also {','.join(EXTRA)})",
    )
    ap.add_argument("--seeds", type=int, default=3, metavar="N", help="seqcast seeds (3)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_EPOCHS} epochs, one seed, few LightGBM rounds: checks the plumbing only",
    )
    ap.add_argument(
        "--auto-budget",
        type=float,
        default=AUTO_BUDGET,
        metavar="MINUTES",
        help=f"`seqcast-train auto --budget` per series; 0: not run ({AUTO_BUDGET:g})",
    )
    ap.add_argument("--out", type=Path, default=RESULTS, help=f"results folder ({RESULTS})")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        metavar="JSON",
        help="run nothing: join the series of earlier runs' accuracy.json files into --out",
    )
    args = ap.parse_args(argv)
    if args.merge:
        print(write(merge(args.merge), args.out), flush=True)
        return 0
    if args.seeds < 1:
        ap.error(f"--seeds must be at least 1, got {args.seeds}")
    import importlib.util

    for module, extra in (("lightgbm", "bench"), ("statsforecast", "train"), ("tsdata", "train")):
        if importlib.util.find_spec(module) is None:
            ap.error(f"{module} is not installed: pip install 'seqcast[{extra}]'")
    with tempfile.TemporaryDirectory(prefix="seqcast-accuracy-") as tmp:
        doc = run(args.series, args.seeds, args.quick, args.auto_budget, Path(tmp), args.out)
    print(write(doc, args.out), flush=True)
    log(f"results in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
