"""Benchmark 1, analysis: ratios, targets, the markdown tables and the plot of `bench.inference`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import md_table, spread, target

QUANTS = ("float32", "float16", "dynamic", "int8")


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
        out.append(
            {
                **key,
                "stream_us": s,
                "window_us": w,
                "keras_us": k,
                "stream_over_window": s / w if w else None,
                "stream_over_keras": s / k if k else None,
            }
        )
    return out


def targets_of(results: list[dict]) -> list[dict[str, Any]]:
    d = {(x["cell"], x["seq_len"], x["quant"], x["batch"]): x for x in derive(results)}
    one = d.get(("lstm", 48, "float32", 1), {})
    b64 = d.get(("lstm", 48, "float32", 64), {})
    sw, sk = one.get("stream_over_window"), one.get("stream_over_keras")
    note = (
        f"batch 64: {100 * b64['stream_over_window']:.2f}%" if b64.get("stream_over_window") else ""
    )
    return [
        target(
            "stream / window cost per sample, seq_len 48 (LSTM, batch 1)",
            None if sw is None else 100 * sw,
            5,
            "<=",
            "%",
            note,
        ),
        target(
            "stream / Keras predict per sample, seq_len 48 (LSTM, batch 1)",
            None if sk is None else 100 * sk,
            0.1,
            "<=",
            "%",
        ),
    ]


def markdown(doc: dict[str, Any]) -> str:
    res, der = doc["results"], doc["derived"]
    bs = doc["batches"]
    show = [b for b in (1, 64, 256) if b in bs]
    lines = [
        f"# Inference cost per sample (µs, median (p25–p75) of {doc['rounds']} interleaved rounds, "
        f"one core)",
        "",
    ]
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
        rows.append(
            [
                x["cell"],
                x["seq_len"],
                *cells,
                _pct(x["stream_over_window"]),
                f"{k / 1000:.2f} ms" if k else "-",
                _pct(x["stream_over_keras"], 4),
            ]
        )
    lines += [
        "## float32, interpreter wrapper (`LoadedModel.step` / `.window`)",
        "",
        md_table(head, rows),
        "",
    ]
    qrows = []
    for x in der:
        if x["batch"] in show:
            qrows.append(
                [
                    x["cell"],
                    x["seq_len"],
                    x["quant"],
                    x["batch"],
                    f"{x['stream_us']:.3g}",
                    f"{x['window_us']:.3g}" if x["window_us"] else "-",
                    _pct(x["stream_over_window"]),
                ]
            )
    lines += [
        "## Every bundle",
        "",
        md_table(["cell", "L", "quant", "B", "stream µs", "window µs", "stream/window"], qrows),
        "",
    ]
    erows = []
    for level in ("model", "engine", "pipeline"):
        for mode in ("stream", "window"):
            erows.append(
                [level, mode]
                + [_cell(res, level, mode, b, cell="lstm", seq_len=48, quant="float32") for b in bs]
            )
    lines += [
        "## Layers of the daemon, LSTM L=48 float32 (µs per sample)",
        "",
        "`engine` adds the stream table to the interpreter; `pipeline` adds JSON decoding "
        "and forecast encoding (all the daemon does except MQTT).",
        "",
        md_table(["level", "mode"] + [f"B={b}" for b in bs], erows),
    ]
    return "\n".join(lines)


def _cell(res: list[dict], level: str, mode: str, batch: int, **key: Any) -> str:
    for r in res:
        if (
            r["level"] == level
            and r["mode"] == mode
            and r["batch"] == batch
            and all(r[k] == v for k, v in key.items())
        ):
            return spread(r["us_per_sample"])
    return "-"


def _pct(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{100 * v:.{digits}g}%"


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        res = doc["results"]
        a1, a2 = fig.subplots(1, 2)
        for cell, ls in (("lstm", "-"), ("gru", "--")):
            for mode, color in (
                ("stream", "tab:blue"),
                ("window", "tab:orange"),
                ("predict", "tab:red"),
            ):
                level = "keras" if mode == "predict" else "model"
                pts = sorted(
                    (r["seq_len"], r["us_per_sample"]["median"])
                    for r in res
                    if r["level"] == level
                    and r["mode"] == mode
                    and r["cell"] == cell
                    and r["quant"] == "float32"
                    and r["batch"] == 1
                )
                if pts:
                    a1.plot(
                        *zip(*pts, strict=True), ls, marker="o", color=color, label=f"{cell} {mode}"
                    )
        a1.set(
            xscale="log",
            yscale="log",
            xlabel="seq_len",
            ylabel="µs per sample",
            title="batch 1, float32 (predict = Keras tutorial)",
        )
        a1.legend(fontsize=7)
        for (level, mode, quant), style in _series(res).items():
            pts = sorted(
                (r["batch"], r["us_per_sample"]["median"])
                for r in res
                if r["level"] == level
                and r["mode"] == mode
                and r["quant"] == quant
                and r["cell"] == "lstm"
                and r["seq_len"] == 48
            )
            if pts:
                a2.plot(*zip(*pts, strict=True), style, marker=".", label=f"{level} {mode} {quant}")
        a2.set(
            xscale="log",
            yscale="log",
            xlabel="batch",
            ylabel="µs per sample",
            title="LSTM, seq_len 48",
        )
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
