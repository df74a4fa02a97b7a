"""Live forecast quality: each published forecast scored as the actual values arrive.

At a stream's grid step i (the aligned step's target values, in their units), horizon step h
scores the forecast made h steps earlier (origin i - h, its row h) and persistence from that
origin (the actual at step i - h): absolute errors, averaged over the scored targets. Both are
scored on the same (step, h) pairs only, so the comparison is fair from the first step on.
Once a stream forecasts it does so at every step until it restarts (a restart resets its
scores), so the pairs scored at step i are those with i - h >= its first forecast's step.

The rolling MAE covers the last `window` steps in blocks of S = max(1, window // 8) steps: the
current block and the NB - 1 = window // S - 1 before it, so between window - S + 1 and
window steps (exactly `window` below 8 steps). Blocks keep the memory at N·NB·H·2 numbers
instead of N·window·H·2 (10,000 streams, horizon 24, window 288: 31 MB instead of 1.1 GB); how
many pairs each sum holds follows from the step, the first forecast's step and the blocks. The H
forecasts still due take N·H·(H+1)·T more (48 MB more at horizon 24, 1.6 MB at horizon 4);
pages of slots never used are never touched, so they take no memory.

A stream drifts when its model's MAE over the window (all scored pairs pooled) has been above
persistence's at `drift_after` consecutive scored steps; it recovers at the first step where it
is not. Flagging counts `quality_drift_flagged` and logs (rate limited); recovering counts
`quality_drift_cleared`. Everything is per slot in preallocated arrays, reset with the stream
(`StreamTable.on_reset`); the engine calls `observe` once per invoke (a wave of distinct slots).

This runs for every sample, so the batch path is laid out for few numpy calls, each a `take`
or a row copy on flat arrays with precomputed offsets (multi-array fancy indexing costs about
ten times more per element), and drift is judged from one running sum per stream. Before a
stream's first scored pair its block sums are all zero, so skipping the block roll then is safe.

# N: capacity  H: horizon  T: scored targets  NB: blocks  B: slots in a call
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seqcast.edge.counters import Counters
from seqcast.edge.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

BLOCKS = 8  # a window is kept as about this many block sums
NEVER = np.iinfo(np.int64).max // 2  # `first` of a stream that has not forecast yet


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
        self.first = np.full(n, NEVER, np.int64)  # the step of its first forecast
        # row slot·H + o % H: the forecast made at step o (H·T: steps o+1..o+H, then each
        # target) and the actual at step o (T, persistence's origin)
        self.past = np.zeros((n * h, (h + 1) * t))
        # row slot·NB + block, per horizon step: the sums of the model's and persistence's
        # absolute errors (a (B, H, 2) error array, flattened, adds in)
        self.acc = np.zeros((n * self.blocks, h * 2))
        self._gap_weights = np.tile([1.0, -1.0], h)  # (2H,): a row of `acc` -> model - naive
        # the columns as a slice when they are consecutive (a view instead of a copy)
        self._actual_at = _as_slice(self.actual_columns)
        self._forecast_at = _as_slice(self.forecast_columns)
        self.gap = np.zeros(n)  # the window's model errors minus persistence's, all pairs
        self.worse_run = np.zeros(n, np.int64)  # consecutive scored steps worse than persistence
        self.drifting = np.zeros(n, bool)
        self._h = np.arange(1, h + 1)  # (H,)
        # offsets into a slot's rows of `past` for step i, by i % H: horizon step h's forecast
        # (origin i - h, its row h) and that origin's actual, each target: (H, H, 2, T)
        lag = (np.arange(h)[:, None] - self._h) % h  # (H, H): i % H, h -> (i - h) % H
        col = np.stack([(self._h - 1) * t, np.full(h, h * t)], axis=1)  # (H, 2)
        row = lag[:, :, None, None] * ((h + 1) * t)
        self._offsets = row + col[None, :, :, None] + np.arange(t)  # (H, H, 2, T)

    @property
    def enabled(self) -> bool:
        return len(self.actual_columns) > 0

    def reset(self, slot: int) -> None:
        self.step[slot] = 0
        self.first[slot] = NEVER
        self.acc[slot * self.blocks : (slot + 1) * self.blocks] = 0.0
        self.gap[slot] = 0.0
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
        H, T = self.horizon, len(self.actual_columns)
        step = self.step[slots]  # (B,) this step's index
        actual = values[:, self._actual_at]  # (B, T)
        since = step - self.first[slots]  # (B,) forecasts made since the first: pairs due
        least = int(since.min())
        self._score(slots, step, since, least, actual, streams)
        rows = slots * H + step % H  # (B,) this step's row of `past`
        self.past[rows, H * T :] = actual
        self.step[slots] = step + 1
        if forecasts is not None and len(forecasts):
            fc = forecasts[:, :, self._forecast_at].reshape(len(forecasts), H * T)
            self.past[rows if len(forecasts) == len(rows) else rows[made], : H * T] = fc
            if least < 0:  # some forecast for the first time
                self.first[slots] = np.where(made & (since < 0), step, self.first[slots])

    def _score(
        self,
        slots: np.ndarray,
        step: np.ndarray,
        since: np.ndarray,
        least: int,
        actual: np.ndarray,
        streams: Sequence[str],
    ) -> None:
        """Score step `step` (B,) of `slots`; `since`: steps since their first forecast, at
        least `least` (pairs due: h <= since)."""
        H, T, NB = self.horizon, len(self.actual_columns), self.blocks
        every = least >= H  # the usual case: every pair is due for every slot
        scored = None if every else since > 0  # (B,) at least one pair is due
        if scored is not None and not scored.any():
            return
        block = slots * NB + (step // self.block) % NB  # (B,) this step's row of `acc`
        fresh = step % self.block == 0  # a block's first step: it replaces the oldest block
        if fresh.any():
            self._roll(slots[fresh], block[fresh])
        base = (slots * (H * (H + 1) * T))[:, None, None, None]
        past = self.past.reshape(-1).take(base + self._offsets[step % H])  # (B, H, 2, T)
        err = np.abs(past - actual[:, None, None, :])  # (B, H, 2, T): model, persistence
        err = err.mean(axis=3) if T > 1 else err.reshape(len(slots), H, 2)  # (B, H, 2)
        if not every:
            err *= (since[:, None] >= self._h)[:, :, None]  # pairs not due add nothing
        flat = err.reshape(len(slots), H * 2)
        self.acc[block] += flat
        gap = self.gap[slots] + flat @ self._gap_weights  # (B,)
        self.gap[slots] = gap
        self._judge(slots, gap > 0.0, scored, streams)

    def _roll(self, slots: np.ndarray, blocks: np.ndarray) -> None:
        """`slots` start the block in row `blocks` of `acc`: it replaces the oldest, and the
        window's gap is summed again from the blocks kept (no rounding carried along)."""
        self.acc[blocks] = 0.0
        NB, H = self.blocks, self.horizon
        kept = self.acc.reshape(-1, NB, H * 2)[slots]  # (F, NB, 2H)
        self.gap[slots] = kept.sum(axis=1) @ self._gap_weights

    def _judge(
        self,
        slots: np.ndarray,
        worse: np.ndarray,
        scored: np.ndarray | None,
        streams: Sequence[str],
    ) -> None:
        """Drift bookkeeping: `worse` (B,) where the window's model MAE is above persistence's,
        counted for the slots that `scored` (None: all) at least one pair now."""
        run = self.worse_run[slots]
        grown = (run + 1) * worse
        run = grown if scored is None else np.where(scored, grown, run)
        self.worse_run[slots] = run
        now = run >= self.drift_after
        was = self.drifting[slots]
        change = now != was
        if not change.any():
            return
        self.drifting[slots] = now
        flagged = now & change
        cleared = int(change.sum()) - int(flagged.sum())
        if cleared:
            self.counters.add("quality_drift_cleared", cleared)
        if flagged.any():
            first = int(np.flatnonzero(flagged)[0])
            name = streams[first] if streams else f"slot {int(slots[first])}"
            self._flagged(int(flagged.sum()), name, int(run[first]), int(slots[first]))

    def _flagged(self, count: int, stream: str, run: int, slot: int) -> None:
        self.counters.add("quality_drift_flagged", count)
        total = self._window(np.array([slot]))[0]  # (H, 3)
        n = max(total[:, 2].sum(), 1.0)
        self._warn(
            "drift",
            "stream %r drifting: its forecasts have been worse than persistence for %d scored "
            "steps (MAE %.4g vs %.4g)",
            stream,
            run,
            total[:, 0].sum() / n,
            total[:, 1].sum() / n,
        )

    def _window(self, slots: np.ndarray) -> np.ndarray:
        """The window's sums (B, H, 3) for `slots` (B,): model, persistence, count."""
        out = np.empty((len(slots), self.horizon, 3))
        out[..., :2] = self.acc.reshape(-1, self.blocks, self.horizon, 2)[slots].sum(axis=1)
        out[..., 2] = self._pairs(slots)
        return out

    def _pairs(self, slots: np.ndarray) -> np.ndarray:
        """Pairs scored in the window per horizon step (B, H): the steps j of the blocks kept
        (from `oldest` to the last step) where j - h >= the first forecast's step."""
        last = self.step[slots] - 1  # (B,)
        oldest = np.maximum(last // self.block - self.blocks + 1, 0) * self.block
        since = np.maximum(oldest[:, None], self.first[slots][:, None] + self._h)  # (B, H)
        pairs: np.ndarray = np.maximum(last[:, None] - since + 1, 0)
        return pairs

    def _observe_one(
        self, slot: int, values: np.ndarray, forecast: np.ndarray | None, stream: str
    ) -> None:
        """`observe` for one slot (the same arithmetic, so the same sums)."""
        H, T, i = self.horizon, len(self.actual_columns), int(self.step[slot])
        actual = values[self._actual_at]  # (T,)
        since = i - int(self.first[slot])
        if since > 0:
            block = slot * self.blocks + (i // self.block) % self.blocks
            if i % self.block == 0:
                self._roll(np.array([slot]), np.array([block]))
            due = min(since, H)
            offsets = self._offsets[i % H, :due]  # (D, 2, T)
            err = np.abs(self.past[slot * H : (slot + 1) * H].reshape(-1)[offsets] - actual)
            flat = (err.mean(axis=2) if T > 1 else err).reshape(-1)  # (2D,)
            self.acc[block, : 2 * due] += flat
            gap = float(self.gap[slot]) + float(flat @ self._gap_weights[: 2 * due])
            self.gap[slot] = gap
            self._judge_one(slot, gap > 0.0, stream)
        row = slot * H + i % H
        self.past[row, H * T :] = actual
        self.step[slot] = i + 1
        if forecast is not None:
            self.past[row, : H * T] = forecast[:, self._forecast_at].reshape(-1)
            if since < 0:
                self.first[slot] = i

    def _judge_one(self, slot: int, worse: bool, stream: str) -> None:
        run = int(self.worse_run[slot]) + 1 if worse else 0
        self.worse_run[slot] = run
        now, was = run >= self.drift_after, bool(self.drifting[slot])
        if now == was:
            return
        self.drifting[slot] = now
        if now:
            self._flagged(1, stream, run, slot)
        else:
            self.counters.add("quality_drift_cleared")

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

    def counts(self, slots: np.ndarray) -> dict[str, int]:
        """Of `slots` (B,): the streams with a scored pair in the window, and those drifting
        (the status message's figures, without building the snapshot)."""
        if not self.enabled or not len(slots):
            return {"streams_scored": 0, "streams_drifting": 0}
        return {
            "streams_scored": int((self._pairs(slots)[:, 0] > 0).sum()),  # h = 1: the most
            "streams_drifting": int(self.drifting[slots].sum()),
        }

    def snapshot(self, streams: Sequence[tuple[str, int]]) -> dict[str, Any]:
        """Per stream (name, slot) that scored something: MAE per horizon step (None where
        nothing was scored yet), persistence's, steps scored in the window, drifting."""
        per: dict[str, dict[str, Any]] = {}
        model_mean = naive_mean = None
        if self.enabled and streams:
            slots = np.fromiter((s for _, s in streams), np.int64, len(streams))
            total = self._window(slots)  # (B, H, 3)
            n = total[..., 2]
            most = n.max(axis=1)  # (B,) pairs of horizon step 1, the most
            with np.errstate(invalid="ignore", divide="ignore"):
                mae = total[..., :2] / n[:, :, None]  # (B, H, 2); NaN where not scored
                seen = most > 0
                if seen.any():  # each stream's mean over its scored steps, then over streams
                    means = np.nanmean(mae[seen], axis=1).mean(axis=0)  # (2,)
                    model_mean, naive_mean = _number(means[0]), _number(means[1])
            drifting = self.drifting[slots].tolist()
            for b, (name, _) in enumerate(streams):
                if not most[b]:
                    continue
                model, naive = mae[b].T.tolist()
                per[name] = {
                    "mae": [v if math.isfinite(v) else None for v in model],
                    "persistence_mae": [v if math.isfinite(v) else None for v in naive],
                    "n": int(most[b]),
                    "drifting": drifting[b],
                }
        summary = {
            "streams_scored": len(per),
            "streams_drifting": sum(s["drifting"] for s in per.values()),
            "mae": model_mean,
            "persistence_mae": naive_mean,
            "window": self.window,
            "drift_after": self.drift_after,
            "targets": list(self.targets),
        }
        return {"streams": per, "summary": summary}


def _as_slice(columns: np.ndarray) -> slice | np.ndarray:
    """`columns` as a slice when they are consecutive, else themselves."""
    if len(columns) and (np.diff(columns) == 1).all():
        return slice(int(columns[0]), int(columns[-1]) + 1)
    return columns


def _number(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)
