"""`seqcast-train auto` in the accuracy benchmark: run it on the series with the data options the
defaults got (and its --budget), and read its bundle's metrics; a trainer without the command
gives the row "not available"."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from seqcast.train.options import FitOptions


def auto_available() -> bool:
    """Does `seqcast-train` have an `auto` command?"""
    from seqcast.train.cli import build_parser

    parser = build_parser()
    for action in parser._actions:  # argparse keeps subcommands in a private list only
        if isinstance(action, argparse._SubParsersAction):
            return "auto" in action.choices
    return False


def data_args(o: FitOptions) -> list[str]:
    args = ["--example", o.example] if o.example else ["--data", str(o.data)]
    if o.features:
        args += ["--features", ",".join(o.features)]
    if o.targets:
        args += ["--targets", ",".join(o.targets)]
    return args + ["--horizon", str(o.horizon)]


def run_auto(o: FitOptions, out: Path, budget_min: float) -> dict[str, Any]:
    """{"status": "ok", "stream"/"window": MAE, "origins", "bundle_bytes", "seconds"} or
    {"status": "not available" | "failed", "error": one line}."""
    if not auto_available():
        return {"status": "not available", "error": "seqcast-train has no `auto` command"}
    import time

    from seqcast.edge.model.bundle import read_bundle

    cmd = [sys.executable, "-m", "seqcast.train.cli", "auto", *data_args(o), "--out", str(out)]
    cmd += ["--budget", f"{budget_min:g}"]
    timeout_s = budget_min * 60 * 3 + 600  # the first candidate runs even when it overruns
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout_s, env=dict(os.environ)
    )
    seconds = round(time.perf_counter() - t0, 1)
    if done.returncode != 0 or not out.exists():
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        return {"status": "failed", "error": lines[-1], "seconds": seconds}
    manifest = read_bundle(out).manifest
    metrics, arch = manifest.metrics, manifest.architecture
    row: dict[str, Any] = {
        "status": "ok",
        "origins": metrics.get("origins"),
        "bundle_bytes": out.stat().st_size,
        "seconds": seconds,
        "picked": f"seq_len {manifest.seq_len}, {arch.get('cell')} {arch.get('units')}, "
        f"predict {arch.get('predict')}",
    }
    for mode in ("stream", "window"):
        if isinstance(metrics.get(mode), dict):
            row[mode] = metrics[mode]["mae"]
    return row
