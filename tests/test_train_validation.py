"""What the validation split decides: `--predict auto` and the intervals' calibration."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.train.quantiles import MIN_TAIL, calibrate, calibrate_width, per_side_is_enough
from seqcast.train.validation import PredictChoice, choose_predict, naive_mse


def test_persistence_mse_stays_inside_segments() -> None:
    y = np.array([[0.0], [1.0], [3.0], [10.0], [10.0], [12.0]])
    # segments [0, 3) and [3, 6): h=1 errors 1, 4 | 0, 4; h=2 errors 9 | 4
    assert naive_mse(y, [0, 3], 2) == pytest.approx(np.mean([1, 4, 0, 4, 9, 4]))
    assert naive_mse(y, [0], 1) == pytest.approx(np.mean(np.diff(y[:, 0]) ** 2))


def test_seasonal_naive_mse_looks_one_season_back_within_the_past_and_the_segment() -> None:
    y = np.array([[1.0], [5.0], [2.0], [6.0], [4.0], [9.0], [0.0], [7.0]])
    # season 2, horizon 2, segments [0, 6) and [6, 8):
    # h=1 (lag 1): truth y[t+1] for origins t in [1, 5): forecast y[t-1]
    #   t=1: 2-1=1, t=2: 6-5=1, t=3: 4-2=2, t=4: 9-6=3; segment 2 is too short
    # h=2 (lag 0): truth y[t+2], forecast y[t] for t in [0, 4): 1, 1, 2, 3; and t=6: none
    want = np.mean(np.square([1, 1, 2, 3, 1, 1, 2, 3]))
    assert naive_mse(y, [0, 6], 2, season=2) == pytest.approx(want)
    # a season the segment cannot hold has no origins at all
    assert naive_mse(y[:3], [0], 1, season=5) == float("inf")


def _trained(val_mse: float):
    return (f"model-{val_mse}", {"val_loss": [val_mse * 2, val_mse]}, 1.0, ())


def test_auto_keeps_a_level_model_that_beats_the_naive_forecasts_by_far_and_trains_once() -> None:
    asked: list[str] = []

    def train(predict: str):
        asked.append(predict)
        return _trained(0.25)

    naive = {"persistence": 0.8, "seasonal_naive_12": 0.6}
    trained, choice = choose_predict(train, naive, can_change=True, seasonal=True)
    assert asked == ["level"] and choice.chosen == "level" and trained[0] == "model-0.25"
    assert choice.val_mse == {"level": 0.25, "persistence": 0.8, "seasonal_naive_12": 0.6}


@pytest.mark.parametrize(
    ("level_mse", "smooth_mse", "kept", "why"),
    [
        # 0.5 beats seasonal naive's 0.6, but not by far: the departures are trained too
        (0.5, 0.3, "smooth", "is not far ahead of"),
        (0.7, 0.45, "seasonal", "does not beat"),
    ],
)
def test_a_level_model_close_to_the_naive_forecasts_is_tested_against_the_departures(
    level_mse: float, smooth_mse: float, kept: str, why: str
) -> None:
    asked: list[str] = []
    scores = {"level": level_mse, "change": 0.75, "seasonal": 0.4, "smooth": smooth_mse}

    def train(predict: str):
        asked.append(predict)
        return _trained(scores[predict])

    naive = {"persistence": 0.8, "seasonal_naive_12": 0.6}
    trained, choice = choose_predict(train, naive, can_change=True, seasonal=True)
    assert asked == ["level", "change", "seasonal", "smooth"]
    assert choice.chosen == kept and trained[0] == f"model-{scores[kept]}"
    assert choice.reason == (
        f"the level model {why} seasonal_naive_12 on validation; {kept} has the lowest "
        "validation MSE"
    )


@pytest.mark.parametrize(("change_mse", "kept"), [(0.1, "change"), (3.0, "level")])
def test_auto_trains_the_change_model_when_levels_lose_and_keeps_the_better(
    change_mse: float, kept: str
) -> None:
    def train(predict: str):
        return _trained(2.0 if predict == "level" else change_mse)

    trained, choice = choose_predict(train, {"persistence": 0.8}, can_change=True, seasonal=False)
    assert choice == PredictChoice(
        kept,
        "the level model does not beat persistence on validation; "
        f"{kept} has the lowest validation MSE",
        {"level": 2.0, "persistence": 0.8, "change": change_mse},
    )
    assert trained[0] == f"model-{2.0 if kept == 'level' else change_mse}"


def test_a_series_that_leaves_its_training_range_keeps_the_best_departure_model() -> None:
    """The level model wins validation by far, but 30% of validation lies outside the training
    range: the departure models are trained, and the best of them is kept over level."""
    asked: list[str] = []

    def train(predict: str):
        asked.append(predict)
        return _trained({"level": 0.1, "change": 0.5, "seasonal": 0.4, "smooth": 0.3}[predict])

    naive = {"persistence": 0.8, "seasonal_naive_12": 0.6}
    trained, choice = choose_predict(train, naive, True, True, leaves_range=0.3)
    assert asked == ["level", "change", "seasonal", "smooth"]
    assert choice.chosen == "smooth" and trained[0] == "model-0.3"
    assert choice.reason == (
        "validation leaves the training range (30% of its values); smooth has the lowest "
        "validation MSE of the departure models"
    )
    assert choice.val_mse["level"] == 0.1  # reported, not kept
    _, inside = choose_predict(train, naive, True, True, leaves_range=0.01)
    assert inside.chosen == "level"


def test_outside_range_is_the_worst_targets_share_outside_its_training_range() -> None:
    from seqcast.train.validation import outside_range

    train_y = np.array([[0.0, 10.0], [5.0, 20.0], [2.0, 15.0]])
    val_y = np.array([[1.0, 21.0], [6.0, 19.0], [4.0, 25.0], [-1.0, 12.0]])
    # target 0: 6 and -1 outside [0, 5] -> 2/4; target 1: 21 and 25 outside [10, 20] -> 2/4
    assert outside_range(train_y, val_y) == pytest.approx(0.5)
    assert outside_range(train_y, train_y) == 0.0


def test_auto_without_a_target_among_the_features_keeps_levels() -> None:
    trained, choice = choose_predict(
        lambda p: _trained(2.0), {"persistence": 0.8}, can_change=False, seasonal=True
    )
    assert choice.chosen == "level" and "no target is also a feature" in choice.reason


def _apply(point, bands, scale, quantiles):
    """The graph's construction (train/quantiles.py interval_columns) with calibrated steps."""
    out = np.empty_like(bands)
    for side, ks in ((-1, [k for k, q in enumerate(quantiles) if q < 0.5][::-1]),
                     (1, [k for k, q in enumerate(quantiles) if q > 0.5])):  # fmt: skip
        raw_inner, inner = point, point
        for k in ks:
            gap = side * (bands[..., k] - raw_inner)
            inner = inner + side * scale[k] * gap
            out[..., k], raw_inner = inner, bands[..., k]
    return out


def test_calibration_brings_too_narrow_intervals_to_nominal_coverage() -> None:
    rng = np.random.default_rng(0)
    n, h, t = 4000, 3, 2
    spread = np.array([1.0, 2.0, 3.0])[None, :, None]  # error grows with the horizon step
    point = rng.normal(size=(n, h, t))
    truth = point + rng.normal(size=(n, h, t)) * spread
    quantiles = (0.05, 0.1, 0.9)
    # a head that learned intervals 3x too narrow, and the same width for every step
    z = np.array([-1.645, -1.2816, 1.2816]) / 3
    bands = point[..., None] + z
    before = [np.mean(truth <= bands[..., k]) for k in range(3)]
    assert before[0] > 0.3 and before[2] < 0.7  # far from nominal
    scale = calibrate(truth, point, bands, quantiles)
    assert scale.shape == (3, h, t) and (scale >= 0).all()
    assert scale[1, 2, 0] > scale[1, 0, 0]  # the later step needs a wider interval
    after = _apply(point, bands, scale, quantiles)
    for k, q in enumerate(quantiles):
        assert np.mean(truth <= after[..., k]) == pytest.approx(q, abs=0.01)
    # on fresh data from the same process, the coverage holds too (this is what test sees)
    truth2 = point + rng.normal(size=(n, h, t)) * spread
    for k, q in enumerate(quantiles):
        assert np.mean(truth2 <= after[..., k]) == pytest.approx(q, abs=0.025)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    quantiles=st.lists(
        st.floats(0.01, 0.99).filter(lambda q: abs(q - 0.5) > 1e-3),
        min_size=1,
        max_size=4,
        unique=True,
    ),
)
def test_calibrated_quantiles_stay_ordered_around_the_point(seed, quantiles) -> None:
    rng = np.random.default_rng(seed)
    quantiles = tuple(sorted(quantiles))
    point = rng.normal(size=(50, 2, 1))
    truth = point + rng.standard_cauchy(size=point.shape)
    steps = rng.exponential(size=(50, 2, 1, len(quantiles)))
    steps[rng.random(steps.shape) < 0.2] = 0.0  # collapsed steps happen (softplus underflow)
    bands = np.empty_like(steps)
    lower = [k for k, q in enumerate(quantiles) if q < 0.5]
    inner = point
    for k in reversed(lower):
        inner = inner - steps[..., k]
        bands[..., k] = inner
    inner = point
    for k in range(len(lower), len(quantiles)):
        inner = inner + steps[..., k]
        bands[..., k] = inner
    for how in (calibrate, calibrate_width):
        scale = how(truth, point, bands, quantiles)
        assert scale.shape == (len(quantiles), 2, 1)
        assert np.isfinite(scale).all() and (scale >= 0).all()
        after = _apply(point, bands, scale, quantiles)
        columns = np.concatenate([after[..., : len(lower)], point[..., None],
                                  after[..., len(lower):]], axis=-1)  # fmt: skip
        assert (np.diff(columns, axis=-1) >= 0).all()


def test_a_short_validation_split_calibrates_the_width_and_keeps_the_heads_asymmetry() -> None:
    """canadian_gas in window mode: 55 monthly validation origins in rising years, where every
    forecast falls short, then test years that flatten, where they overshoot. Per-side factors
    turn the validation bias into a lopsided interval (p10 far below, p90 far above the point),
    and on test 30% of the values fall under p10. Calibrating the width alone, one factor for
    p10 and p90, over the pooled horizon steps, keeps the head's shape: both tails near nominal.
    A long split (vic_elec's 7,840 origins) keeps a factor per side and step."""
    rng = np.random.default_rng(7)
    n, h, quantiles = 55, 3, (0.1, 0.9)
    assert not per_side_is_enough(n, quantiles) and per_side_is_enough(7840, quantiles)
    assert per_side_is_enough(MIN_TAIL * 10, quantiles)

    def forecasts(bias: float, count: int) -> tuple[np.ndarray, ...]:
        point = rng.normal(size=(count, h, 1))
        truth = point + bias + rng.normal(size=(count, h, 1))
        # a head that learned the right shape, too narrow (z of 0.1 and 0.9, halved)
        bands = point[..., None] + np.array([-1.2816, 1.2816]) / 2
        return truth, point, bands

    val, test = forecasts(0.8, n), forecasts(-0.8, 4000)
    coverage = {}
    for how in (calibrate, calibrate_width):
        after = _apply(test[1], test[2], how(*val, quantiles), quantiles)
        coverage[how.__name__] = [float(np.mean(test[0] <= after[..., k])) for k in range(2)]
    assert coverage["calibrate"][0] > 0.25  # the failure: p10 covers far more than 10%
    lo, hi = coverage["calibrate_width"]
    assert abs(lo - 0.1) < abs(coverage["calibrate"][0] - 0.1) - 0.1
    assert lo < 0.2 and hi > 0.8
    # on the validation forecasts themselves the interval holds its nominal 80%
    scale = calibrate_width(*val, quantiles)
    assert np.allclose(scale[0], scale[1]) and np.allclose(scale[:, :1], scale)  # shared, pooled
    after = _apply(val[1], val[2], scale, quantiles)
    inside = np.mean((val[0] >= after[..., 0]) & (val[0] <= after[..., 1]))
    assert inside == pytest.approx(0.8, abs=1.5 / (n * h))


def test_a_quantile_fit_is_calibrated_on_validation_and_its_bundle_carries_it(
    quantile_bundle,
) -> None:
    cal = quantile_bundle.metrics["interval_calibration"]
    assert list(cal) == ["stream", "window"]  # each graph on the forecasts it makes
    for graph in cal.values():
        # the synthetic validation split is short: the width is calibrated, not each side
        assert graph["method"] == "width" and not per_side_is_enough(graph["origins"], (0.1,))
        assert list(graph["quantiles"]) == ["p10", "p90"]
        band = graph["interval"]
        assert band["nominal"] == pytest.approx(0.8)
        assert abs(band["val_coverage_after"] - 0.8) <= 0.02
        assert abs(band["val_coverage_after"] - 0.8) <= abs(band["val_coverage_before"] - 0.8)
        for c in graph["quantiles"].values():
            assert c["factor_range"][0] >= 0
    # the factors are in the exported graphs: the Keras window graph (which reads the same
    # variables) and the interpreter agree, so the test split's coverage is the calibrated one
    f = quantile_bundle.forecaster
    for scales in (f.interval_scales, f.window_scales):
        factors = np.stack([s.factors.numpy() for s in scales])
        assert not np.allclose(factors, 1.0)
    # the window graph sees seq_len steps from zero state: it needs other factors than the stream
    stream = np.stack([s.factors.numpy() for s in f.interval_scales])
    window = np.stack([s.factors.numpy() for s in f.window_scales])
    assert not np.allclose(stream, window)
