"""Which inputs a SIGKILLed broker took with it, as far as the daemon is concerned.

A broker SIGKILLed between two saves of its database forgets what it accepted since the last one:
the inputs it had acknowledged to the publisher, and the forecasts it had acknowledged to the
daemon. Its lost forecasts alone do not tell which inputs the daemon never saw:
- inputs delivered to the daemon before the kill were processed; only their forecasts are gone
  (a start of the run of lost forecasts: the daemon did see it);
- the first samples after a hole longer than `max_gap` restart the stream's warm-up and make no
  forecast at all, lost input or not (an end of the run: the daemon did see it).
So for each stream's run of lost forecasts the daemon's next forecast decides, by position (where
its warm-up began) and by value (float32 equality with the reference of each possible start, as
every forecast is judged). The inputs between are the broker's loss; the daemon is then judged
against the uninterrupted reference without them (`bench.faults_report.analyse`, "daemon's").
When nothing fits, every input of the run counts as lost: the daemon is judged on that.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import faults_report as F

Key = tuple[str, float]  # (stream, ts)


def lost_inputs(
    bundle: Path,
    data: dict[str, list[F.Sample]],
    gone: list[Key],
    seen: dict[Key, dict[str, Any]],
    max_gap_s: float,
) -> list[Key]:
    """The inputs the daemon never saw, among those of `gone` (lost forecasts whose inputs the
    broker accepted shortly before a SIGKILL); `seen`: the received forecasts by key."""
    by_stream: dict[str, list[float]] = {}
    for stream, ts in sorted(gone):
        by_stream.setdefault(stream, []).append(ts)
    out: list[Key] = []
    for stream, stamps in by_stream.items():
        after = sorted(ts for s, ts in seen if s == stream)
        for first, last in F.spans(stamps):
            a, b = F.TS0 + first * F.STEP, F.TS0 + last * F.STEP
            lo, hi = _hole(bundle, data[stream], stream, a, b, after, seen, max_gap_s)
            out += [(stream, ts) for ts in stamps if lo <= ts <= hi]
    return out


def _hole(
    bundle: Path,
    samples: list[F.Sample],
    stream: str,
    a: float,
    b: float,
    after: list[float],
    seen: dict[Key, dict[str, Any]],
    max_gap_s: float,
) -> tuple[float, float]:
    nxt = next((ts for ts in after if ts > b), None)
    if nxt is None:
        return a, b
    doc = seen[(stream, nxt)]

    def matches(lo: float, hi: float) -> bool:
        kept = [x for x in samples if x[0] <= nxt and not lo <= x[0] <= hi]
        return F.right(F.reference(bundle, {stream: kept}, max_gap_s), stream, nxt, dict(doc))

    warm = F.reference(bundle, {}).min_history - 1
    return hole(a, b, nxt, warm, max_gap_s, matches)


def hole(
    a: float,
    b: float,
    nxt: float,
    warm: int,
    max_gap_s: float,
    matches: Callable[[float, float], bool],
    step: float = F.STEP,
) -> tuple[float, float]:
    """The part [lo, hi] of a run [a, b] of lost forecasts whose inputs the daemon never saw
    (lo > hi: none). `nxt`: the stream's next received forecast; `warm`: steps from a warm-up's
    first sample to its first forecast; `matches(lo, hi)`: whether the reference without the
    inputs [lo, hi] gives that forecast."""
    began = nxt - warm * step  # where the daemon's warm-up began, if the hole restarted it
    if a < began <= b and began - (a - step) > max_gap_s:
        b = began - step
    short = (round(max_gap_s / step) + 1) * step  # a shorter hole does not restart the stream
    starts = [a, b + step, *(a + k * step for k in range(1, 1 + round((b - a) / step)))]
    for lo in (s for s in starts if s == a or b - s < short):
        if matches(lo, b):
            return lo, b
    return a, b
