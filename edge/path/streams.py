"""The stream table: per-stream ring buffers and recurrent state in preallocated numpy arrays.

Each stream owns one slot. Slots are recycled least-recently-used when the table is full, so
memory is fixed at start whatever stream ids arrive.

The ring buffer is written twice (at `pos` and `pos + L`), so the last L samples are always one
contiguous slice `buf[slot, pos : pos + L]`: no copy or modulo arithmetic to read a window.

# N: capacity (max streams)  L: seq_len  F: features  U: state size
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from seqcast.edge.counters import Counters, CounterView


class Verdict(Enum):
    ACCEPT = "accept"
    RESET = "reset"  # accepted, but the stream restarts first (gap, or out-of-order with "reset")
    DUPLICATE = "duplicate"
    LATE = "late"


def _own_counters() -> CounterView:
    return Counters().view("streams_")


@dataclass
class StreamTable:
    capacity: int
    seq_len: int
    n_features: int
    state_shapes: list[tuple[int, ...]]
    max_gap_s: float = math.inf
    out_of_order: str = "drop"  # "drop" | "reset"
    counters: CounterView = field(default_factory=_own_counters)  # `streams_*` of a registry
    on_reset: Callable[[int], None] | None = None  # told each slot that restarts (live quality)

    def __post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError(f"max_streams must be >= 1, got {self.capacity}")
        if self.out_of_order not in ("drop", "reset"):
            raise ValueError(f"out_of_order must be drop or reset, got {self.out_of_order!r}")
        n, L, F = self.capacity, self.seq_len, self.n_features
        self.buf = np.zeros((n, 2 * L, F), np.float32)  # (N, 2L, F)
        self.pos = np.zeros(n, np.int64)  # next write index, 0..L-1
        self.count = np.zeros(n, np.int64)  # samples since the stream (re)started
        self.last_ts = np.full(n, -math.inf)
        self.states = [np.zeros((n, *s), np.float32) for s in self.state_shapes]  # each (N, U)
        self.names: list[str | None] = [None] * n
        self._lru: OrderedDict[str, int] = OrderedDict()
        self._free = list(range(n - 1, -1, -1))
        # (stream, joined) in order, once someone watches (Home Assistant discovery): None = off
        self.changes: list[tuple[str, bool]] | None = None

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, stream: str) -> bool:
        return stream in self._lru

    def streams(self) -> list[str]:
        return list(self._lru)

    def items(self) -> list[tuple[str, int]]:
        """(stream, slot), least recently used first."""
        return list(self._lru.items())

    def slots(self) -> np.ndarray:
        """The live streams' slots (n,), least recently used first."""
        return np.fromiter(self._lru.values(), np.int64, len(self._lru))

    def get(self, stream: str) -> int | None:
        return self._lru.get(stream)

    def touch(self, stream: str) -> int | None:
        """The stream's slot, marked most recently used; None for an unknown stream."""
        slot = self._lru.get(stream)
        if slot is not None:
            self._lru.move_to_end(stream)
        return slot

    def lru_victim(self) -> int | None:
        """The slot a new stream would take over, when the table is full."""
        if self._free:
            return None
        return next(iter(self._lru.values()))

    def lookup(self, stream: str) -> int:
        """The stream's slot, creating it (and evicting the least recently used) if needed."""
        slot = self._lru.get(stream)
        if slot is not None:
            self._lru.move_to_end(stream)
            return slot
        if self._free:
            slot = self._free.pop()
        else:
            old, slot = self._lru.popitem(last=False)
            self.counters.add("evicted")
            if self.changes is not None:
                self.changes.append((old, False))
        if self.changes is not None:
            self.changes.append((stream, True))
        self._lru[stream] = slot
        self.names[slot] = stream
        self.last_ts[slot] = -math.inf
        self.reset(slot)
        self.counters.add("created")
        return slot

    def remove(self, stream: str) -> None:
        slot = self._lru.pop(stream)
        self.names[slot] = None
        if self.changes is not None:
            self.changes.append((stream, False))
        self._free.append(slot)

    def watch(self) -> None:
        """Record streams joining and leaving in `changes` from now on (`take_changes`)."""
        if self.changes is None:
            self.changes = []

    def take_changes(self) -> list[tuple[str, bool]]:
        """(stream, joined) since the last call, in order; [] unless `watch` was called."""
        changes = self.changes
        if not changes:
            return []
        self.changes = []
        return changes

    def reset(self, slot: int) -> None:
        """Restart warm-up: zero state, forget buffered history (the timestamp is kept)."""
        self.count[slot] = 0
        self.pos[slot] = 0
        for s in self.states:
            s[slot] = 0.0
        if self.on_reset is not None:
            self.on_reset(slot)

    def admit(self, slot: int, ts: float) -> Verdict:
        """Decide what a sample at `ts` does to the stream, and record ts when it is taken."""
        last = self.last_ts[slot]
        if ts <= last:
            if ts == last:
                self.counters.add("dropped_duplicate")
                return Verdict.DUPLICATE
            if self.out_of_order == "drop":
                self.counters.add("dropped_late")
                return Verdict.LATE
            self.counters.add("resets_out_of_order")
            self.last_ts[slot] = ts
            return Verdict.RESET
        self.last_ts[slot] = ts
        if ts - last > self.max_gap_s and last != -math.inf:
            self.counters.add("resets_gap")
            return Verdict.RESET
        return Verdict.ACCEPT

    def push(self, slot: int, x: np.ndarray) -> None:
        """Append one scaled sample (F,) to the ring buffer."""
        p = self.pos[slot]
        self.buf[slot, p] = x
        self.buf[slot, p + self.seq_len] = x
        self.pos[slot] = (p + 1) % self.seq_len
        self.count[slot] += 1

    def push_many(self, slots: np.ndarray, x: np.ndarray) -> None:
        """`push` for distinct slots (B,) at once: x (B, F)."""
        p = self.pos[slots]  # (B,)
        self.buf[slots, p] = x
        self.buf[slots, p + self.seq_len] = x
        self.pos[slots] = (p + 1) % self.seq_len
        self.count[slots] += 1

    def window(self, slot: int) -> np.ndarray:
        """The last L samples, oldest first: a view (L, F); rows older than `count` are stale."""
        p = self.pos[slot]
        return self.buf[slot, p : p + self.seq_len]

    def history(self, slot: int) -> np.ndarray:
        """The buffered samples since the last reset, oldest first: (min(count, L), F)."""
        n = int(min(self.count[slot], self.seq_len))
        return self.window(slot)[self.seq_len - n :]
