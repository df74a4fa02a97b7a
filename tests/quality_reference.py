"""Live forecast quality computed offline, the slow and obvious way, from a stream's actuals and
the forecasts published for it (docs: edge/path/quality.py): for the tests to compare with."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Offline:
    mae: list[float | None]  # per horizon step, over the window at the last step
    persistence_mae: list[float | None]
    n: int
    drifting: bool
    flagged: int  # times the stream became drifting
    cleared: int


def offline_quality(
    actuals: list[list[float]],
    forecasts: dict[int, list[list[float]]],
    horizon: int,
    window: int,
    drift_after: int,
) -> Offline:
    """`actuals[i]`: the scored targets' values at step i; `forecasts[o]`: the published point
    forecasts (horizon rows, one value per scored target) made at step o."""
    block = max(1, window // 8)
    blocks = max(1, window // block)

    def errors(i: int, h: int) -> tuple[float, float] | None:
        o = i - h
        if o not in forecasts:
            return None
        y = np.asarray(actuals[i])
        model = float(np.mean(np.abs(np.asarray(forecasts[o][h - 1]) - y)))
        naive = float(np.mean(np.abs(np.asarray(actuals[o]) - y)))
        return model, naive

    def pairs(last: int) -> tuple[list[list[float]], list[list[float]]]:
        """Per horizon step, the errors scored in the blocks the window keeps at step `last`."""
        first_block = last // block - blocks + 1
        per_model: list[list[float]] = [[] for _ in range(horizon)]
        per_naive: list[list[float]] = [[] for _ in range(horizon)]
        for i in range(last + 1):
            if i // block < first_block:
                continue
            for h in range(1, horizon + 1):
                e = errors(i, h)
                if e is not None:
                    per_model[h - 1].append(e[0])
                    per_naive[h - 1].append(e[1])
        return per_model, per_naive

    def at(last: int) -> tuple[list[float | None], list[float | None], int]:
        """MAE per horizon step over the window at step `last`."""
        per_model, per_naive = pairs(last)
        model = [float(np.mean(e)) if e else None for e in per_model]
        naive = [float(np.mean(e)) if e else None for e in per_naive]
        return model, naive, len(per_model[0])

    run, drifting, flagged, cleared = 0, False, 0, 0
    for i in range(len(actuals)):
        if not any(errors(i, h) is not None for h in range(1, horizon + 1)):
            continue  # nothing scored at this step
        per_model, per_naive = pairs(i)  # the verdict pools every pair in the window
        m = np.mean([e for es in per_model for e in es])
        p = np.mean([e for es in per_naive for e in es])
        run = run + 1 if m > p else 0
        now = run >= drift_after
        flagged += now and not drifting
        cleared += drifting and not now
        drifting = now
    model, naive, n = at(len(actuals) - 1)
    return Offline(model, naive, n, drifting, flagged, cleared)
