"""Live forecast quality: each published forecast scored as the actual values arrive.

At a stream's grid step i (the aligned step's target values, in their units), horizon step h
scores the forecast made h steps earlier (origin i - h, its row h) and persistence from that
origin (the actual at step i - h): absolute errors, averaged over the scored targets. Both are
scored on the same (step, h) pairs only, so the comparison is fair from the first step on.

The rolling MAE covers the last `window` steps in blocks of S = max(1, window // 8) steps: the
current block and the NB - 1 = window // S - 1 before it, so between window - S + 1 and
window steps (exactly `window` below 8 steps). Blocks keep the memory at N·NB·H numbers instead
of N·window·H (10,000 streams, horizon 24, window 288: 38 MB instead of 1.1 GB). The H
forecasts still due take N·H·H·T more (46 MB more at horizon 24, 1.3 MB at horizon 4); pages of
slots never used are never touched, so they take no memory.

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
        self.sums = np.zeros((n, self.blocks, h, 2))  # absolute errors per block: model, naive
        self.counts = np.zeros((n, self.blocks, h), np.int32)  # errors in each block's sums
        self.totals = np.zeros((n, h, 2))  # the sums over the window's blocks
        self.total_n = np.zeros((n, h), np.int32)
        self.worse_run = np.zeros(n, np.int64)  # consecutive scored steps worse than persistence
        self.drifting = np.zeros(n, bool)
        self._h = np.arange(1, h + 1)  # (H,)
        self._rows = self._h - 1

    @property
    def enabled(self) -> bool:
        return len(self.actual_columns) > 0

    def reset(self, slot: int) -> None:
        self.step[slot] = 0
        self.origin[slot] = -1
        self.sums[slot] = 0.0
        self.counts[slot] = 0
        self.totals[slot] = 0.0
        self.total_n[slot] = 0
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
        step = self.step[slots]  # (B,) this step's index
        actual = values[:, self.actual_columns]  # (B, T)
        self._score(slots, step, actual, streams)
        at = step % self.horizon
        self.actual[slots, at] = actual
        self.step[slots] = step + 1
        if forecasts is not None and len(forecasts):
            fslots, fat = slots[made], at[made]
            self.forecast[fslots, fat] = forecasts[:, :, self.forecast_columns]
            self.origin[fslots, fat] = step[made]

    def _score(
        self, slots: np.ndarray, step: np.ndarray, actual: np.ndarray, streams: Sequence[str]
    ) -> None:
        block = (step // self.block) % self.blocks  # (B,)
        fresh = step % self.block == 0  # a block's first step: it replaces the oldest block
        if fresh.any():
            stale, at = slots[fresh], block[fresh]
            self.sums[stale, at] = 0.0
            self.counts[stale, at] = 0
            self.totals[stale] = self.sums[stale].sum(axis=1)
            self.total_n[stale] = self.counts[stale].sum(axis=1)
        origin = step[:, None] - self._h  # (B, H): where each horizon step's forecast was made
        rows, pos = slots[:, None], origin % self.horizon
        due = self.origin[rows, pos] == origin  # (B, H): a forecast was made there
        if not due.any():
            return
        now = actual[:, None, :]
        model = np.abs(self.forecast[rows, pos, self._rows] - now)  # (B, H, T)
        naive = np.abs(self.actual[rows, pos] - now)
        err = np.stack([model, naive], axis=2)  # (B, H, 2, T)
        err = err.mean(axis=3) if actual.shape[1] > 1 else err[..., 0]  # (B, H, 2)
        err[~due] = 0.0
        self.sums[slots, block] += err
        self.counts[slots, block] += due
        self.totals[slots] += err
        self.total_n[slots] += due
        self._judge(slots, due.any(axis=1), streams)

    def _judge(self, slots: np.ndarray, scored: np.ndarray, streams: Sequence[str]) -> None:
        """Drift bookkeeping: slots where `scored` just scored at least one horizon step."""
        model, naive = self._mae(slots)
        run = self.worse_run[slots]
        run = np.where(scored, np.where(model > naive, run + 1, 0), run)
        self.worse_run[slots] = run
        now = run >= self.drift_after
        was = self.drifting[slots]
        if (now == was).all():
            return
        self.drifting[slots] = now
        flagged, cleared = now & ~was, was & ~now
        if cleared.any():
            self.counters.add("quality_drift_cleared", int(cleared.sum()))
        if flagged.any():
            self.counters.add("quality_drift_flagged", int(flagged.sum()))
            first = int(np.flatnonzero(flagged)[0])
            name = streams[first] if streams else f"slot {int(slots[first])}"
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
        n = self.total_n[slots]  # (B, H)
        seen = n > 0
        per_step = self.totals[slots] / np.maximum(n, 1)[:, :, None]  # (B, H, 2); 0 unseen
        mean = per_step.sum(axis=1) / np.maximum(seen.sum(axis=1), 1)[:, None]  # (B, 2)
        return mean[:, 0], mean[:, 1]

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

    def snapshot(self, streams: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """Per stream (name, slot) that scored something: MAE per horizon step (None where
        nothing was scored yet), persistence's, steps scored in the window, drifting."""
        per: dict[str, dict[str, Any]] = {}
        if self.enabled and streams:
            slots = np.fromiter((s for _, s in streams), np.int64, len(streams))
            n = self.total_n[slots]  # (B, H)
            with np.errstate(invalid="ignore", divide="ignore"):
                mae = self.totals[slots] / n[:, :, None]  # (B, H, 2); NaN where not scored
            for b, (name, slot) in enumerate(streams):
                if n[b].max() == 0:
                    continue
                per[name] = {
                    "mae": [_number(v) for v in mae[b, :, 0]],
                    "persistence_mae": [_number(v) for v in mae[b, :, 1]],
                    "n": int(n[b].max()),
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
