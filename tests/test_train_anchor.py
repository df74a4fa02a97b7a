"""`--predict change`: the graphs add each target's latest value to the head's output."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.train


def test_the_anchor_is_the_targets_latest_value_in_scaled_target_units():
    from seqcast.train.anchor import anchor_for

    fm, fs = np.array([10.0, 100.0]), np.array([2.0, 8.0])  # features: temp, load
    tm, ts = np.array([90.0, 5.0]), np.array([4.0, 1.0])  # targets: load, other
    a = anchor_for(["temp", "load"], ["load", "other"], fm, fs, tm, ts)
    raw = np.array([[11.0, 104.0], [9.0, 96.0]])  # (B, F) original units
    x = ((raw - fm) / fs).astype(np.float32)  # (B, F) as the model sees it
    got = np.asarray(a.latest(x, horizon=3))  # (B, H*T)
    want_load = (raw[:, 1] - tm[0]) / ts[0]  # the load target, scaled as the targets are
    np.testing.assert_allclose(got[:, 0::2], np.repeat(want_load[:, None], 3, 1), rtol=1e-6)
    np.testing.assert_array_equal(got[:, 1::2], 0.0)  # `other` is no feature: no anchor


@pytest.mark.tflite
def test_with_a_silent_head_every_graph_forecasts_the_latest_value(tmp_path):
    """Zero head weights: window model, step graph and training model all return persistence."""
    import tensorflow as tf

    from seqcast.train.anchor import anchor_for
    from seqcast.train.models import Architecture, build, step_fn, window_model

    a = anchor_for(["y", "z"], ["y"], np.zeros(2), np.ones(2), np.zeros(1), np.ones(1))
    f = build(Architecture(units=(4,)), 2, 3, 1, 5, anchor=a)
    f.head.set_weights([np.zeros_like(w) for w in f.head.get_weights()])
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype(np.float32)  # (B, L, F)
    want = np.repeat(x[:, -1, :1][:, None, :], 3, axis=1)  # (B, H, T): y at the last step
    np.testing.assert_allclose(window_model(f, 5, masked=False)(x), want, rtol=1e-6)
    seq = f.model(x)  # (B, L, H, T): every step of the training model
    np.testing.assert_allclose(seq[:, -1], want, rtol=1e-6)
    step = step_fn(f)
    states = {f"layer0_{k}": tf.zeros((2, 4)) for k in ("h", "c")}
    y = step({"x": tf.constant(x[:, -1]), **states})["y"]
    np.testing.assert_allclose(y, want, rtol=1e-6)


@pytest.mark.tflite
@pytest.mark.slow
def test_a_change_model_converts_self_tests_and_records_it(tmp_path):
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.train.fit import FitOptions, fit
    from synth import SMALL_FIT, write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=600))
    opts = {**SMALL_FIT, "predict": "change"}
    o = FitOptions(data=csv, out=str(tmp_path / "c.seqcast"), **opts)  # type: ignore[arg-type]
    r = fit(o)
    m = read_bundle(r.bundle.path).manifest
    assert m.architecture["predict"] == "change"
    assert m.selftest  # vectors written by the converted graphs, checked at load
    assert np.isfinite(r.metrics["stream"]["mae"])


def test_change_needs_a_target_that_is_a_feature(tmp_path):
    from seqcast.train.data import DataError
    from seqcast.train.fit import FitOptions
    from seqcast.train.prepare import prepare
    from synth import SMALL_FIT, write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=300))
    opts = {**SMALL_FIT, "features": ["temp"], "predict": "change"}
    with pytest.raises(DataError, match="--predict change: no target is also a --features"):
        prepare(FitOptions(data=csv, **opts))  # type: ignore[arg-type]


@pytest.mark.tflite
@pytest.mark.slow
def test_auto_forecasts_changes_where_the_series_leaves_its_training_range(tmp_path):
    """A random walk with drift: validation and test lie above every training value, so a level
    model loses to persistence on validation and `--predict auto` trains (and keeps) the change
    model; the choice and both validation scores are in the metrics and the manifest."""
    import pandas as pd

    from seqcast.edge.model.bundle import read_bundle
    from seqcast.train.fit import FitOptions, fit
    from synth import SMALL_FIT

    rng = np.random.default_rng(3)
    n = 600
    load = np.cumsum(1.0 + rng.normal(0, 1.0, n))  # drifts from 0 to about 600
    times = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "load": load,
                          "temp": rng.normal(0, 1, n)})  # fmt: skip
    frame.to_csv(tmp_path / "walk.csv", index=False)
    opts = {**SMALL_FIT, "predict": "auto", "epochs": 3}
    r = fit(FitOptions(data=str(tmp_path / "walk.csv"), out=str(tmp_path / "w.seqcast"), **opts))  # type: ignore[arg-type]
    choice = r.metrics["predict"]
    assert choice["chosen"] == "change"
    assert choice["val_mse"]["level"] >= choice["val_mse"]["persistence"]
    assert choice["val_mse"]["change"] < choice["val_mse"]["level"]
    assert read_bundle(r.bundle.path).manifest.architecture["predict"] == "change"
