"""Batched inference over the stream table, in stream mode or window mode.

`Engine.process` takes every sample that arrived while the previous batch ran. Planning walks
them in arrival order (slot lookup, order and gap policy); execution then runs one invoke per
*wave*: wave k holds each stream's k-th sample of the batch, so a stream's samples are stepped in
order while different streams share an invoke (MAX_INVOKE rows at most; a larger wave takes
several). Rows never interact inside the interpreter, so results equal one-at-a-time processing
exactly.

Poison never silences a stream:
- Input sanity: a sample with a value further than `max_deviation` training standard deviations
  from the training mean (the bundle's scaler), or one the model's float32 input cannot hold, is
  rejected before it touches the stream (no slot, no timestamp, no state): counted once per
  rejected sample as `bad_out_of_range` and `bad_payloads`; the message's other samples go on.
- A row whose new state or output is not finite resets its stream (counted as
  `streams_resets_nonfinite`, no forecast for that row); the stream warms up again from its next
  sample, exactly as if it were processed one sample at a time.

# B: batch (streams in a wave)  L: seq_len  F: features  U: state size  H: horizon
# C: output columns (each target's point forecast, then its quantiles: edge/quantiles.py)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import le
from time import perf_counter
from typing import Protocol

import numpy as np

from seqcast.edge import calendar
from seqcast.edge.counters import Counters
from seqcast.edge.path.encode import float32_decimals
from seqcast.edge.path.finite import finite_rows, maybe_nonfinite
from seqcast.edge.path.quality import Quality
from seqcast.edge.path.streams import StreamTable, Verdict
from seqcast.edge.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

# Rows per interpreter invoke. The backend keeps one interpreter per power-of-two batch it has
# seen, each with tensors sized for it, so capping invokes caps that memory (LSTM-64 step model:
# 2.2 MB for all buckets up to 128, 8.8 MB up to 1,024; window model at seq_len 48: 7 to 11 MB per
# bucket, 50 MB for 1,024). Cost per row is flat from here on (step: 0.33 µs at 128, 0.31 at
# 1,024; a window is slower at 1,024 than at 128).
MAX_INVOKE = 128

# A planned window-mode sample: (slot, stream, ts, row in the scaled input, restart first)
_Flat = tuple[int, str, float, int, bool]


class Model(Protocol):
    def window(self, x: np.ndarray) -> np.ndarray: ...
    def step(
        self, x: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]: ...


@dataclass(frozen=True, slots=True)
class Forecast:
    stream: str
    ts: float  # ts of the last input
    values: np.ndarray  # (H, C), original units


@dataclass(frozen=True, slots=True)
class Scaling:
    feature_mean: np.ndarray  # (F,)
    feature_std: np.ndarray  # (F,)
    target_mean: np.ndarray  # (C,): each output column's target's
    target_std: np.ndarray  # (C,)


class _Wave:
    """One invoke's worth of planned samples, as parallel lists (at most one per slot)."""

    __slots__ = ("slots", "streams", "ts", "rows", "resets")

    def __init__(self) -> None:
        self.slots: list[int] = []
        self.streams: list[str] = []
        self.ts: list[float] = []
        self.rows: list[int] = []  # row in the batch's scaled input matrix
        self.resets: list[int] = []  # slots to restart before this wave's sample

    def __len__(self) -> int:
        return len(self.slots)


class Engine:
    def __init__(
        self,
        model: Model,
        table: StreamTable,
        scaling: Scaling,
        mode: str,
        min_history: int,
        mask_value: float | None = None,
        counters: Counters | None = None,
        max_deviation: float = 0.0,
        features: Sequence[str] = (),
        calendar: Sequence[str] = (),
        quality: Quality | None = None,
    ):
        """`max_deviation`: reject samples with a value further than this many training standard
        deviations from the training mean (0: no limit; the pipeline passes `[input]
        max_deviation`). `features`: their names, for the log. `calendar`: the bundle's calendar
        features, appended to every scaled row from its timestamp (edge/calendar.py). `quality`:
        scores the forecasts as their actuals arrive (path/quality.py), told every step taken."""
        if mode not in ("stream", "window"):
            raise ValueError(f"mode must be stream or window, got {mode!r}")
        self.model, self.table, self.scaling, self.mode = model, table, scaling, mode
        self.min_history = min_history
        self.mask_value = mask_value
        self.counters = counters if counters is not None else Counters()
        self.max_deviation = max_deviation
        self.features = tuple(features)
        self.calendar = tuple(calendar)
        self.quality = quality if quality is not None and quality.enabled else None
        # accepted: mean - k std <= x <= mean + k std, in original units (None: no limit)
        self._low: np.ndarray | None = None
        self._high: np.ndarray | None = None
        self._bounds: tuple[list[float], list[float]] = ([], [])  # the same, as Python floats
        if max_deviation > 0:
            self._low = scaling.feature_mean - max_deviation * scaling.feature_std
            self._high = scaling.feature_mean + max_deviation * scaling.feature_std
            self._bounds = (self._low.tolist(), self._high.tolist())
        self._warn = RateLimitedLog(log)
        # one observation each per invoke (metrics read them at scrape time)
        self._invoke_seconds = self.counters.histogram("inference_seconds")
        self._invoke_rows = self.counters.histogram("invoke_rows")

    @property
    def invokes(self) -> int:
        return self.counters["invokes"]

    def _in_range(self, items: list[tuple[str, float, tuple[float, ...]]], x: np.ndarray) -> bool:
        lo, hi = self._low, self._high
        if lo is None or hi is None:
            return False
        if len(items) <= 8:  # a few samples: faster in Python than four numpy calls
            lows, highs = self._bounds
            return all(all(map(le, lows, vs)) and all(map(le, vs, highs)) for _, _, vs in items)
        return bool((x >= lo).all() and (x <= hi).all())  # a NaN is never in range

    def screen(
        self, items: list[tuple[str, float, tuple[float, ...]]]
    ) -> list[tuple[str, float, tuple[float, ...]]]:
        """`items` without the samples out of range (counted and logged as `process` does):
        the pipeline screens raw samples before they are averaged into an interval."""
        if not items:
            return items
        x = np.asarray([v for _, _, v in items], np.float64)  # (n, F)
        if self._in_range(items, x):
            return items
        _, todo = self._sanity(items, x)
        return [item for _, item in todo]

    def process(self, items: list[tuple[str, float, tuple[float, ...]]]) -> list[Forecast]:
        """items: (stream, ts, values in feature order), in arrival order."""
        if not items:
            return []
        x = np.asarray([v for _, _, v in items], np.float64)  # (n, F); live quality's `raw`
        todo: Iterable[tuple[int, tuple[str, float, tuple[float, ...]]]] = enumerate(items)
        if self._in_range(items, x):  # the usual case
            xs = ((x - self.scaling.feature_mean) / self.scaling.feature_std).astype(np.float32)
        else:
            xs, todo = self._sanity(items, x)
        if self.calendar:  # (n, F) -> (n, F + 2C)
            stamps = np.fromiter((t for _, t, _ in items), np.float64, len(items))
            xs = np.hstack([xs, calendar.columns(self.calendar, stamps)])
        out: list[Forecast] = []
        waves: list[_Wave] = []
        depth: dict[int, int] = {}  # slot -> samples planned for it in this chunk
        table = self.table
        touch, admit = table.touch, table.admit
        accept, reset = Verdict.ACCEPT, Verdict.RESET
        for row, (stream, ts, _) in todo:
            slot = touch(stream)  # marks it recently used
            if slot is None:
                victim = table.lru_victim()
                if victim is not None and victim in depth:
                    # the slot we would recycle still has work in this chunk: finish it first
                    out += self._execute(waves, xs, x)
                    waves, depth = [], {}
                slot = table.lookup(stream)
            verdict = admit(slot, ts)
            if verdict is not accept and verdict is not reset:  # duplicate or late
                continue
            k = depth.get(slot, 0)
            depth[slot] = k + 1
            if k == len(waves):
                waves.append(_Wave())
            w = waves[k]
            w.slots.append(slot)
            w.streams.append(stream)
            w.ts.append(ts)
            w.rows.append(row)
            if verdict is reset:
                w.resets.append(slot)
        out += self._execute(waves, xs, x)
        return out

    def _sanity(
        self, items: list[tuple[str, float, tuple[float, ...]]], x: np.ndarray
    ) -> tuple[np.ndarray, Iterable[tuple[int, tuple[str, float, tuple[float, ...]]]]]:
        """The scaled input (n, F) and the rows to process, rejecting (counting, logging) rows
        out of range: beyond `max_deviation`, or (without a limit) beyond float32."""
        with np.errstate(over="ignore", invalid="ignore"):  # such rows are what is rejected
            z = (x - self.scaling.feature_mean) / self.scaling.feature_std  # training std units
            xs = z.astype(np.float32)
        if self._low is not None and self._high is not None:
            ok = ((x >= self._low) & (x <= self._high)).all(axis=1)
        else:
            ok = np.isfinite(xs).all(axis=1)
        if ok.all():
            return xs, enumerate(items)
        bad = np.flatnonzero(~ok)
        self.counters.add("bad_payloads", len(bad))
        self.counters.add("bad_out_of_range", len(bad))
        first = int(bad[0])
        stream, _, values = items[first]
        dev = np.nan_to_num(np.abs(z[first]), nan=np.inf)
        worst = int(np.argmax(dev))
        name = self.features[worst] if worst < len(self.features) else f"feature {worst}"
        self._warn(
            "out_of_range",
            "sample for %r rejected: %s = %r is %.3g training standard deviations from the "
            "training mean (input.max_deviation = %g)",
            stream,
            name,
            values[worst],
            dev[worst],
            self.max_deviation,
        )
        return xs, [(row, items[row]) for row in np.flatnonzero(ok).tolist()]

    def _execute(self, waves: list[_Wave], xs: np.ndarray, raw: np.ndarray) -> list[Forecast]:
        table = self.table
        out: list[Forecast] = []
        if self.mode == "window":
            # windows are independent: every sample of every wave goes into one invoke
            flat: list[_Flat] = [
                (w.slots[i], w.streams[i], w.ts[i], w.rows[i], w.slots[i] in w.resets)
                for w in waves
                for i in range(len(w))
            ]
            self.counters.add("samples", len(flat))
            return self._windows(flat, xs, raw)
        for w in waves:
            for slot in w.resets:
                table.reset(slot)
            if len(w) <= MAX_INVOKE:
                out += self._step(w.slots, w.streams, w.ts, w.rows, xs, raw)
                continue
            for lo in range(0, len(w), MAX_INVOKE):
                hi = lo + MAX_INVOKE
                part = w.slots[lo:hi], w.streams[lo:hi], w.ts[lo:hi], w.rows[lo:hi]
                out += self._step(*part, xs, raw)
        return out

    def _windows(self, flat: list[_Flat], xs: np.ndarray, raw: np.ndarray) -> list[Forecast]:
        """Window mode for planned samples `flat`, in order (a stream's samples in its order)."""
        table = self.table
        out: list[Forecast] = []
        ready: list[int] = []  # index in flat of each window
        ready_streams, ready_ts, windows = [], [], []
        for i, (slot, stream, ts, row, was_reset) in enumerate(flat):
            if was_reset:
                table.reset(slot)
            table.push(slot, xs[row])
            n = int(table.count[slot])
            if n >= self.min_history:
                win = table.window(slot).copy()  # (L, F)
                if n < table.seq_len:
                    win[: table.seq_len - n] = self.mask_value
                ready.append(i)
                ready_streams.append(stream)
                ready_ts.append(ts)
                windows.append(win)
        made: dict[int, np.ndarray] = {}  # index in flat -> its forecast (H, C), for quality
        poisoned: dict[int, int] = {}  # slot -> index in flat of its first non-finite window
        for lo in range(0, len(windows), MAX_INVOKE):
            hi = lo + MAX_INVOKE
            batch = np.stack(windows[lo:hi])  # (B, L, F)
            started = perf_counter()
            y = self.model.window(batch)  # -> (B, H, C)
            self._invoke_seconds.observe(perf_counter() - started)
            self._invoke_rows.observe(len(batch))
            self.counters.add("invokes")
            if not poisoned and not maybe_nonfinite(y):
                got = self._forecasts(ready_streams[lo:hi], ready_ts[lo:hi], y)
                made.update(zip(ready[lo:hi], (f.values for f in got), strict=True))
                out += got
                continue
            # rare: a non-finite output, now or earlier in this chunk. Such a stream restarts
            # right after that window, as it would one sample at a time: no forecast from it or
            # from the stream's later windows here, which are computed again after the reset.
            rows = ready[lo:hi]
            finite = finite_rows((y,), len(rows))
            keep = []
            for b, i in enumerate(rows):
                slot = flat[i][0]
                if slot in poisoned:
                    continue
                if not finite[b]:
                    poisoned[slot] = i
                    continue
                keep.append(b)
            idx = [rows[b] for b in keep]
            got = self._forecasts([flat[i][1] for i in idx], [flat[i][2] for i in idx], y[keep])
            made.update(zip(idx, (f.values for f in got), strict=True))
            out += got
        again = [i for i, f in enumerate(flat) if f[0] in poisoned and i > poisoned[f[0]]]
        if self.quality is not None:  # every step taken, before any restart below
            self.quality.observe_flat(flat, made, raw, set(again))
        if not poisoned:
            return out
        for slot in poisoned:
            self._reset_nonfinite(slot, flat[poisoned[slot]][1])
        return out + self._windows([flat[i] for i in again], xs, raw)  # fewer samples: this ends

    def _reset_nonfinite(self, slot: int, stream: str) -> None:
        """Restart a stream whose model state or output went non-finite; count and log it."""
        self.table.reset(slot)
        self.counters.add("streams_resets_nonfinite")
        self._warn(
            "nonfinite",
            "stream %r restarted: the model's state or output was not finite",
            stream,
        )

    def _step(
        self,
        ids: list[int],
        streams: list[str],
        ts: list[float],
        rows: list[int],
        xs: np.ndarray,
        raw: np.ndarray,
    ) -> list[Forecast]:
        """One invoke of the step model for distinct slots `ids`."""
        table = self.table
        slots = np.array(ids, np.int64)  # (B,)
        x = xs[rows]  # (B, F)
        table.push_many(slots, x)
        self.counters.add("samples", len(ids))
        states = [s[slots] for s in table.states]  # each (B, U)
        started = perf_counter()
        y, new_states = self.model.step(x, states)  # -> (B, H, C), [(B, U)]
        self._invoke_seconds.observe(perf_counter() - started)
        self._invoke_rows.observe(len(ids))
        self.counters.add("invokes")
        squares = float(np.vdot(y, y))  # `maybe_nonfinite`, inline: it runs once per invoke
        for s, new in zip(table.states, new_states, strict=True):
            s[slots] = new
            squares += float(np.vdot(new, new))
        warm = table.count[slots] >= self.min_history
        finite = None
        if not math.isfinite(squares):
            finite = finite_rows((y, *new_states), len(ids))
            for b in np.flatnonzero(~finite).tolist():
                self._reset_nonfinite(ids[b], streams[b])  # zero state, warm-up starts over
            warm &= finite
        out: list[Forecast] = []
        values = None  # (b, H, C) as published, for live quality
        if warm.all():
            values = self._published(y)
            out = list(map(Forecast, streams, ts, values))
        elif warm.any():
            idx = np.flatnonzero(warm).tolist()
            values = self._published(y[idx])
            out = list(map(Forecast, [streams[i] for i in idx], [ts[i] for i in idx], values))
        if self.quality is not None:  # a restarted stream's step is not scored: it starts over
            ok = slice(None) if finite is None else finite
            names = streams if finite is None else [streams[b] for b in np.flatnonzero(finite)]
            self.quality.observe(slots[ok], raw[rows][ok], warm[ok], values, names)
        return out

    def _forecasts(self, streams: list[str], ts: list[float], y: np.ndarray) -> list[Forecast]:
        return list(map(Forecast, streams, ts, self._published(y)))

    def _published(self, y: np.ndarray) -> np.ndarray:
        """(B, H, C) in original units, at the model's float32 precision (what gets published)."""
        sc = self.scaling
        self.counters.add("forecasts", len(y))
        return float32_decimals(y.astype(np.float64) * sc.target_std + sc.target_mean)
