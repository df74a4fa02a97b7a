"""LightGBM, direct per horizon step: the gradient-boosting baseline of issue 11.

One regressor per (horizon step, target). Its inputs at an origin t are the same seq_len window
of raw features the seqcast model reads (steps t-L+1..t, flattened), optionally with the
calendar columns (`seqcast.edge.calendar.columns`, the names the seqcast defaults pick) of the
origin's grid time. It predicts the change from the target's value at t, not the level: trees
cannot produce a level they never saw in training (canadian_gas's test years lie above every
training month), a change they can. Trained on the train split's windows, early stopping on the
validation split's, scored on the test split's origins (`window_origins`, inside segments, the
same origins the trainer scores).

# M: origins  L: seq_len  F: features  H: horizon  T: targets  C: calendar columns
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from seqcast.edge import calendar
from seqcast.train.data import Series, Splits
from seqcast.train.windows import window_origins, windows

ROUNDS = 2000  # a cap: early stopping on validation is the usual stop
EARLY_STOP = 50  # rounds without a better validation L1
QUICK_ROUNDS = 60


@dataclass(frozen=True)
class Design:
    """One split as LightGBM rows: X (M, L*F + C), the origin's targets (M, T), truth (M, H, T)."""

    x: np.ndarray
    last: np.ndarray
    truth: np.ndarray
    origins: np.ndarray  # (M,) indices into the split


def design(part: Series, seq_len: int, horizon: int, names: Sequence[str]) -> Design:
    origins = window_origins(part.segment_starts, len(part), seq_len, horizon)
    xw, truth = windows(part.features, part.targets, seq_len, horizon, part.segment_starts)
    x = xw.reshape(len(xw), -1)  # (M, L, F) -> (M, L*F), oldest step first
    if names:
        x = np.concatenate([x, calendar.columns(names, part.times[origins])], axis=1)
    return Design(x.astype(np.float32), part.targets[origins], truth, origins)


@dataclass(frozen=True)
class LgbmResult:
    forecasts: np.ndarray  # (M, H, T) on the test origins
    origins: np.ndarray  # (M,) test indices, to check against the trainer's
    rounds: list[int]  # best iteration of each (step, target) model
    seconds: float


def lgbm_forecasts(
    splits: Splits,
    seq_len: int,
    horizon: int,
    names: Sequence[str] = (),
    quick: bool = False,
    seed: int = 0,
    threads: int = 2,
) -> LgbmResult:
    """Train H x T direct models and forecast the test origins."""
    import lightgbm as lgb

    t0 = time.perf_counter()
    tr, va, te = (
        design(p, seq_len, horizon, names) for p in (splits.train, splits.val, splits.test)
    )
    out = np.empty_like(te.truth)  # (M, H, T)
    rounds = []
    for k in range(horizon):
        for j in range(tr.truth.shape[2]):
            params = {
                "objective": "regression",
                "metric": "l1",
                "learning_rate": 0.05,
                "num_leaves": 31,
                "feature_fraction": 0.8,
                "seed": seed,
                "num_threads": threads,
                "verbosity": -1,
            }
            train = lgb.Dataset(tr.x, tr.truth[:, k, j] - tr.last[:, j])
            val = lgb.Dataset(va.x, va.truth[:, k, j] - va.last[:, j], reference=train)
            booster = lgb.train(
                params,
                train,
                num_boost_round=QUICK_ROUNDS if quick else ROUNDS,
                valid_sets=[val],
                callbacks=[lgb.early_stopping(EARLY_STOP, verbose=False)],
            )
            rounds.append(int(booster.best_iteration or booster.current_iteration()))
            out[:, k, j] = te.last[:, j] + booster.predict(te.x, num_iteration=rounds[-1])
    return LgbmResult(out, te.origins, rounds, time.perf_counter() - t0)
