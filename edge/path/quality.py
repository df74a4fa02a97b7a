"""Live forecast quality: each published forecast scored as the actual values arrive.

At a stream's grid step i (the aligned step's target values, in their units), horizon step h
scores the forecast made h steps earlier (origin i - h, its row h) and persistence from that
origin (the actual at step i - h): absolute errors, averaged over the scored targets. Both are
scored on the same (step, h) pairs only, so the comparison is fair from the first step on.

The rolling MAE covers the last `window` steps in blocks of S = max(1, window // 8) steps: the
current block and the NB - 1 = window // S - 1 before it, so between window - S + 1 and
window steps (exactly `window` below 8 steps). Blocks keep the memory at N·NB·H numbers instead
of N·window·H (10,000 streams, horizon 24: 30 MB instead of 1.1 GB at window 288).

A stream drifts when its model MAE (mean over the horizon steps scored) has been above
persistence's at `drift_after` consecutive scored steps; it recovers at the first step where it
is not. Flagging counts `quality_drift_flagged` and logs (rate limited); recovering counts
`quality_drift_cleared`. Everything is per slot in preallocated arrays, reset with the stream
(`StreamTable.on_reset`); the engine calls `observe` once per invoke (a wave of distinct slots).

# N: capacity  H: horizon  T: scored targets  NB: blocks  B: slots in a call
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqcast.edge.counters import Counters
from seqcast.edge.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

BLOCKS = 8  # a window is kept as about this many block sums


def block_size(window: int) -> int:
    """Steps per block for `window` (the number of blocks is window // block_size)."""
    return max(1, window // BLOCKS)


class Quality:
    def __init__(
        self,
        capacity: int,
        horizon: int,
        actual_columns: Sequence[int],
        forecast_columns: Sequence[int],
        window: int,
        drift_after: int,
        counters: Counters,
        targets: Sequence[str] = (),
    ) -> None:
        """`actual_columns`: each scored target's index in the input values (its feature);
        `forecast_columns`: its point forecast's column in the output (same order)."""
        n, h, t = capacity, horizon, len(actual_columns)
        self.horizon, self.window, self.drift_after = h, window, drift_after
        self.targets = tuple(targets)
        self.actual_columns = np.asarray(actual_columns, np.int64)
        self.forecast_columns = np.asarray(forecast_columns, np.int64)
        self.block = block_size(window)
        self.blocks = max(1, window // self.block)
        self.counters = counters
        self._warn = RateLimitedLog(log)
        self.step = np.zeros(n, np.int64)  # actual steps since the stream (re)started
        self.actual = np.zeros((n, h, t))  # actual of step i at i % H (persistence's origin)
        self.forecast = np.zeros((n, h, h, t))  # forecast of origin o at o % H: rows for o+1..o+H
        self.origin = np.full((n, h), -1, np.int64)  # which origin each forecast row holds
        self.model_sum = np.zeros((n, self.blocks, h))  # absolute errors per block and step
        self.naive_sum = np.zeros((n, self.blocks, h))
        self.scored = np.zeros((n, self.blocks, h), np.int64)  # errors in each sum
        self.worse_run = np.zeros(n, np.int64)  # consecutive scored steps worse than persistence
        self.drifting = np.zeros(n, bool)
        self._h = np.arange(1, h + 1)  # (H,)

    @property
    def enabled(self) -> bool:
        return len(self.actual_columns) > 0

    def reset(self, slot: int) -> None:
        self.step[slot] = 0
        self.origin[slot] = -1
        self.model_sum[slot] = 0.0
        self.naive_sum[slot] = 0.0
        self.scored[slot] = 0
        self.worse_run[slot] = 0
        self.drifting[slot] = False

    def observe(
        self,
        slots: np.ndarray,
        values: np.ndarray,
        made: np.ndarray,
        forecasts: np.ndarray | None,
        streams: Sequence[str] = (),
    ) -> None:
        """Distinct `slots` (B,) each took one step with input `values` (B, F) in original
        units; `forecasts` (b, H, C), as published, were made at that step where `made` (B,)."""
        if not len(slots):
            return
        self._score(slots, values[:, self.actual_columns], streams)
        if forecasts is not None and len(forecasts):
            fslots = slots[made]
            origin = self.step[fslots] - 1
            pos = origin % self.horizon
            self.forecast[fslots, pos] = forecasts[:, :, self.forecast_columns]
            self.origin[fslots, pos] = origin

    def observe_flat(
        self,
        flat: Sequence[tuple[int, str, float, int, bool]],
        made: dict[int, np.ndarray],
        values: np.ndarray,
        skip: set[int],
    ) -> None:
        """Window mode: the engine's planned samples (slot, stream, ts, row in `values`,
        restarted) in order, the forecast (H, C) each index in `made` gave, indices in `skip`
        not taken; observed in runs of distinct slots, so a stream's steps stay in order."""
        run: list[int] = []
        seen: set[int] = set()
        for i in [*(i for i in range(len(flat)) if i not in skip), -1]:
            if i >= 0 and flat[i][0] not in seen:
                run.append(i)
                seen.add(flat[i][0])
                continue
            if run:
                slots = np.fromiter((flat[j][0] for j in run), np.int64, len(run))
                mask = np.fromiter((j in made for j in run), bool, len(run))
                got = [made[j] for j in run if j in made]
                rows = [flat[j][3] for j in run]
                names = [flat[j][1] for j in run]
                self.observe(slots, values[rows], mask, np.stack(got) if got else None, names)
            run, seen = ([i], {flat[i][0]}) if i >= 0 else ([], set())

    def _score(self, slots: np.ndarray, actual: np.ndarray, streams: Sequence[str]) -> None:
        step = self.step[slots]  # (B,) this step's index
        origin = step[:, None] - self._h  # (B, H)
        pos = origin % self.horizon
        rows = slots[:, None]
        ok = self.origin[rows, pos] == origin  # (B, H): a forecast was made there
        scoring = ok.any(axis=1)
        block = (step // self.block) % self.blocks  # (B,)
        fresh = step % self.block == 0  # the first step of a block: it drops the oldest block
        if fresh.any():
            stale, at = slots[fresh], block[fresh]
            self.model_sum[stale, at] = 0.0
            self.naive_sum[stale, at] = 0.0
            self.scored[stale, at] = 0
        if scoring.any():
            predicted = self.forecast[rows, pos, self._h - 1]  # (B, H, T)
            before = self.actual[rows, pos]  # (B, H, T): the actual at each origin
            now = actual[:, None, :]
            model_err = np.where(ok, np.abs(predicted - now).mean(axis=2), 0.0)
            naive_err = np.where(ok, np.abs(before - now).mean(axis=2), 0.0)
            self.model_sum[slots, block] += model_err
            self.naive_sum[slots, block] += naive_err
            self.scored[slots, block] += ok
            self._judge(slots[scoring], streams, np.flatnonzero(scoring))
        self.actual[slots, step % self.horizon] = actual
        self.step[slots] = step + 1

    def _judge(self, slots: np.ndarray, streams: Sequence[str], index: np.ndarray) -> None:
        """Drift bookkeeping for slots that scored at least one horizon step just now."""
        model, naive = self._mae(slots)
        worse = model > naive
        run = np.where(worse, self.worse_run[slots] + 1, 0)
        self.worse_run[slots] = run
        now = run >= self.drift_after
        was = self.drifting[slots]
        self.drifting[slots] = now
        flagged, cleared = now & ~was, was & ~now
        if cleared.any():
            self.counters.add("quality_drift_cleared", int(cleared.sum()))
        if flagged.any():
            self.counters.add("quality_drift_flagged", int(flagged.sum()))
            first = int(np.flatnonzero(flagged)[0])
            name = streams[int(index[first])] if streams else f"slot {int(slots[first])}"
            self._warn(
                "drift",
                "stream %r drifting: its forecasts have been worse than persistence for %d "
                "scored steps (MAE %.4g vs %.4g)",
                name,
                int(run[first]),
                model[first],
                naive[first],
            )

    def _mae(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model and persistence MAE per slot (B,), each the mean over the steps scored."""
        n = self.scored[slots].sum(axis=1)  # (B, H)
        seen = n > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            model = np.where(seen, self.model_sum[slots].sum(axis=1) / n, 0.0)
            naive = np.where(seen, self.naive_sum[slots].sum(axis=1) / n, 0.0)
        steps = np.maximum(seen.sum(axis=1), 1)
        return model.sum(axis=1) / steps, naive.sum(axis=1) / steps

    def snapshot(self, streams: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """Per stream (name, slot) that scored something: MAE per horizon step (None where
        nothing was scored yet), persistence's, steps scored in the window, drifting."""
        per: dict[str, dict[str, Any]] = {}
        if self.enabled and streams:
            slots = np.fromiter((s for _, s in streams), np.int64, len(streams))
            n = self.scored[slots].sum(axis=1)  # (B, H)
            with np.errstate(invalid="ignore", divide="ignore"):
                model = self.model_sum[slots].sum(axis=1) / n
                naive = self.naive_sum[slots].sum(axis=1) / n
            for b, (name, slot) in enumerate(streams):
                if n[b, 0] == 0:
                    continue
                per[name] = {
                    "mae": [_number(v) for v in model[b]],
                    "persistence_mae": [_number(v) for v in naive[b]],
                    "n": int(n[b, 0]),
                    "drifting": bool(self.drifting[slot]),
                }
        models = [np.nanmean(np.asarray(s["mae"], float)) for s in per.values()]
        naives = [np.nanmean(np.asarray(s["persistence_mae"], float)) for s in per.values()]
        summary = {
            "streams_scored": len(per),
            "streams_drifting": sum(s["drifting"] for s in per.values()),
            "mae": _number(float(np.mean(models))) if models else None,
            "persistence_mae": _number(float(np.mean(naives))) if naives else None,
            "window": self.window,
            "drift_after": self.drift_after,
            "targets": list(self.targets),
        }
        return {"streams": per, "summary": summary}


def _number(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)
