"""Live forecast quality: each published forecast scored as the actual values arrive.

At a stream's grid step i (the aligned step's target values, in their units), horizon step h
scores the forecast made h steps earlier (origin i - h, its row h) and persistence from that
origin (the actual at step i - h): absolute errors, averaged over the scored targets. Both are
scored on the same (step, h) pairs only, so the comparison is fair from the first step on.

The rolling MAE covers the last `window` steps in blocks of S = max(1, window // 8) steps: the
current block and the NB - 1 = window // S - 1 before it, so between window - S + 1 and
window steps (exactly `window` below 8 steps). Blocks keep the memory at N·(NB + 1)·H·3 numbers
instead of N·window·H·2 (10,000 streams, horizon 24, window 288: 52 MB instead of 1.1 GB). The H
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
        # per block, then (at index `blocks`) the window's total, per horizon step: the sums of
        # the model's and persistence's absolute errors and how many (one array: fewer calls)
        self.acc = np.zeros((n, self.blocks + 1, h, 3))
        self._one = np.ones((h, 1))
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
        self.acc[slot] = 0.0
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
        if len(slots) == 1:  # one stream's run of steps: scalar work, a third of the numpy calls
            forecast = forecasts[0] if forecasts is not None and len(forecasts) else None
            self._observe_one(int(slots[0]), values[0], forecast, streams[0] if streams else "")
            return
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

    def _observe_one(
        self, slot: int, values: np.ndarray, forecast: np.ndarray | None, stream: str
    ) -> None:
        """`observe` for one slot (the same arithmetic, so the same sums)."""
        H, i = self.horizon, int(self.step[slot])
        actual = values[self.actual_columns]  # (T,)
        block = (i // self.block) % self.blocks
        if i % self.block == 0:  # a block's first step: it replaces the oldest block
            self.acc[slot, block] = 0.0
            self.acc[slot, self.blocks] = self.acc[slot, : self.blocks].sum(axis=0)
        origins = self.origin[slot].tolist()
        rows = [h - 1 for h in range(1, H + 1) if origins[(i - h) % H] == i - h]
        if rows:
            pos = [(i - 1 - r) % H for r in rows]
            model = np.abs(self.forecast[slot, pos, rows] - actual)  # (D, T)
            naive = np.abs(self.actual[slot, pos] - actual)
            if len(actual) > 1:
                model, naive = model.mean(axis=1, keepdims=True), naive.mean(axis=1, keepdims=True)
            err = np.concatenate((model, naive, self._one[: len(rows)]), axis=1)  # (D, 3)
            self.acc[slot, [[block], [self.blocks]], rows] += err  # the block and the total
            self._judge_one(slot, stream)
        at = i % H
        self.actual[slot, at] = actual
        self.step[slot] = i + 1
        if forecast is not None:
            self.forecast[slot, at] = forecast[:, self.forecast_columns]
            self.origin[slot, at] = i

    def _judge_one(self, slot: int, stream: str) -> None:
        seen = [(m / n, p / n) for m, p, n in self.acc[slot, self.blocks].tolist() if n]
        model = sum(m for m, _ in seen) / len(seen)
        naive = sum(p for _, p in seen) / len(seen)
        run = int(self.worse_run[slot]) + 1 if model > naive else 0
        self.worse_run[slot] = run
        now, was = run >= self.drift_after, bool(self.drifting[slot])
        if now == was:
            return
        self.drifting[slot] = now
        if not now:
            self.counters.add("quality_drift_cleared")
            return
        self.counters.add("quality_drift_flagged")
        self._warn(
            "drift",
            "stream %r drifting: its forecasts have been worse than persistence for %d scored "
            "steps (MAE %.4g vs %.4g)",
            stream,
            run,
            model,
            naive,
        )

    def _score(
        self, slots: np.ndarray, step: np.ndarray, actual: np.ndarray, streams: Sequence[str]
    ) -> None:
        block = (step // self.block) % self.blocks  # (B,)
        fresh = step % self.block == 0  # a block's first step: it replaces the oldest block
        if fresh.any():
            stale, at = slots[fresh], block[fresh]
            self.acc[stale, at] = 0.0
            self.acc[stale, self.blocks] = self.acc[stale, : self.blocks].sum(axis=1)
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
        ones = np.broadcast_to(self._one, (len(slots), self.horizon, 1))
        err = np.concatenate((err, ones), axis=2)  # (B, H, 3): errors and their count
        err[~due] = 0.0
        self.acc[slots, block] += err
        self.acc[slots, self.blocks] += err
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
        total = self.acc[slots, self.blocks]  # (B, H, 3)
        n = total[..., 2]
        seen = n > 0
        per_step = total[..., :2] / np.maximum(n, 1)[:, :, None]  # (B, H, 2); 0 unseen
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
            total = self.acc[slots, self.blocks]  # (B, H, 3)
            n = total[..., 2]
            with np.errstate(invalid="ignore", divide="ignore"):
                mae = total[..., :2] / n[:, :, None]  # (B, H, 2); NaN where not scored
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
