"""`seqcast-train sweep`: one bundle per seq_len, a table, sweep.json and sweep.png."""

from __future__ import annotations

import json
import math

import pytest

from seqcast.train.cli import main
from tests.synth import write_csv

pytestmark = [pytest.mark.tflite, pytest.mark.slow]


def test_sweep_cli_writes_bundles_table_json_and_plot(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=800)
    out = tmp_path / "sweep"
    argv = ["sweep", "--data", str(csv), "--time-col", "time", "--features", "load,temp",
            "--targets", "load", "--seq-lens", "6,12", "--horizon", "2", "--units", "8",
            "--epochs", "1", "--baselines", "naive", "--sweep-dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out

    for L in (6, 12):
        assert (out / f"seq{L}.seqcast").is_file()
    doc = json.loads((out / "sweep.json").read_text())
    rows = doc["rows"]
    assert [r["seq_len"] for r in rows] == [6, 12]
    for r in rows:
        for key in ("val_mae_window", "val_mae_stream", "test_mae", "train_seconds", "window_us",
                    "stream_us", "bundle_bytes"):  # fmt: skip
            assert math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert rows[1]["window_us"] > 0
    if doc["beats_baseline"]:
        assert doc["recommended"] in (6, 12) and doc["cheapest_within_2pct"] in (6, 12)
    else:  # 1 epoch of 8 units usually loses to seasonal_naive: nothing may be recommended
        assert doc["recommended"] is None and doc["cheapest_within_2pct"] is None
    assert (out / "sweep.png").stat().st_size > 5000

    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if "seq_len" in line and "val MAE" in line)
    table_rows = [line.split()[0] for line in lines[header + 2 : header + 4]]
    assert table_rows == ["6", "12"]
    verdict = "recommended: --seq-len" if doc["beats_baseline"] else "warning: no candidate beats"
    assert any(line.startswith(verdict) for line in lines)
    for i, L in enumerate((6, 12), 1):  # each fit() table under its own label
        label = next(
            j for j, line in enumerate(lines) if line.startswith(f"seq_len {L} ({i} of 2)")
        )
        assert lines[label + 1].startswith("method")
