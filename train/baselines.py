"""The baselines every report scores on the model's own test origins, and the verdict against them.

- persistence: the last value, for every step of the horizon;
- seasonal naive, at each natural season of the grid (`seasons_for`: a day and a week for
  sub-daily data, a week for daily data, a year for monthly and quarterly data);
- AutoTheta (statsforecast), the strong classical baseline: its parameters are fitted once on
  the end of the history before the test split, then at every origin its state is re-run over
  the origin's recent past (`CONTEXT_SEASONS` seasons, never across a hole) and it forecasts the
  horizon, as statsforecast's `cross_validation(refit=False)` does.

# N: rows of history + test  M: scored origins  H: horizon  T: targets
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqcast.edge.timegrid import Grid
from seqcast.train.data import Series

log = logging.getLogger(__name__)

CONTEXT_SEASONS = 10  # seasons of recent past Theta re-runs at each origin
MIN_CONTEXT = 50  # rows, for grids without a season
FIT_SEASONS = 50  # seasons of history Theta's parameters are fitted on
MAX_FIT_ROWS = 5000  # AutoTheta's fit grows with length; 5,000 rows take about 2 s


def seasons_for(grid: Grid) -> list[int]:
    """The seasons (in steps) a seasonal naive forecast should try on this grid; [] when the grid
    has no whole-step season (then persistence is the only naive baseline)."""
    if grid.calendar:
        per_year = 12 / int(grid.n)
        return [int(per_year)] if per_year >= 2 and per_year == int(per_year) else []
    seasons = []
    for period in (86400.0, 7 * 86400.0):
        steps = period / float(grid.n)
        if steps >= 2 and abs(steps - round(steps)) < 1e-6:
            seasons.append(int(round(steps)))
    return seasons


def seasonal_naive(
    history: Series, test: Series, origins: np.ndarray, season: int, H: int
) -> np.ndarray:
    """The value one season (or a multiple) before each target step, never after the origin,
    looked up by grid step; where that step is in a hole, the value at the origin (persistence).
    -> (M, H, T)"""
    steps = np.concatenate([history.steps, test.steps])
    values = np.concatenate([history.targets, test.targets])
    k = np.arange(1, H + 1)
    back = season * np.ceil(k / season).astype(int)  # same time one season ago, within the past
    want = test.steps[origins][:, None] + k[None, :] - back[None, :]  # (M, H) grid steps
    pos = np.clip(np.searchsorted(steps, want), 0, len(steps) - 1)
    found = steps[pos] == want
    return np.where(found[:, :, None], values[pos], persistence(test, origins, H))


def persistence(test: Series, origins: np.ndarray, H: int) -> np.ndarray:
    """-> (M, H, T): the value at each origin, repeated."""
    return np.repeat(test.targets[origins][:, None, :], H, axis=1)


@dataclass(frozen=True)
class ThetaResult:
    forecasts: np.ndarray  # (M, H, T)
    season: int
    fallbacks: int  # origin x target pairs Theta could not forecast (persistence used instead)
    model: str  # the variant AutoTheta chose, per target


def _run_starts(steps: np.ndarray) -> np.ndarray:
    """For every row, the first row of its run of consecutive grid steps. -> (N,)"""
    breaks = np.flatnonzero(np.diff(steps) != 1) + 1
    starts = np.zeros(len(steps), np.int64)
    starts[breaks] = breaks
    return np.maximum.accumulate(starts)


class BaselineError(Exception):
    """A baseline that cannot be scored on this data (the report says why)."""


def _fit_rows(run_start: np.ndarray, fit_rows: int, min_rows: int) -> slice:
    """The last `fit_rows` rows of the history's last run of consecutive steps, or of its longest
    run when the last one is shorter than `min_rows`."""
    end = len(run_start)
    starts = np.unique(run_start)
    ends = np.append(starts[1:], end)
    if end - starts[-1] < min_rows:
        longest = int(np.argmax(ends - starts))
        end = int(ends[longest])
        starts = starts[: longest + 1]
    return slice(max(int(starts[-1]), end - fit_rows), end)


def rolling_forecasts(
    model_class: Any,
    history: Series,
    test: Series,
    origins: np.ndarray,
    season: int,
    H: int,
    phase_aligned: bool = False,
) -> tuple[np.ndarray, int, list[Any]]:
    """`model_class(season_length=...)` (a statsforecast model with `fit` and `forward`), fitted
    once per target on the history, forecasting from every origin. -> ((M, H, T) forecasts,
    fallbacks, the fitted models). `phase_aligned`: start each origin's past at the fitted
    stretch's phase of the season (for models whose state holds initial seasonal components,
    such as ETS; Theta deseasonalises the given past itself)."""
    steps = np.concatenate([history.steps, test.steps])
    values = np.concatenate([history.targets, test.targets]).astype(np.float64)  # (N, T)
    run_start = _run_starts(steps)
    context = max(CONTEXT_SEASONS * season, MIN_CONTEXT)
    fit_rows = min(max(FIT_SEASONS * season, 1000), MAX_FIT_ROWS)
    end = len(history)  # rows before `end` are history; the test split is never fitted on
    fit_rows_ = _fit_rows(run_start[:end], fit_rows, min_rows=3 * season + 10)
    name = getattr(model_class, "__name__", "the model")

    out = persistence(test, origins, H).astype(np.float64)
    fallbacks, models = 0, []
    for j in range(values.shape[1]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = model_class(season_length=max(season, 1)).fit(values[fit_rows_, j])
        except Exception as e:  # statsforecast's own checks, e.g. too little history
            raise BaselineError(f"{name} could not be fitted: {e}") from e
        models.append(model)
        for m, origin in enumerate(origins):
            g = end + int(origin)  # row of the origin in history + test
            start = max(int(run_start[g]), g - context + 1)
            if phase_aligned:
                start += int(steps[fit_rows_.start] - steps[start]) % max(season, 1)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = np.asarray(model.forward(values[start : g + 1, j], h=H)["mean"], float)
            except Exception:  # too short for its decomposition, or a degenerate window
                f = np.full(H, np.nan)
            if f.shape == (H,) and np.isfinite(f).all():
                out[m, :, j] = f
            else:
                fallbacks += 1
    return out, fallbacks, models


def theta(history: Series, test: Series, origins: np.ndarray, season: int, H: int) -> ThetaResult:
    """AutoTheta forecasts from every origin. -> ThetaResult with (M, H, T) forecasts"""
    from statsforecast.models import AutoTheta

    out, fallbacks, models = rolling_forecasts(AutoTheta, history, test, origins, season, H)
    chosen = ",".join(str(m.model_["modeltype"]) for m in models)
    return ThetaResult(out, season, fallbacks, chosen)


def baseline_forecasts(
    history: Series,
    test: Series,
    origins: np.ndarray,
    seasons: Sequence[int],
    H: int,
    strong: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every baseline's forecasts, keyed by method name, and what to record about them."""
    preds = {"persistence": persistence(test, origins, H)}
    for s in seasons:
        preds[f"seasonal_naive_{s}"] = seasonal_naive(history, test, origins, s, H)
    info: dict[str, Any] = {"seasons": list(seasons)}
    if strong:
        try:
            result = theta(history, test, origins, seasons[0] if seasons else 1, H)
        except ImportError:
            info["theta"] = "not scored: statsforecast is missing (pip install 'seqcast[train]')"
            log.warning("AutoTheta baseline skipped: statsforecast is not installed")
        except BaselineError as e:
            info["theta"] = f"not scored: {e}"
            log.warning("AutoTheta baseline skipped: %s", e)
        else:
            preds["theta"] = result.forecasts
            info["theta"] = {
                "season": result.season,
                "model": result.model,
                "fallbacks": result.fallbacks,
            }
    return preds, info


BASELINES_FIRST = ("persistence", "seasonal_naive", "theta")


def is_baseline(method: str) -> bool:
    return method.startswith(BASELINES_FIRST)


def verdict(metrics: dict[str, Any]) -> dict[str, Any]:
    """The model's test MAE (stream when it has a step model, else window) against the best
    baseline's."""
    model = "stream" if "stream" in metrics else "window"
    baselines = [k for k in metrics if is_baseline(k) and isinstance(metrics[k], dict)]
    best = min(baselines, key=lambda k: metrics[k]["mae"])
    mae, base = metrics[model]["mae"], metrics[best]["mae"]
    return {
        "model": model,
        "best_baseline": best,
        "beats": bool(mae < base),
        "gain": round(1 - mae / base, 4) if base > 0 else 0.0,
    }


ADVICE = (
    "try `seqcast-train auto` (it compares sequence lengths, cells and sizes on validation), a "
    "longer --seq-len, --calendar auto, or more history; until then the baseline is the better "
    "forecast"
)


def verdict_line(metrics: dict[str, Any]) -> str:
    v = metrics["verdict"]
    model, best = v["model"], v["best_baseline"]
    mae, base = metrics[model]["mae"], metrics[best]["mae"]
    if v["beats"]:
        return (
            f"test MAE: {model} {mae:.3f} beats the best baseline, {best} {base:.3f} "
            f"({100 * v['gain']:.1f}% lower)"
        )
    return (
        f"warning: the model does NOT beat the best baseline: test MAE {model} {mae:.3f} vs "
        f"{best} {base:.3f}; {ADVICE}"
    )
