"""`--quantiles`, the training side: the pinball loss, intervals ordered by construction, the
option's errors, and a small real training whose bundle carries the quantile columns through
the real interpreter (window and step graphs, self-test, coverage in the metrics)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tests.test_cli import train_probe

pytestmark = [pytest.mark.train]

QS = [(0.1, 0.9), (0.05, 0.25, 0.75, 0.95), (0.9,), (0.02, 0.3)]
# no subnormals: TensorFlow flushes them to zero in arithmetic, and in a real graph the point
# forecast is itself an op's output (the dense head), so it is already flushed
wide = st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False, width=32)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(QS), st.data())
def test_interval_columns_are_ordered_for_any_weights(qs: tuple, data: st.DataObject) -> None:
    from seqcast.train.quantiles import interval_columns

    ht = data.draw(st.integers(1, 6))
    point = data.draw(arrays(np.float32, (3, ht), elements=wide))
    raw = data.draw(arrays(np.float32, (3, len(qs) * ht), elements=wide))
    out = np.asarray(interval_columns(point, raw, qs))  # (3, HT, 1 + Q)
    assert out.shape == (3, ht, 1 + len(qs))
    np.testing.assert_array_equal(out[..., 0], point)
    # in quantile order, the point forecast at 0.5's place
    order = sorted(range(len(qs) + 1), key=lambda i: 0.5 if i == 0 else qs[i - 1])
    ranked = out[..., order]
    assert (np.diff(ranked, axis=-1) >= 0).all()


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from([0.1, 0.25, 0.9]),
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=5, max_size=40),
)
def test_the_pinball_loss_is_smallest_at_the_empirical_quantile(q: float, ys: list) -> None:
    from seqcast.train.quantiles import pinball

    truth = np.asarray(ys, np.float64)

    def mean_loss(c: float) -> float:
        return float(np.mean(np.asarray(pinball(truth, np.full_like(truth, c), q))))

    # the minimiser of a piecewise-linear loss is one of the samples: an empirical q-quantile
    best = min(mean_loss(c) for c in truth)
    assert mean_loss(float(np.quantile(truth, q, method="inverted_cdf"))) <= best + 1e-9
    assert all(mean_loss(c) >= best - 1e-9 for c in np.linspace(-120, 120, 25))


def test_the_training_loss_is_mse_plus_pinball_and_leaves_the_point_to_mse() -> None:
    import tensorflow as tf

    from seqcast.train.quantiles import interval_columns, training_loss

    rng = np.random.default_rng(0)
    H, T, qs = 2, 2, (0.1, 0.9)
    truth = tf.constant(rng.normal(size=(4, H, T)), tf.float32)
    point = tf.Variable(rng.normal(size=(4, H * T)), dtype=tf.float32)
    raw = tf.Variable(rng.normal(size=(4, 2 * H * T)), dtype=tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        y = tf.reshape(interval_columns(point, raw, qs), (4, H, T * 3))  # (B, H, C)
        loss = training_loss(qs)(truth, y)  # (B, H)
        mse = tf.reduce_mean(tf.square(truth - y[..., 0::3]), axis=-1)
        total, point_only = tf.reduce_sum(loss), tf.reduce_sum(mse)
    p, lo, hi = (y[..., k::3].numpy() for k in range(3))
    e = truth.numpy()
    want = (
        np.mean((e - p) ** 2, -1)
        + np.mean(np.maximum(0.1 * (e - lo), -0.9 * (e - lo)), -1)
        + np.mean(np.maximum(0.9 * (e - hi), -0.1 * (e - hi)), -1)
    )
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    # the pinball terms move the offsets, never the point forecast
    grad_total = tape.gradient(total, point).numpy()
    np.testing.assert_allclose(grad_total, tape.gradient(point_only, point).numpy(), rtol=1e-6)
    assert np.abs(tape.gradient(total, raw).numpy()).max() > 0


def test_the_pinball_loss_trains_the_interval_head_only() -> None:
    import tensorflow as tf

    from seqcast.train.models import Architecture, build
    from seqcast.train.quantiles import point_mse, training_loss

    qs = (0.1, 0.9)
    f = build(Architecture(units=(4,)), 2, 2, 1, 5, qs)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(3, 5, 2)), tf.float32)  # (B, S, F)
    truth = tf.constant(rng.normal(size=(3, 5, 2, 1)), tf.float32)  # (B, S, H, T)
    with tf.GradientTape() as tape:
        y = f.model(x)  # (B, S, H, C)
        pinball_only = tf.reduce_sum(training_loss(qs)(truth, y) - point_mse(qs)(truth, y))
    shared = [v for layer in (*f.rnns, f.head) for v in layer.trainable_variables]
    own = f.interval_head.trainable_variables
    grads = tape.gradient(pinball_only, shared + own)
    assert all(g is None or not np.any(g.numpy()) for g in grads[: len(shared)])
    assert all(np.abs(g.numpy()).max() > 0 for g in grads[len(shared) :])


def _prepared(tmp_path, **options):
    from seqcast.train.options import FitOptions
    from seqcast.train.prepare import prepare
    from synth import SMALL_FIT, write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=800))
    return prepare(FitOptions(data=csv, **{**SMALL_FIT, **options}))  # type: ignore[arg-type]


def test_quantiles_are_checked_and_sorted_before_training(tmp_path) -> None:
    from seqcast.train.options import DataError

    assert _prepared(tmp_path, quantiles=(0.9, 0.1)).quantiles == (0.1, 0.9)
    assert _prepared(tmp_path).quantiles == ()
    for bad, msg in [
        ((0.5,), "0.5 is not allowed"),
        ((0.1, 0.1), r"duplicate quantiles \(p10\)"),
        ((1.2,), r"each quantile must be between 0 and 1 \(exclusive\), got 1.2"),
    ]:
        with pytest.raises(DataError, match=f"^--quantiles: {msg}"):
            _prepared(tmp_path, quantiles=bad)


def test_a_quantile_key_that_is_a_target_name_is_refused(tmp_path) -> None:
    from seqcast.train.options import DataError
    from seqcast.train.prepare import prepare
    from synth import SMALL_FIT, synthetic_frame

    df = synthetic_frame(n=800)
    df["load_p90"] = df["load"] + 1.0
    df.to_csv(tmp_path / "c.csv", index=False)
    o = {**SMALL_FIT, "targets": ["load", "load_p90"], "quantiles": (0.9,)}
    with pytest.raises(DataError, match="^--quantiles: the forecast key 'load_p90' is also"):
        prepare(_options(str(tmp_path / "c.csv"), o))


def _options(csv: str, o: dict):
    from seqcast.train.options import FitOptions

    return FitOptions(data=csv, **o)  # type: ignore[arg-type]


def test_a_bad_quantile_is_one_line_from_the_cli_without_tensorflow(tmp_path) -> None:
    from synth import write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=300))
    common = ("--data", csv, "--features", "load,temp", "--targets", "load")
    out, err = train_probe("fit", *common, "--quantiles", "0.1,0.5")
    assert out.strip().endswith("IMPORTED - EXIT 2")
    assert err.count("\n") == 1 and err.startswith("seqcast-train: error: --quantiles: 0.5")
    out, err = train_probe("sweep", *common, "--quantiles", "0.1,x", "--seq-lens", "4,6")
    assert "EXIT 2" in out and "--quantiles: expected a comma-separated list" in err


def test_a_small_training_with_quantiles_reports_coverage(quantile_bundle) -> None:
    from seqcast.train.evaluate import format_table

    m = quantile_bundle.metrics
    # training is judged by the point forecast, as without quantiles
    assert "val_point_mse" in quantile_bundle.history
    assert "validation point MSE" in m["stopped"]
    for method in ("stream", "window"):
        qs = m[method]["quantiles"]
        assert list(qs) == ["p10", "p90"]
        assert [qs[n]["nominal"] for n in qs] == [0.1, 0.9]
        assert 0.0 <= qs["p10"]["coverage"] < qs["p90"]["coverage"] <= 1.0
        assert m[method]["interval"]["mean_width"] > 0
        assert m[method]["interval"]["coverage"] == pytest.approx(
            qs["p90"]["coverage"] - qs["p10"]["coverage"], abs=2e-6
        )  # ordered quantiles: inside = below p90 and not below p10 (each rounded to 1e-6)
    assert "quantiles" not in m["persistence"]
    table = format_table(m).splitlines()
    assert table[0].split() == ["method", "MAE", "RMSE", "p10", "cov", "p90", "cov", "width"]
    stream_row = next(r for r in table if r.startswith("stream")).split()
    assert float(stream_row[3]) == pytest.approx(
        m["stream"]["quantiles"]["p10"]["coverage"], abs=5e-4
    )


def test_the_bundles_graphs_give_ordered_quantile_columns(quantile_bundle) -> None:
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.train.evaluate import stream_predictions
    from seqcast.train.windows import windows

    b = read_bundle(quantile_bundle.bundle.path)
    m = b.manifest
    assert m.quantiles == [0.1, 0.9] and m.output_columns == ["load", "load_p10", "load_p90"]
    model, report = load_model(b)
    assert report.passed and report.step_max_error is not None
    assert np.asarray(m.selftest["window"]["y"]).shape[-1] == 3  # the self-test covers them
    assert np.asarray(m.selftest["step"]["y"]).shape[-1] == 3
    x = quantile_bundle.scaler.features(quantile_bundle.splits.test)
    xw, _ = windows(x, x[:, :1], m.seq_len, 1, quantile_bundle.splits.test.segment_starts)
    for y in (model.window(xw), stream_predictions(model, x)):  # (N, H, 3)
        assert y.shape[1:] == (m.horizon, 3)
        lo, point, hi = y[..., 1], y[..., 0], y[..., 2]
        assert (lo <= point).all() and (point <= hi).all()
        assert (hi - lo).min() > 0  # real intervals, not collapsed onto the point
    # the same graphs through Keras: the window model's outputs match the interpreter's
    keras_y = quantile_bundle.window_keras(xw[:16], training=False).numpy()
    np.testing.assert_allclose(keras_y, model.window(xw[:16]), atol=1e-4)


def test_a_manifest_that_does_not_match_the_models_outputs_is_refused(quantile_bundle) -> None:
    from seqcast.edge.model.bundle import Bundle, BundleError, Manifest, read_bundle
    from seqcast.edge.model.runtime import load_model

    b = read_bundle(quantile_bundle.bundle.path)
    doc = b.manifest.to_json()
    old = {k: v for k, v in doc.items() if k != "quantiles"}  # claims point forecasts only
    lying = Bundle(Manifest.from_json(json.loads(json.dumps(old))), b.models, b.sha256)
    with pytest.raises(RuntimeError, match=r"gives y \(3, 3\), manifest says \(3, 1\)"):
        load_model(lying, isolate=False)
    with pytest.raises(BundleError, match=r"manifest\.quantiles: must be ascending"):
        Manifest.from_json({**doc, "quantiles": [0.9, 0.1]})
    with pytest.raises(BundleError, match=r"manifest\.quantiles: 0\.5 is not allowed"):
        Manifest.from_json({**doc, "quantiles": [0.5]})


@pytest.mark.tflite
@pytest.mark.parametrize("arch", [{"cell": "lstm"}, {"cell": "gru", "bidirectional": True}])
def test_quantiles_leave_the_recurrent_layers_and_point_head_as_they_start_without(arch):
    """The interval head is made after the layers, so the same seed gives the same starting
    weights: the point forecast trains exactly as it would without quantiles."""
    import keras

    from seqcast.train.models import Architecture, build

    def start(qs: tuple[float, ...]) -> list[np.ndarray]:
        keras.utils.set_random_seed(3)
        f = build(Architecture(units=(4,), **arch), 2, 2, 1, 5, qs)
        return [w for layer in [*f.rnns, f.head] for w in layer.get_weights()]

    plain, with_intervals = start(()), start((0.1, 0.9))
    assert len(plain) == len(with_intervals) > 0
    for a, b in zip(plain, with_intervals, strict=True):
        np.testing.assert_array_equal(a, b)
