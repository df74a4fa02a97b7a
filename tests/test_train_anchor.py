"""`--predict change` and `seasonal`: the graphs add each target's latest value, or its value
one season back, to the head's output."""

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
    got = np.asarray(a.over_window(x[:, None, :], horizon=3))  # a window of 1 -> (B, H*T)
    want_load = (raw[:, 1] - tm[0]) / ts[0]  # the load target, scaled as the targets are
    np.testing.assert_allclose(got[:, 0::2], np.repeat(want_load[:, None], 3, 1), rtol=1e-6)
    np.testing.assert_array_equal(got[:, 1::2], 0.0)  # `other` is no feature: no anchor


@pytest.mark.tflite
def test_with_a_silent_head_every_graph_forecasts_the_latest_value(tmp_path):
    """Zero head weights: window model, step graph and training model all return persistence."""
    import tensorflow as tf

    from seqcast.train.anchor import anchor_for
    from seqcast.train.models import Architecture, build, state_names, step_fn, window_model

    a = anchor_for(["y", "z"], ["y"], np.zeros(2), np.ones(2), np.zeros(1), np.ones(1))
    f = build(Architecture(units=(4,)), 2, 3, 1, 5, anchor=a)
    f.head.set_weights([np.zeros_like(w) for w in f.head.get_weights()])
    x = np.random.default_rng(0).normal(size=(2, 5, 2)).astype(np.float32)  # (B, L, F)
    want = np.repeat(x[:, -1, :1][:, None, :], 3, axis=1)  # (B, H, T): y at the last step
    np.testing.assert_allclose(window_model(f, 5, masked=False)(x), want, rtol=1e-6)
    seq = f.model(x)  # (B, L, H, T): every step of the training model
    np.testing.assert_allclose(seq[:, -1], want, rtol=1e-6)
    step = step_fn(f)
    states = {n: tf.zeros((2, size)) for n, size in state_names(f)}
    y = step({"x": tf.constant(x[:, -1]), **states})["y"]
    np.testing.assert_allclose(y, want, rtol=1e-6)


def test_seasonal_lags_look_back_within_the_past():
    from seqcast.train.anchor import Anchor

    # season 4: step 1 is 3 steps back, step 4 the latest sample, step 5 three back again
    assert Anchor((0,), (1.0,), (0.0,), season=4).lags(6) == [3, 2, 1, 0, 3, 2]
    assert Anchor((0,), (1.0,), (0.0,), season=1).lags(3) == [0, 0, 0]


@pytest.mark.tflite
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_with_a_silent_head_every_graph_forecasts_seasonal_naive(cell):
    """Zero head weights and season 3: the training model, the step graph (its ring of past
    values carried as state) and the window graph all forecast the value one season back, zero
    (the target's mean) before the stream has it."""
    import tensorflow as tf

    from seqcast.train.anchor import RING, anchor_for
    from seqcast.train.models import Architecture, build, state_names, step_fn, window_model

    S, H, L = 3, 4, 6
    fm, fs, tm, ts = np.array([1.0, 0.0]), np.array([2.0, 1.0]), np.array([0.5]), np.array([4.0])
    a = anchor_for(["y", "z"], ["y"], fm, fs, tm, ts, season=S)
    f = build(Architecture(cell=cell, units=(4,)), 2, H, 1, L, anchor=a)
    f.head.set_weights([np.zeros_like(w) for w in f.head.get_weights()])
    assert (RING, S * 1) in state_names(f)
    x = np.random.default_rng(1).normal(size=(2, 9, 2)).astype(np.float32)  # (B, N, F)
    v = x[..., 0] * fs[0] / ts[0] + (fm[0] - tm[0]) / ts[0]  # (B, N): y in target units
    want = np.zeros((2, 9, H))  # (B, N, H)
    for t in range(9):
        for h, lag in enumerate(a.lags(H)):
            want[:, t, h] = v[:, t - lag] if t >= lag else 0.0
    seq = np.asarray(f.model(x))[..., 0]  # (B, N, H): the training model
    np.testing.assert_allclose(seq, want, rtol=1e-5, atol=1e-6)
    step = step_fn(f)
    states = {n: tf.zeros((2, size)) for n, size in state_names(f)}
    for t in range(9):
        out = step({"x": tf.constant(x[:, t]), **states})
        np.testing.assert_allclose(
            np.asarray(out.pop("y"))[..., 0], want[:, t], rtol=1e-5, atol=1e-6
        )
        states = out
    window = window_model(f, L, masked=False)
    np.testing.assert_allclose(
        np.asarray(window(x[:, -L:]))[..., 0], want[:, -1], rtol=1e-5, atol=1e-6
    )


def test_the_cells_see_seasonal_differences_not_levels():
    """A target column reaches the recurrent layers as v[t] - v[t - S] (0 until the stream has
    v[t - S], and left padding stays the mask value); other columns pass unchanged."""
    from seqcast.train.anchor import anchor_for
    from seqcast.train.options import MASK_VALUE

    S = 3
    a = anchor_for(["z", "y"], ["y"], np.zeros(2), np.ones(2), np.zeros(1), np.ones(1), season=S)
    y = 10.0 + np.arange(8) + np.tile([0.0, 5.0, -5.0], 3)[:8]  # a trend on a season of 3
    x = np.stack([np.linspace(0, 1, 8), y], axis=-1)[None].astype(np.float32)  # (1, 8, F)
    got = np.asarray(a.inputs(x))[0]  # (8, F)
    np.testing.assert_allclose(got[:, 0], x[0, :, 0])  # z unchanged
    np.testing.assert_allclose(got[:, 1], [0, 0, 0, 3, 3, 3, 3, 3], atol=1e-5)  # y[t] - y[t-3]
    padded = x.copy()
    padded[0, :2] = MASK_VALUE  # the stream starts at t = 2
    got = np.asarray(a.inputs(padded, masked=True))[0]
    assert (got[:2] == MASK_VALUE).all()
    np.testing.assert_allclose(got[2:, 1], [0, 0, 0, 3, 3, 3], atol=1e-5)


@pytest.mark.tflite
@pytest.mark.parametrize("predict", ["change", "seasonal"])
def test_the_step_graph_equals_the_training_model_at_every_position(predict):
    """Trained-looking (random) weights: stepping the step graph from zero state, ring and count
    included, gives what the training model gives after every sample, as the device's stream
    mode must; the window graph over the last L samples equals a training model run over them."""
    import tensorflow as tf

    from seqcast.train.anchor import anchor_for
    from seqcast.train.models import Architecture, build, state_names, step_fn, window_model
    from seqcast.train.options import MASK_VALUE

    S = 4 if predict == "seasonal" else 1
    a = anchor_for(["y", "z"], ["y", "z"], np.array([1.0, 2.0]), np.array([2.0, 3.0]),
                   np.array([0.5, 1.5]), np.array([4.0, 2.0]), season=S)  # fmt: skip
    f = build(Architecture(cell="gru", units=(5, 3)), 2, 3, 2, 6, anchor=a)
    rng = np.random.default_rng(2)
    for layer in (*f.rnns, f.head):  # biases too: zero inputs must not look like no input
        layer.set_weights([rng.normal(0, 0.5, size=w.shape) for w in layer.get_weights()])
    x = rng.normal(size=(2, 11, 2)).astype(np.float32)  # (B, N, F)
    seq = np.asarray(f.model(x))  # (B, N, H, T)
    step = step_fn(f)
    states = {n: tf.zeros((2, size)) for n, size in state_names(f)}
    for t in range(11):
        out = step({"x": tf.constant(x[:, t]), **states})
        np.testing.assert_allclose(np.asarray(out.pop("y")), seq[:, t], rtol=1e-4, atol=1e-5)
        states = out
    window = np.asarray(window_model(f, 6, masked=False)(x[:, -6:]))  # (B, H, T)
    np.testing.assert_allclose(window, np.asarray(f.model(x[:, -6:]))[:, -1], rtol=1e-4, atol=1e-5)
    masked = window_model(f, 6, masked=True)  # a stream with k < L samples: left padding
    for k in (1, 3, 5):
        padded = np.full((2, 6, 2), MASK_VALUE, np.float32)
        padded[:, -k:] = x[:, :k]
        np.testing.assert_allclose(np.asarray(masked(padded)), seq[:, k - 1], rtol=1e-4, atol=1e-5)


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


def test_seasonal_needs_a_season_that_fits_in_the_window(tmp_path):
    from seqcast.train.data import DataError
    from seqcast.train.fit import FitOptions
    from seqcast.train.prepare import prepare
    from synth import SMALL_FIT, write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=600))  # half-hourly: seasons 48 and 336
    opts = {**SMALL_FIT, "predict": "seasonal", "seq_len": 12}
    with pytest.raises(DataError, match="no season of this grid fits in --seq-len 12"):
        prepare(FitOptions(data=csv, **opts))  # type: ignore[arg-type]
    assert prepare(FitOptions(data=csv, **{**opts, "seq_len": 60})).anchor_season == 48  # type: ignore[arg-type]
    assert prepare(FitOptions(data=csv, **{**opts, "season": 6})).anchor_season == 6  # type: ignore[arg-type]


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


@pytest.mark.tflite
@pytest.mark.slow
def test_auto_forecasts_departures_where_a_trend_rides_a_strong_season(tmp_path):
    """Monthly-like data, season 12 on top of a drift that leaves the training range: levels lose
    to the naive forecasts on validation, so `--predict auto` also trains change, seasonal and
    smooth and keeps the lowest validation error, a departure model. The bundle carries the
    anchor's state, its converted step graph passes the self-test."""
    import pandas as pd

    from seqcast.edge.model.bundle import read_bundle
    from seqcast.train.fit import FitOptions, fit
    from synth import SMALL_FIT

    rng = np.random.default_rng(5)
    n = 480
    t = np.arange(n)
    level = 50 + 0.3 * t + 20 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 1.0, n)
    times = pd.date_range("1980-01-01", periods=n, freq="MS", tz="UTC")
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "v": level})
    frame.to_csv(tmp_path / "m.csv", index=False)
    opts = {**SMALL_FIT, "features": ["v"], "targets": ["v"], "seq_len": 24, "horizon": 3,
            "predict": "auto", "epochs": 3}  # fmt: skip
    r = fit(FitOptions(data=str(tmp_path / "m.csv"), out=str(tmp_path / "m.seqcast"), **opts))  # type: ignore[arg-type]
    choice = r.metrics["predict"]
    assert set(choice["val_mse"]) == {"level", "change", "seasonal", "smooth", "persistence",
                                      "seasonal_naive_12"}  # fmt: skip
    scores = {k: v for k, v in choice["val_mse"].items() if k in ("level", "change", "seasonal",
                                                                  "smooth")}  # fmt: skip
    assert choice["chosen"] == min(scores, key=lambda k: scores[k]) != "level", choice
    m = read_bundle(r.bundle.path).manifest
    assert m.architecture["predict"] == choice["chosen"]
    if choice["chosen"] in ("seasonal", "smooth"):
        assert m.architecture["anchor_season"] == 12
    if choice["chosen"] == "seasonal":
        assert {s.name: s.shape for s in m.state if s.name.startswith("anchor")} == {
            "anchor_ring": [12], "anchor_seen": [1]}  # fmt: skip
    assert m.selftest["step"]  # the converted step graph, ring included, checked at load
    assert np.isfinite(r.metrics["stream"]["mae"])


def test_the_spread_is_each_anchored_targets_seasonal_difference_std():
    from seqcast.train.anchor import anchor_for

    y = np.stack([np.arange(20.0) * 2.0, np.sin(np.arange(20.0))], axis=-1)  # (N, T) scaled
    a = anchor_for(["y"], ["y", "other"], np.zeros(1), np.ones(1), np.zeros(2), np.ones(2),
                   season=4, train_targets=y, segment_starts=[0, 10])  # fmt: skip
    # y rises by 8 over every season in both segments: no spread at all -> 1; `other` is no
    # feature, so it has no anchor and keeps unit scale
    assert a.spread == (1.0, 1.0)
    noisy = y + np.random.default_rng(0).normal(0, 0.5, y.shape)
    b = anchor_for(["y"], ["y"], np.zeros(1), np.ones(1), np.zeros(1), np.ones(1), season=4,
                   train_targets=noisy[:, :1], segment_starts=[0])  # fmt: skip
    d = noisy[4:, 0] - noisy[:-4, 0]
    assert b.spread == pytest.approx((float(d.std()),))
