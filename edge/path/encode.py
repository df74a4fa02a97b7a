"""Forecast -> bytes: the output payload of the MQTT contract (docs/ARCHITECTURE.md), hot path."""

from __future__ import annotations

import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from math import isfinite

import numpy as np


def float32_decimals(values: np.ndarray) -> np.ndarray:
    """`values` at the model's precision: each becomes the float64 nearest to the shortest decimal
    that reads back as the same float32, so `repr()` prints at most 9 significant digits (not 17)
    and a consumer that parses it into a float32 gets the model's value. Shape is kept."""
    with np.errstate(over="ignore"):  # beyond float32's range becomes inf: rejected when encoded
        as32 = np.asarray(values).astype(np.float32)
    decimals: np.ndarray = as32.astype(str).astype(np.float64)
    return decimals


def encode_forecast(
    stream: str,
    ts: float,
    model_id: str,
    targets: Sequence[str],
    interval_s: float,
    values: np.ndarray,
) -> bytes:
    """Compact UTF-8 JSON forecast message (docs/ARCHITECTURE.md, "MQTT").

    ``values`` is ``[horizon, C]`` in original units, one column per name in ``targets`` (the
    bundle's output columns: each target, then its quantiles such as ``Demand_p10``), published
    at float32 precision (see `float32_decimals`); row ``k - 1`` is stamped
    ``ts + k * interval_s``. Raises ValueError on a wrong shape or a non-finite number.
    """
    return encode_rounded(stream, ts, model_id, targets, interval_s, float32_decimals(values))


def encode_rounded(
    stream: str,
    ts: float,
    model_id: str,
    targets: Sequence[str],
    interval_s: float,
    values: np.ndarray,
    step_times: Sequence[float] | None = None,
) -> bytes:
    """`encode_forecast` for values that already went through `float32_decimals` (the engine
    rounds a whole batch at once, which costs less than one forecast at a time). `step_times`:
    row k's timestamps when they are not `ts + k * interval_s` (a calendar grid's months).

    Built from a template per (targets, horizon), byte for byte what ``json.dumps(doc,
    separators=(",", ":"), ensure_ascii=False, allow_nan=False)`` gives (floats are
    ``float.__repr__`` there too), at a fraction of the cost: this runs once per forecast.
    """
    # H: horizon  C: output columns (targets and their quantiles)
    names = targets if targets.__class__ is tuple else tuple(targets)
    arr = (
        values
        if values.__class__ is np.ndarray and values.dtype == np.float64
        else (np.asarray(values, dtype=np.float64))
    )  # -> (H, C)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(f"values: expected shape (horizon, {len(names)}), got {arr.shape}")
    horizon = len(arr)
    template = _TEMPLATES.get((names, horizon))
    if template is None:
        if "ts" in names:
            raise ValueError("targets: a target may not be named 'ts'")
        if len(set(names)) != len(names):  # duplicate names collapse in a dict: keep json's way
            return _encode_forecast_json(
                stream, ts, model_id, list(names), interval_s, arr, step_times
            )
        template = _template(names, horizon)
        if len(_TEMPLATES) < 64:
            _TEMPLATES[(names, horizon)] = template
    start, step = float(ts), float(interval_s)
    if not (isfinite(start) and isfinite(step) and step > 0.0):
        raise ValueError(f"ts ({start!r}) must be finite and interval_s ({step!r}) > 0")
    numbers: list[float] = []  # each step's ts, then its values
    for stamp, row in zip(_stamps(start, step, horizon, step_times), arr.tolist(), strict=True):
        numbers.append(stamp)
        numbers += row
    # one test for all of them; a sum that overflows from finite numbers is checked one by one
    if not isfinite(sum(numbers)) and not all(map(isfinite, numbers)):
        raise ValueError(f"values: forecast for {stream!r} contains non-finite numbers")
    return (template % (_quote(stream), start, _quote(model_id), *numbers)).encode()


def _template(names: tuple[str, ...], horizon: int) -> str:
    """The message with a `%s` for the stream and the model (quoted) and a `%r` for every
    number: `%r` of a float is `float.__repr__`, what json.dumps writes."""
    step = '{"ts":%r' + "".join("," + _quote(n).replace("%", "%%") + ":%r" for n in names) + "}"
    return '{"stream":%s,"ts":%r,"model":%s,"forecast":[' + ",".join([step] * horizon) + "]}"


_TEMPLATES: dict[tuple[tuple[str, ...], int], str] = {}  # (targets, horizon) -> template
_quote = encode_basestring  # what json.dumps uses for strings with ensure_ascii=False


def _stamps(start: float, step: float, n: int, given: Sequence[float] | None) -> list[float]:
    if given is None:
        return [start + k * step for k in range(1, n + 1)]
    if len(given) != n or not all(isfinite(t) for t in given):
        raise ValueError(f"step_times: expected {n} finite timestamps, got {list(given)[: n + 1]}")
    return [float(t) for t in given]


def _encode_forecast_json(
    stream: str,
    ts: float,
    model_id: str,
    names: list[str],
    interval_s: float,
    arr: np.ndarray,
    step_times: Sequence[float] | None = None,
) -> bytes:
    """The reference encoding through `json.dumps` (also the path for odd target lists)."""
    start, step = float(ts), float(interval_s)
    if not (isfinite(start) and isfinite(step) and step > 0.0):
        raise ValueError(f"ts ({start!r}) must be finite and interval_s ({step!r}) > 0")
    if not np.isfinite(arr).all():
        raise ValueError(f"values: forecast for {stream!r} contains non-finite numbers")
    forecast = []
    stamps = _stamps(start, step, len(arr), step_times)
    for k, row in enumerate(arr.tolist(), 1):
        item = {"ts": stamps[k - 1]}
        item.update(zip(names, row, strict=True))
        forecast.append(item)
    doc = {"stream": stream, "ts": start, "model": model_id, "forecast": forecast}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
