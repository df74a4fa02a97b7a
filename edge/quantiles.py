"""Prediction intervals: which quantiles a bundle forecasts, their names, and where they are in
the model's output. One definition for the trainer and the device.

A bundle with quantiles q_1 < ... < q_Q has, for each target, the point forecast followed by
one column per quantile: the output is (H, T * (1 + Q)) with column t * (1 + Q) + k holding
target t's point forecast (k = 0) or its quantile q_k (k = 1..Q). The payload names a quantile
column `<target>_<name>`, the name being `p` and the quantile in percent, written as the
shortest decimal (0.1 -> p10, 0.9 -> p90, 0.025 -> p2.5, 0.999 -> p99.9).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal


class QuantileError(ValueError):
    """A quantile list that cannot be used, explained in one line."""


def name(q: float) -> str:
    """`p` and the quantile in percent, shortest decimal: 0.1 -> `p10`, 0.025 -> `p2.5`."""
    percent = (Decimal(repr(float(q))) * 100).normalize()  # repr: the shortest decimal of q
    return "p" + format(percent, "f")


def check(values: Sequence[float]) -> tuple[float, ...]:
    """The quantiles, sorted; raises QuantileError unless each is in (0, 1), not 0.5 (the point
    forecast's place: intervals are built outward from it) and all names are distinct."""
    qs = []
    for v in values:
        q = float(v)
        if not 0.0 < q < 1.0:  # also refuses NaN
            raise QuantileError(f"each quantile must be between 0 and 1 (exclusive), got {v!r}")
        if q == 0.5:
            raise QuantileError(
                "0.5 is not allowed: the point forecast sits between the lower and upper "
                "quantiles (give e.g. 0.1,0.9)"
            )
        qs.append(q)
    names = [name(q) for q in qs]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise QuantileError(f"duplicate quantiles ({', '.join(dup)})")
    return tuple(sorted(qs))


def columns(targets: Sequence[str], quantiles: Sequence[float]) -> list[str]:
    """The output's column names in order: each target, then its quantile columns."""
    names = [name(q) for q in quantiles]
    return [c for t in targets for c in (t, *(f"{t}_{n}" for n in names))]


def point_index(n_targets: int, n_quantiles: int) -> list[int]:
    """Output columns holding the point forecasts, in target order."""
    return [t * (1 + n_quantiles) for t in range(n_targets)]
