"""`seqcast-train auto` end to end on tiny data: real training, conversion and interpreter; the
written bundle is the picked candidate's file; CLI errors come before TensorFlow."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from seqcast.edge.model.bundle import read_bundle
from tests.synth import SMALL_FIT, write_csv
from tests.test_cli import train_probe

DATA = ["--features", "load,temp", "--targets", "load", "--horizon", "2", "--epochs", "1"]
DATA += ["--baselines", "naive"]  # AutoTheta has its own tests (test_baselines.py)


@pytest.mark.tflite
@pytest.mark.slow
def test_auto_writes_the_picked_candidates_bundle_table_json_plot_and_report(tmp_path, capsys):
    from seqcast.train.cli import main

    csv = write_csv(tmp_path / "s.csv", n=800)
    out = tmp_path / "best.seqcast"
    argv = ["auto", "--data", str(csv), *DATA, "--seq-lens", "6", "--cells", "gru,lstm",
            "--units", "4", "--budget", "30", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out

    work = tmp_path / "best.candidates"
    doc = json.loads((work / "auto.json").read_text())
    assert doc["plan"] == ["gru4-seq6", "lstm4-seq6"]
    assert [r["candidate"] for r in doc["rows"]] == doc["plan"] and doc["skipped"] == []
    assert doc["rows"][0]["predicted_seconds"] is None
    assert all(r["predicted_seconds"] > 0 for r in doc["rows"][1:])
    by_name = {r["candidate"]: r for r in doc["rows"]}
    picked = by_name[doc["picked"]["candidate"]]
    best_val = min(r["val_mae_stream"] for r in doc["rows"])
    assert picked["val_mae_stream"] <= best_val * 1.02  # by validation, within the 2 % rule

    # the bundle is the picked candidate's file as trained, not a retrained model
    assert out.read_bytes() == Path(picked["bundle"]).read_bytes()
    m = read_bundle(out).manifest
    assert (m.seq_len, m.architecture["cell"], m.architecture["units"]) == (
        picked["seq_len"], picked["cell"], picked["units"])  # fmt: skip
    assert m.name == "best"
    assert doc["test_mae"]["stream"] == pytest.approx(m.metrics["stream"]["mae"])
    assert (tmp_path / "best.report" / "forecast_vs_actual.png").stat().st_size > 5000
    assert (work / "auto.png").stat().st_size > 5000

    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["candidate"])
    shown = [r.strip().removeprefix("* ").split()[:4] for r in lines[header + 2 : header + 4]]
    assert [" ".join(words) for words in shown] == ["gru 4 seq_len 6", "lstm 4 seq_len 6"]
    closing = next(i for i, line in enumerate(lines) if line.startswith("auto: wrote "))
    assert f"--seq-len {picked['seq_len']} --cell {picked['cell']}" in lines[closing]
    assert "vs persistence" in lines[closing] and "seasonal_naive" in lines[closing]
    assert lines[-1].startswith("  test MAE: stream ")
    assert f"{m.metrics['stream']['mae']:.3f}" in lines[-1]


@pytest.mark.tflite
@pytest.mark.slow
def test_a_budget_spent_by_the_first_candidate_skips_the_rest_and_warns(tmp_path, capsys):
    from seqcast.train.auto import auto
    from seqcast.train.grid import Space
    from seqcast.train.options import FitOptions

    csv = write_csv(tmp_path / "s.csv", n=600)
    options = FitOptions(data=str(csv), **{**SMALL_FIT, "horizon": 2})  # type: ignore[arg-type]
    options.out = str(tmp_path / "one.seqcast")
    start = time.monotonic()

    def fast_clock() -> float:  # a thousand clock seconds per real one: the first overruns
        return start + (time.monotonic() - start) * 1000

    space = Space(seq_lens=[6], cells=["gru", "lstm"], units=[4])
    picked, bundle = auto(options, space, budget_minutes=0.5, clock=fast_clock)
    printed = capsys.readouterr().out
    assert (picked.cell, picked.units) == ("gru", (4,))  # the cheapest, first in the plan
    assert bundle.manifest.architecture["cell"] == "gru"
    doc = json.loads((tmp_path / "one.candidates" / "auto.json").read_text())
    assert [s["candidate"] for s in doc["skipped"]] == ["lstm4-seq6"]
    assert "skipped lstm 4 seq_len 6: predicted " in printed
    assert "warning: the budget (0.5 min) was too small for even one candidate" in printed


@pytest.mark.train
def test_one_training_batch_is_timed_per_architecture_not_per_seq_len():
    from seqcast.train.candidate import batch_seconds
    from seqcast.train.grid import build_grid
    from seqcast.train.options import FitOptions

    plan = build_grid([6, 12], ["gru", "lstm"], [4])
    took = batch_seconds(FitOptions(horizon=2, batch_size=8), plan, width=3, n_targets=1)
    assert set(took) == set(plan) and all(0 < s < 60 for s in took.values())
    for c in plan:  # a streaming epoch's cost does not depend on seq_len: one measurement
        same_arch = [d for d in plan if (d.cell, d.units) == (c.cell, c.units)]
        assert len({took[d] for d in same_arch}) == 1
    assert took[plan[0]] != took[plan[1]]  # gru and lstm are measured apart


@pytest.mark.train
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "0"], "--budget: must be a number of minutes above 0, got 0"),
        (["--cells", "rnn"], "--cells: choose from gru, lstm, got ['rnn']"),
        (["--units", "0"], "--units: need widths >= 1, got [0]"),
        (["--seq-lens", "6,500"], "seq_len + horizon needs 502 consecutive rows"),
        (["--seq-lens", "6,12", "--min-history", "8"], "--min-history must be 1..the shortest"),
    ],
)
def test_auto_errors_are_one_line_before_tensorflow(tmp_path, extra, message):
    csv = write_csv(tmp_path / "s.csv", n=400)
    out, err = train_probe("auto", "--data", str(csv), *DATA, "--seq-lens", "6", *extra)
    assert out.strip().endswith("IMPORTED - EXIT 2"), (out, err)
    assert err.count("\n") == 1 and err.startswith("seqcast-train: error: ")
    assert message in err
