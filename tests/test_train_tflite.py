"""Trained Keras models vs the converted TFLite models, run through the real interpreter.

Documented tolerances (scaled units, i.e. standard deviations of the target):
float32 1e-5; float16 and dynamic-range 0.05 (max abs over every output); int8 is measured and
reported in the manifest's metrics, not bounded here beyond "finite and worse than float32".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.backends.base import TFLiteModel
from seqcast.edge.model.bundle import STEP_FILE, WINDOW_FILE, read_bundle
from seqcast.edge.model.runtime import load_model
from seqcast.train import export
from seqcast.train.cli import main
from seqcast.train.fit import FitOptions, fit
from seqcast.train.models import MASK_VALUE
from tests.synth import write_csv

pytestmark = [pytest.mark.tflite, pytest.mark.slow]

FLOAT32_TOL = 1e-5
REDUCED_TOL = {"float16": 0.05, "dynamic": 0.05}


def _opts(tmp: Path, **kw) -> FitOptions:
    base = dict(
        data=str(write_csv(tmp / "s.csv", n=1600)),
        time_col="time",
        features=["load", "temp"],
        targets=["load"],
        seq_len=12,
        horizon=3,
        units=(16,),
        epochs=2,
        batch_size=64,
        report=False,
        out=str(tmp / "m.seqcast"),
        baselines="naive",  # AutoTheta: the lstm fixture below and test_baselines.py
    )
    base.update(kw)
    return FitOptions(**base)


@pytest.fixture(scope="module")
def lstm(tmp_path_factory):
    return fit(_opts(tmp_path_factory.mktemp("lstm"), baselines="all"))


def _interp(data: bytes) -> TFLiteModel:
    return TFLiteModel(first_backend().interpreter_class, data)


def _test_sequence(result, length: int = 40) -> np.ndarray:
    return result.scaler.features(result.splits.test)[None, :length]  # (1, S, F)


def _step_tflite(model: TFLiteModel, x: np.ndarray, state_names: list[str]) -> np.ndarray:
    """Step a step.tflite over x (B, S, F) from zero state -> (B, S, H, T)."""
    b = x.shape[0]
    state = {n: np.zeros((b, model.input_shape(n)[0]), np.float32) for n in state_names}
    ys = []
    for t in range(x.shape[1]):
        out = model.run({"x": x[:, t], **state})
        ys.append(out["y"])
        state = {n: out[n] for n in state_names}
    return np.stack(ys, axis=1)


def test_step_tflite_equals_keras_over_a_sequence(lstm):
    x = _test_sequence(lstm, 60)
    keras_seq = lstm.forecaster.model.predict(x, verbose=0)  # (1, S, H, T): the trained model
    names = [s.name for s in lstm.bundle.manifest.state]
    tfl = _step_tflite(_interp(lstm.bundle.models[STEP_FILE]), x, names)
    assert np.max(np.abs(tfl - keras_seq)) < FLOAT32_TOL
    assert np.std(tfl) > 0.05  # not a constant: the comparison means something


def test_window_tflite_equals_keras(lstm):
    x = lstm.scaler.features(lstm.splits.test)
    xw = np.stack([x[i : i + 12] for i in range(0, 200, 7)])
    keras_y = lstm.window_keras.predict(xw, verbose=0)
    tfl_y = _interp(lstm.bundle.models[WINDOW_FILE]).run({"x": xw})["y"]
    assert tfl_y.shape == (len(xw), 3, 1)
    assert np.max(np.abs(tfl_y - keras_y)) < FLOAT32_TOL
    # and the window model is the last step of the sequence model run over the same window
    seq_last = lstm.forecaster.model.predict(xw, verbose=0)[:, -1]
    assert np.max(np.abs(tfl_y - seq_last)) < FLOAT32_TOL


def test_bundle_round_trips_and_self_tests(lstm):
    b = read_bundle(lstm.bundle.path)
    assert b.sha256 == lstm.bundle.sha256
    m = b.manifest
    assert m.features == ["load", "temp"] and m.targets == ["load"] and m.interval_s == 1800.0
    # a model forecasting departures (--predict auto's choice) carries its anchor's state too
    anchor = [] if m.architecture["predict"] == "level" else ["anchor_ring", "anchor_seen"]
    assert [s.name for s in m.state] == ["layer0_h", "layer0_c", *anchor]
    assert m.state[0].shape == [16]
    assert set(m.files) == {WINDOW_FILE, STEP_FILE}
    baselines = ("persistence", "seasonal_naive_48", "seasonal_naive_336", "theta")
    for method in ("window", "stream", *baselines):
        assert m.metrics[method]["mae"] > 0
    assert m.metrics["verdict"]["best_baseline"] in baselines
    _, report = load_model(b)
    assert report.passed and report.step_max_error is not None


@pytest.mark.parametrize("quantization", ["float16", "dynamic"])
def test_reduced_precision_stays_close_to_float32(lstm, quantization):
    f = lstm.forecaster
    x = _test_sequence(lstm, 40)
    names = [s.name for s in lstm.bundle.manifest.state]
    ref = _step_tflite(_interp(lstm.bundle.models[STEP_FILE]), x, names)
    _, seen = export.keras_step_run(f, x)
    q = _step_tflite(_interp(export.convert_step(f, quantization, seen)), x, names)
    err = float(np.max(np.abs(q - ref)))
    assert err < REDUCED_TOL[quantization], f"{quantization}: max abs error {err:.4f}"


def test_int8_bundle_error_is_measured_and_reported(tmp_path, lstm):
    r = fit(_opts(tmp_path, quantize="int8"))
    m = r.bundle.manifest
    assert m.quantization == "int8"
    # the int8 bundle's own stream/window accuracy is in its manifest, next to the baselines
    assert np.isfinite(m.metrics["stream"]["mae"]) and np.isfinite(m.metrics["window"]["mae"])
    print(
        f"int8 stream MAE {m.metrics['stream']['mae']:.3f} "
        f"vs float32 {lstm.metrics['stream']['mae']:.3f}"
    )
    _, report = load_model(r.bundle)
    assert report.passed


def test_gru_stacked_bundle(tmp_path):
    r = fit(_opts(tmp_path, cell="gru", units=(16, 8), predict="level"))  # cells only
    m = r.bundle.manifest
    assert [s.name for s in m.state] == ["layer0_h", "layer1_h"]
    assert [s.shape for s in m.state] == [[16], [8]]
    x = _test_sequence(r, 30)
    tfl = _step_tflite(_interp(r.bundle.models[STEP_FILE]), x, [s.name for s in m.state])
    assert np.max(np.abs(tfl - r.forecaster.model.predict(x, verbose=0))) < FLOAT32_TOL
    assert load_model(r.bundle)[1].passed


def test_stacked_lstm_bundle(tmp_path):
    r = fit(_opts(tmp_path, units=(16, 8), predict="level"))  # cells only
    names = [s.name for s in r.bundle.manifest.state]
    assert names == ["layer0_h", "layer0_c", "layer1_h", "layer1_c"]
    x = _test_sequence(r, 30)
    tfl = _step_tflite(_interp(r.bundle.models[STEP_FILE]), x, names)
    assert np.max(np.abs(tfl - r.forecaster.model.predict(x, verbose=0))) < FLOAT32_TOL


def test_min_history_masked_window_equals_short_stream(tmp_path):
    r = fit(_opts(tmp_path, min_history=4))
    m = r.bundle.manifest
    assert m.min_history == 4 and m.mask_value == MASK_VALUE
    x = _test_sequence(r, 12)[0]  # (L, F)
    win = _interp(r.bundle.models[WINDOW_FILE])
    stream = _step_tflite(_interp(r.bundle.models[STEP_FILE]), x[None], [s.name for s in m.state])[
        0
    ]
    for k in (4, 7, 12):
        padded = np.full((12, m.input_width), MASK_VALUE, np.float32)  # features + calendar
        padded[-k:] = x[:k]
        y = win.run({"x": padded[None]})["y"][0]
        assert np.max(np.abs(y - stream[k - 1])) < FLOAT32_TOL, f"history {k}"


def test_bidirectional_streaming_is_refused(tmp_path, capsys):
    csv = write_csv(tmp_path / "s.csv", n=400)
    args = [
        "fit",
        "--data",
        str(csv),
        "--features",
        "load",
        "--targets",
        "load",
        "--time-col",
        "time",
        "--seq-len",
        "8",
        "--horizon",
        "2",
        "--bidirectional",
        "--out",
        str(tmp_path / "b.seqcast"),
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "--bidirectional cannot make a streaming bundle" in err and "--mode window" in err
    assert not (tmp_path / "b.seqcast").exists()


@pytest.mark.parametrize("flag", ["bidirectional", "conv1d"])
def test_window_only_architectures(tmp_path, flag):
    r = fit(_opts(tmp_path, mode="window", **{flag: True}))
    m = r.bundle.manifest
    assert set(m.files) == {WINDOW_FILE} and m.state == [] and "stream" not in m.metrics
    x = r.scaler.features(r.splits.test)
    xw = np.stack([x[i : i + 12] for i in range(0, 100, 9)])
    tfl = _interp(r.bundle.models[WINDOW_FILE]).run({"x": xw})["y"]
    assert np.max(np.abs(tfl - r.forecaster.model.predict(xw, verbose=0))) < FLOAT32_TOL
    model, report = load_model(r.bundle)
    assert report.passed and not model.has_step


def test_long_seq_len_with_a_short_test_split(tmp_path):
    """seq_len 100 with a 180-row test split (< 2 x seq_len) still builds its self-test vectors."""
    r = fit(
        _opts(
            tmp_path,
            data=str(write_csv(tmp_path / "long.csv", n=1200)),
            seq_len=100,
            horizon=2,
            units=(8,),
            epochs=1,
            predict="level",  # the split's length is the point here, not auto's four trainings
        )
    )
    assert len(r.bundle.manifest.selftest["window"]["x"]) >= 2
    assert load_model(r.bundle)[1].passed
