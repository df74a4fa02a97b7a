"""A statsforecast model as a baseline on the trainer's own test origins, the way
`train/baselines.py` runs AutoTheta: parameters fitted once on the end of the history before the
test split (never across a hole), then at every origin the model's state is re-run over the
origin's recent past (`CONTEXT_SEASONS` seasons, never across a hole) and it forecasts the
horizon (statsforecast's `cross_validation(refit=False)`). With `AutoTheta` and
`phase_aligned=False` this reproduces `train.baselines.theta` exactly (tests/test_bench_accuracy.py
checks it); the bench uses it for AutoETS, which the trainer does not score.

# N: rows of history + test  M: scored origins  H: horizon  T: targets
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.train.baselines import rolling_forecasts
from seqcast.train.data import Series


@dataclass(frozen=True)
class StatsResult:
    forecasts: np.ndarray  # (M, H, T)
    season: int
    fallbacks: int  # origin x target pairs the model could not forecast (persistence instead)
    model: str  # the variant the model chose, per target
    fit_seconds: float


def _chosen(model: Any) -> str:
    """What an Auto* model selected: ETS's method ("ETS(A,Ad,N)"), Theta's model type."""
    fitted = getattr(model, "model_", {})
    for key in ("method", "modeltype"):
        if key in fitted:
            return str(fitted[key])
    return type(model).__name__


def stats_forecasts(
    model_class: Callable[..., Any],
    history: Series,
    test: Series,
    origins: np.ndarray,
    season: int,
    H: int,
    phase_aligned: bool = True,
) -> StatsResult:
    """`model_class(season_length=...)` (a statsforecast model with `fit` and `forward`)
    forecasting from every origin (indices into `test`). -> (M, H, T) forecasts

    `phase_aligned`: start each origin's past at the same phase of the season as the fitted
    stretch (up to a season shorter). A model whose fitted state holds initial seasonal
    components (ETS) reads them as the phase of the first value it is given; `forward` on a past
    that starts elsewhere in the season would apply them shifted. Theta deseasonalises the
    given past itself and needs no alignment (with False this is `train.baselines.theta`)."""
    import time

    t0 = time.perf_counter()
    out, fallbacks, models = rolling_forecasts(
        model_class, history, test, origins, season, H, phase_aligned
    )
    chosen = [_chosen(m) for m in models]
    return StatsResult(out, season, fallbacks, ",".join(chosen), time.perf_counter() - t0)
