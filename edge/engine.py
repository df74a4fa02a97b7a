"""Batched inference over the stream table, in stream mode or window mode.

`Engine.process` takes every sample that arrived while the previous batch ran. Planning walks
them in arrival order (slot lookup, order and gap policy); execution then runs one invoke per
*wave*: wave k holds each stream's k-th sample of the batch, so a stream's samples are stepped in
order while different streams share an invoke. Rows never interact inside the interpreter, so
results equal one-at-a-time processing exactly.

# B: batch (streams in a wave)  L: seq_len  F: features  U: state size  H: horizon  T: targets
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.streams import StreamTable, Verdict


class Model(Protocol):
    def window(self, x: np.ndarray) -> np.ndarray: ...
    def step(self, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]: ...


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


@dataclass(slots=True)
class _Planned:
    slot: int
    stream: str
    ts: float
    row: int  # row in the batch's scaled input matrix
    reset: bool


class Engine:
    def __init__(
        self,
        model: Model,
        table: StreamTable,
        scaling: Scaling,
        mode: str,
        min_history: int,
        mask_value: float | None = None,
    ):
        if mode not in ("stream", "window"):
            raise ValueError(f"mode must be stream or window, got {mode!r}")
        self.model, self.table, self.scaling, self.mode = model, table, scaling, mode
        self.min_history = min_history
        self.mask_value = mask_value
        self.samples_in = 0
        self.forecasts_out = 0
        self.invokes = 0

    def process(self, items: list[tuple[str, float, tuple[float, ...]]]) -> list[Forecast]:
        """items: (stream, ts, values in feature order), in arrival order."""
        if not items:
            return []
        x = np.asarray([v for _, _, v in items], np.float64)  # (n, F)
        xs = ((x - self.scaling.feature_mean) / self.scaling.feature_std).astype(np.float32)
        out: list[Forecast] = []
        waves: list[list[_Planned]] = []
        depth: dict[int, int] = {}  # slot -> samples planned for it in this chunk
        table = self.table
        for row, (stream, ts, _) in enumerate(items):
            slot = table.get(stream)
            if slot is None:
                victim = table.lru_victim()
                if victim is not None and victim in depth:
                    # the slot we would recycle still has work in this chunk: finish it first
                    out += self._execute(waves, xs)
                    waves, depth = [], {}
                slot = table.lookup(stream)
            else:
                table.lookup(stream)  # mark recently used
            verdict = table.admit(slot, ts)
            if verdict is Verdict.DUPLICATE or verdict is Verdict.LATE:
                continue
            k = depth.get(slot, 0)
            depth[slot] = k + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(_Planned(slot, stream, ts, row, verdict is Verdict.RESET))
        out += self._execute(waves, xs)
        return out

    def _execute(self, waves: list[list[_Planned]], xs: np.ndarray) -> list[Forecast]:
        table = self.table
        out: list[Forecast] = []
        if self.mode == "window":
            # windows are independent: every sample of every wave goes into one invoke
            flat = [p for wave in waves for p in wave]
            ready, windows = [], []
            for p in flat:
                if p.reset:
                    table.reset(p.slot)
                table.push(p.slot, xs[p.row])
                self.samples_in += 1
                n = int(table.count[p.slot])
                if n >= self.min_history:
                    w = table.window(p.slot).copy()  # (L, F)
                    if n < table.seq_len:
                        w[: table.seq_len - n] = self.mask_value
                    ready.append(p)
                    windows.append(w)
            if ready:
                y = self.model.window(np.stack(windows))  # (B, L, F) -> (B, H, T)
                self.invokes += 1
                out += self._forecasts(ready, y)
            return out
        for wave in waves:
            slots = np.fromiter((p.slot for p in wave), np.int64, len(wave))
            for p in wave:
                if p.reset:
                    table.reset(p.slot)
                table.push(p.slot, xs[p.row])
            self.samples_in += len(wave)
            rows = np.fromiter((p.row for p in wave), np.int64, len(wave))
            states = [s[slots] for s in table.states]  # each (B, U)
            y, new_states = self.model.step(xs[rows], states)  # -> (B, H, T), [(B, U)]
            self.invokes += 1
            for s, new in zip(table.states, new_states, strict=True):
                s[slots] = new
            warm = table.count[slots] >= self.min_history
            if warm.all():
                out += self._forecasts(wave, y)
            elif warm.any():
                idx = np.flatnonzero(warm)
                out += self._forecasts([wave[i] for i in idx], y[idx])
        return out

    def _forecasts(self, planned: list[_Planned], y: np.ndarray) -> list[Forecast]:
        values = y.astype(np.float64) * self.scaling.target_std + self.scaling.target_mean  # (B, H, T)
        self.forecasts_out += len(planned)
        return [Forecast(p.stream, p.ts, values[i]) for i, p in enumerate(planned)]

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
