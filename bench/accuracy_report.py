"""The accuracy benchmark's tables, targets and chart, from its JSON document."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.accuracy_intervals import worst_miss
from bench.common import md_table, target, targets_table

COLOURS = {"seqcast": "tab:blue", "baseline": "tab:gray"}


def _mae(row: dict[str, Any]) -> str:
    s = row["mae"]
    if s["n"] > 1:
        return f"{s['mean']:.4g} ({s['min']:.4g}–{s['max']:.4g})"
    return f"{s['mean']:.4g}"


def _kib(row: dict[str, Any]) -> str:
    size = row.get("bundle_bytes")
    return f"{size['mean'] / 1024:.0f} KiB" if size else ""


def _seconds(row: dict[str, Any]) -> str:
    t = row.get("train_seconds")
    if not t:
        return ""
    return f"{t['mean']:.0f} ({row['fit_seconds']['mean']:.0f})"


def _note(row: dict[str, Any]) -> str:
    info = row.get("info") or {}
    if "model" in info:
        return f"{info['model']}, season {info['season']}, {info['fallbacks']} fallbacks"
    if "rounds" in info:
        cal = ", ".join(info["calendar"]) or "no calendar"
        return f"{cal}; rounds {min(info['rounds'])}–{max(info['rounds'])}"
    if "epochs" in row:
        note = f"epochs {', '.join(map(str, row['epochs']))}"
        if "?" not in row.get("predict", "?"):
            note += f"; predict {', '.join(row['predict'])}"
        return note
    return row.get("note", "")


def _row_mae(s: dict[str, Any], method: str) -> float:
    return float(next(r for r in s["methods"] if r["method"] == method)["mae"]["mean"])


def series_markdown(s: dict[str, Any]) -> str:
    v, seeds = s["verdict"], len(s["runs"])
    head = (
        f"### {s['name']}: {s['title']}\n\n"
        f"seq_len {s['seq_len']}, horizon {s['horizon']}, {s['data']['grid']}; "
        f"{s['splits']['train']}/{s['splits']['val']}/{s['splits']['test']} rows "
        f"train/val/test; calendar {', '.join(s['calendar']) or 'none'}; "
        f"test MAE in {s['unit']} over the same {s['origins']} origins for every method "
        f"(seqcast: mean over {seeds} seed{'s' if seeds > 1 else ''}, min–max in brackets).\n"
    )
    rows = [
        [
            r["method"],
            _mae(r),
            f"{r['rmse']['mean']:.4g}" if "rmse" in r else "",
            r["origins"],
            _kib(r),
            _seconds(r),
            _note(r),
        ]
        for r in s["methods"]
    ]
    auto = s["auto"]
    if auto.get("status") == "ok":
        mode = "stream" if "stream" in auto else "window"
        rows.append(
            [
                f"seqcast auto ({mode})",
                f"{auto[mode]:.4g}",
                "",
                auto["origins"],
                f"{auto['bundle_bytes'] / 1024:.0f} KiB",
                f"({auto['seconds']:.0f})",
                f"picked {auto.get('picked', '?')}; its own seq_len: origins may differ",
            ]
        )
    else:
        rows.append(["seqcast auto", auto["status"], "", "", "", "", auto.get("error", "")])
    table = md_table(
        ["method", "test MAE", "RMSE", "origins", "bundle", "train s (fit s)", "notes"], rows
    )
    says = "beats" if v["beats_best"] else "does **not** beat"
    tail = (
        f"\nVerdict: seqcast stream ({v['model_mae']:.4g}) {says} the best baseline, "
        f"{v['best_baseline']} ({v['best_baseline_mae']:.4g}): {100 * v['gain']:+.1f}%."
    )
    if not v["beats_naive_and_theta"]:
        tail += f" It also loses to {v['best_simple']} (naive/Theta)."
    return head + "\n" + table + "\n" + tail + intervals_markdown(s.get("intervals"))


def intervals_markdown(iv: dict[str, Any] | None) -> str:
    if not iv:
        return ""
    names = list(iv.get("stream", iv.get("window", {})).get("coverage", {}))
    rows = [
        [
            mode,
            f"{iv[mode]['mae']:.4g}",
            *(f"{100 * iv[mode]['coverage'][n]:.1f}%" for n in names),
            f"{100 * iv[mode]['interval']['coverage']:.1f}%",
            f"{iv[mode]['interval']['mean_width']:.4g}",
        ]
        for mode in ("stream", "window")
        if mode in iv
    ]
    head = ["mode", "MAE", *(f"{n} coverage" for n in names), "inside", "mean width"]
    cal = iv.get("calibration") or {}
    if cal and "nominal" in next(iter(cal.values())):  # older results: the stream's factors only
        cal = {"stream": cal}
    factors = "; ".join(_calibration_text(graph, c) for graph, c in cal.items())
    return (
        f"\n\nPrediction intervals (`--quantiles {','.join(map(str, iv['quantiles']))}`, seed 0, "
        f"{iv['fit_seconds']:.0f} s{'; predict ' + iv['predict'] if 'predict' in iv else ''}; "
        f"test coverage, nominal {', '.join(names)}):\n\n"
        + md_table(head, rows)
        + (f"\n\nCalibration on validation (median factor): {factors}." if factors else "")
    )


def markdown(doc: dict[str, Any]) -> str:
    parts = [
        "## Forecast quality (`python -m bench.accuracy`)",
        "",
        "train s: Keras training (early stopping); fit s: the whole `fit` (training, TFLite "
        "conversion, scoring through the interpreter, baselines). dynamic / float16: the same "
        "trained weights converted again at that precision.",
    ]
    parts += ["", *(series_markdown(s) + "\n" for s in doc["series"])]
    parts += ["## Targets", "", targets_table(doc["targets"])]
    return "\n".join(parts)


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11's goals, measured (the benchmark reports them; no test asserts them)."""
    out = []
    for s in doc["series"]:
        name, v = s["name"], s["verdict"]
        stream = _row_mae(s, "seqcast stream")
        if name == "vic_elec":
            out.append(target("vic_elec stream test MAE", stream, 55, "<=", " MW"))
            dyn = next(r for r in s["methods"] if r["method"] == "seqcast stream dynamic")
            out.append(
                target(
                    "vic_elec dynamic-range bundle",
                    dyn["bundle_bytes"]["max"] / 1000,
                    100,
                    "<=",
                    " KB",
                )
            )
            train_s = max(r["train_seconds"] for r in s["runs"])
            fit_s = max(r["fit_seconds"] for r in s["runs"])
            out.append(
                target(
                    "vic_elec training time (slowest seed)",
                    train_s,
                    300,
                    "<=",
                    " s",
                    f"the whole fit: {fit_s:.0f} s",
                )
            )
            out.append(
                target(
                    "vic_elec stream MAE / best baseline",
                    stream / v["best_baseline_mae"],
                    1,
                    "<",
                    "",
                    v["best_baseline"],
                )
            )
        simple = _row_mae(s, v["best_simple"])
        out.append(
            target(
                f"{name} stream MAE / best of naive and Theta",
                stream / simple,
                1,
                "<",
                "",
                v["best_simple"],
            )
        )
        for q in ("dynamic", "float16"):
            mae = _row_mae(s, f"seqcast stream {q}")
            out.append(
                target(f"{name} {q} MAE vs float32", 100 * abs(mae / stream - 1), 2, "<=", "%")
            )
        iv = s.get("intervals")
        out.append(
            target(
                f"{name} quantile coverage vs nominal (worst)",
                worst_miss(iv) if iv else None,
                5,
                "<=",
                " points",
                "p10/p90, seed 0, stream and window" if iv else "not run",
            )
        )
    return out


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        series = doc["series"]
        fig.set_size_inches(5.5 * len(series), 4.5)
        axes = fig.subplots(1, len(series), squeeze=False)[0]
        for ax, s in zip(axes, series, strict=True):
            rows = s["methods"]
            names = [r["method"].replace("seqcast ", "") for r in rows]
            means = [r["mae"]["mean"] for r in rows]
            lo = [r["mae"]["mean"] - r["mae"]["min"] for r in rows]
            hi = [r["mae"]["max"] - r["mae"]["mean"] for r in rows]
            colours = [COLOURS[r["kind"]] for r in rows]
            ax.barh(names, means, xerr=[lo, hi], color=colours, capsize=3)
            ax.invert_yaxis()
            ax.axvline(_row_mae(s, "seqcast stream"), color="tab:blue", ls=":", lw=1)
            ax.set(xlabel=f"test MAE ({s['unit']})", title=f"{s['name']} ({s['origins']} origins)")
            ax.tick_params(axis="y", labelsize=7)

    return draw


def _calibration_text(graph: str, c: dict[str, Any]) -> str:
    """One graph's calibration: its method and each quantile's median factor and validation
    coverage before and after (older results: the quantiles at the top level, no method)."""
    per_quantile = c.get("quantiles", c)
    method = f" ({c['method']}, {c['origins']} validation origins)" if "method" in c else ""
    return f"{graph}{method} " + ", ".join(
        f"{n} ×{q['factor_median']:.3g} (val {100 * q['val_coverage_before']:.1f}% → "
        f"{100 * q['val_coverage_after']:.1f}%)"
        for n, q in per_quantile.items()
    )
