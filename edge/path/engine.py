"""Batched inference over the stream table, in stream mode or window mode.

`Engine.process` takes every sample that arrived while the previous batch ran. Planning walks
them in arrival order (slot lookup, order and gap policy); execution then runs one invoke per
*wave*: wave k holds each stream's k-th sample of the batch, so a stream's samples are stepped in
order while different streams share an invoke (MAX_INVOKE rows at most; a larger wave takes
several). Rows never interact inside the interpreter, so results equal one-at-a-time processing
exactly.

# B: batch (streams in a wave)  L: seq_len  F: features  U: state size  H: horizon  T: targets
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from seqcast.edge.counters import Counters
from seqcast.edge.path.encode import float32_decimals
from seqcast.edge.path.streams import StreamTable, Verdict

# Rows per interpreter invoke. The backend keeps one interpreter per power-of-two batch it has
# seen, each with tensors sized for it, so capping invokes caps that memory (LSTM-64 step model:
# 2.2 MB for all buckets up to 128, 8.8 MB up to 1,024; window model at seq_len 48: 7 to 11 MB per
# bucket, 50 MB for 1,024). Cost per row is flat from here on (step: 0.33 µs at 128, 0.31 at
# 1,024; a window is slower at 1,024 than at 128).
MAX_INVOKE = 128


class Model(Protocol):
    def window(self, x: np.ndarray) -> np.ndarray: ...
    def step(
        self, x: np.ndarray, states: list[np.ndarray]
    ) -> tuple[np.ndarray, list[np.ndarray]]: ...


@dataclass(frozen=True, slots=True)
class Forecast:
    stream: str
    ts: float  # ts of the last input
    values: np.ndarray  # (H, T), original units


@dataclass(frozen=True, slots=True)
class Scaling:
    feature_mean: np.ndarray  # (F,)
    feature_std: np.ndarray  # (F,)
    target_mean: np.ndarray  # (T,)
    target_std: np.ndarray  # (T,)


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
    ):
        if mode not in ("stream", "window"):
            raise ValueError(f"mode must be stream or window, got {mode!r}")
        self.model, self.table, self.scaling, self.mode = model, table, scaling, mode
        self.min_history = min_history
        self.mask_value = mask_value
        self.counters = counters if counters is not None else Counters()

    @property
    def invokes(self) -> int:
        return self.counters["invokes"]

    def process(self, items: list[tuple[str, float, tuple[float, ...]]]) -> list[Forecast]:
        """items: (stream, ts, values in feature order), in arrival order."""
        if not items:
            return []
        x = np.asarray([v for _, _, v in items], np.float64)  # (n, F)
        xs = ((x - self.scaling.feature_mean) / self.scaling.feature_std).astype(np.float32)
        out: list[Forecast] = []
        waves: list[_Wave] = []
        depth: dict[int, int] = {}  # slot -> samples planned for it in this chunk
        table = self.table
        touch, admit = table.touch, table.admit
        accept, reset = Verdict.ACCEPT, Verdict.RESET
        for row, (stream, ts, _) in enumerate(items):
            slot = touch(stream)  # marks it recently used
            if slot is None:
                victim = table.lru_victim()
                if victim is not None and victim in depth:
                    # the slot we would recycle still has work in this chunk: finish it first
                    out += self._execute(waves, xs)
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
        out += self._execute(waves, xs)
        return out

    def _execute(self, waves: list[_Wave], xs: np.ndarray) -> list[Forecast]:
        table = self.table
        out: list[Forecast] = []
        if self.mode == "window":
            # windows are independent: every sample of every wave goes into one invoke
            flat = [
                (w.slots[i], w.streams[i], w.ts[i], w.rows[i], w.slots[i] in w.resets)
                for w in waves
                for i in range(len(w))
            ]
            ready_streams, ready_ts, windows = [], [], []
            self.counters.add("samples", len(flat))
            for slot, stream, ts, row, was_reset in flat:
                if was_reset:
                    table.reset(slot)
                table.push(slot, xs[row])
                n = int(table.count[slot])
                if n >= self.min_history:
                    win = table.window(slot).copy()  # (L, F)
                    if n < table.seq_len:
                        win[: table.seq_len - n] = self.mask_value
                    ready_streams.append(stream)
                    ready_ts.append(ts)
                    windows.append(win)
            for lo in range(0, len(windows), MAX_INVOKE):
                hi = lo + MAX_INVOKE
                y = self.model.window(np.stack(windows[lo:hi]))  # (B, L, F) -> (B, H, T)
                self.counters.add("invokes")
                out += self._forecasts(ready_streams[lo:hi], ready_ts[lo:hi], y)
            return out
        for w in waves:
            for slot in w.resets:
                table.reset(slot)
            if len(w) <= MAX_INVOKE:
                out += self._step(w.slots, w.streams, w.ts, w.rows, xs)
                continue
            for lo in range(0, len(w), MAX_INVOKE):
                hi = lo + MAX_INVOKE
                out += self._step(w.slots[lo:hi], w.streams[lo:hi], w.ts[lo:hi], w.rows[lo:hi], xs)
        return out

    def _step(
        self, ids: list[int], streams: list[str], ts: list[float], rows: list[int], xs: np.ndarray
    ) -> list[Forecast]:
        """One invoke of the step model for distinct slots `ids`."""
        table = self.table
        slots = np.array(ids, np.int64)  # (B,)
        x = xs[rows]  # (B, F)
        table.push_many(slots, x)
        self.counters.add("samples", len(ids))
        states = [s[slots] for s in table.states]  # each (B, U)
        y, new_states = self.model.step(x, states)  # -> (B, H, T), [(B, U)]
        self.counters.add("invokes")
        for s, new in zip(table.states, new_states, strict=True):
            s[slots] = new
        warm = table.count[slots] >= self.min_history
        if warm.all():
            return self._forecasts(streams, ts, y)
        if warm.any():
            idx = np.flatnonzero(warm).tolist()
            return self._forecasts([streams[i] for i in idx], [ts[i] for i in idx], y[idx])
        return []

    def _forecasts(self, streams: list[str], ts: list[float], y: np.ndarray) -> list[Forecast]:
        # (B, H, T) in original units, at the model's float32 precision (what gets published)
        sc = self.scaling
        values = float32_decimals(y.astype(np.float64) * sc.target_std + sc.target_mean)
        self.counters.add("forecasts", len(streams))
        return list(map(Forecast, streams, ts, values))

    def warm_up(self, slot: int, history: np.ndarray) -> None:
        """Rebuild a stream's state by stepping scaled history (n, F) from zero (stream mode)."""
        self.table.reset(slot)
        for row in history:
            x = row[None, :]
            states = [s[slot : slot + 1] for s in self.table.states]
            _, new = self.model.step(x, states)
            for s, n in zip(self.table.states, new, strict=True):
                s[slot] = n[0]
            self.table.push(slot, row)
