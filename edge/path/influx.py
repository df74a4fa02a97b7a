"""Forecast -> InfluxDB line protocol (`[output] format = "influx"`), one line per horizon step:

    forecast,model=<model id>,step=<k>,stream=<stream> <column>=<float>,... <step time in ns>

Tags sorted by key (what InfluxDB prefers); one field per output column (each target, then its
quantiles: `load`, `load_p10`, `load_p90`), floats as Python prints them (`1e+16` and `100.0` both
parse as floats); the timestamp is the step's, in integer nanoseconds. Keyed by stream, step and
time, a forecast published again after a restart overwrites the same points with the same
values. Escaping follows the line-protocol reference: commas, equals signs and spaces in tag
keys, tag values and field keys get a backslash. A stream id with a backslash or a character
that is not printable (line breaks, tabs, other spaces than ' '), which the protocol cannot
carry unambiguously, raises ValueError (counted as `encode_errors`, like a non-finite value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MEASUREMENT = "forecast"


def escape_key(text: str) -> str:
    """A tag key, tag value or field key: `,`, `=` and space escaped with a backslash."""
    return text.replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def tag_value(text: str, what: str) -> str:
    if not text or "\\" in text or not text.isprintable():
        raise ValueError(f"{what} {text!r} cannot be an InfluxDB tag (empty, \\ or unprintable)")
    return escape_key(text)


def nanoseconds(ts: float) -> int:
    """Unix seconds as integer nanoseconds, without float64's rounding of ts * 1e9."""
    whole = math.floor(ts)
    return whole * 1_000_000_000 + round((ts - whole) * 1e9)


def encode_influx(
    stream: str,
    ts: float,
    model_id: str,
    targets: Sequence[str],
    interval_s: float,
    values: np.ndarray,
    step_times: Sequence[float] | None = None,
) -> bytes:
    """`encode.encode_rounded`'s arguments, as line protocol: H lines joined by newlines."""
    arr = np.asarray(values, np.float64)  # (H, C)
    if arr.ndim != 2 or arr.shape[1] != len(targets):
        raise ValueError(f"values: expected shape (horizon, {len(targets)}), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"values: forecast for {stream!r} contains non-finite numbers")
    start, step = float(ts), float(interval_s)
    if not (math.isfinite(start) and math.isfinite(step) and step > 0.0):
        raise ValueError(f"ts ({start!r}) must be finite and interval_s ({step!r}) > 0")
    if step_times is None:
        times = [start + k * step for k in range(1, len(arr) + 1)]
    else:
        times = [float(t) for t in step_times]
        if len(times) != len(arr) or not all(math.isfinite(t) for t in times):
            raise ValueError(f"step_times: expected {len(arr)} finite timestamps")
    keys = [escape_key(name) + "=" for name in targets]
    head = f"{MEASUREMENT},model={tag_value(model_id, 'model')},step="
    tail = f",stream={tag_value(stream, 'stream')} "
    lines = []
    for k, (row, when) in enumerate(zip(arr.tolist(), times, strict=True), 1):
        fields = ",".join(key + repr(v) for key, v in zip(keys, row, strict=True))
        lines.append(f"{head}{k}{tail}{fields} {nanoseconds(when)}")
    return "\n".join(lines).encode()
