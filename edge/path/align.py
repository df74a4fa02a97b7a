"""Raw samples onto the model's grid: one step per interval, as the trainer resampled them.

A sensor need not report on the model's grid. `Aligner` turns each stream's samples
`(stream, ts, values)` into grid steps `(stream, label, values)` for the engine:

- Buckets. A bucket covers `[grid.point(k), grid.point(k + 1))` and is labelled `point(k)`
  (pandas' resample default: closed left, label left), so trainer and device agree. `mean`: the
  bucket's value is the mean of its samples; `last`: its latest sample by timestamp. A sample
  repeating the open bucket's latest timestamp (a redelivery, or a sensor sending twice) is
  dropped as stale, in both modes. `off`: no aligning, every sample passes through unchanged and
  nothing is filled.
- Stepping. A bucket is stepped (emitted) when a sample of a later bucket arrives, or by
  `flush_due(now)` once no sample has arrived for it for `grace_s` seconds (the caller's
  monotonic clock). A stream has at most one open bucket; samples of its buckets may arrive in
  any order among themselves, but buckets in time order.
- Zero latency on the grid. A sample exactly on its bucket's label is stepped at once when the
  stream's latest bucket, too, held only samples exactly on its label (the stream reports on the
  grid) and no sample off its label has come since: such a stream has one sample per bucket, so
  nothing is waited for. A stream's first sample cannot know and waits. A sensor that is off the
  grid but sometimes hits a label (every 10 minutes: its 10:00 sample is on the label, the 09:50
  before it is not) waits as usual, so its mean is whole. A hole does not break the streak (a
  sensor on the grid that lost a message is stepped at once again); any sample off its label
  in the latest interval or later does (one far older, a clock glitch, does not). Price of the
  rule: an irregular sensor whose two consecutive samples hit labels (10:00, then 11:00) gets
  11:00 stepped alone; its later samples of that hour are dropped as stale.
- Stale. A sample of a bucket already stepped, or older than the open one, is dropped and
  counted (`dropped_stale`): the steps went out, and forecasts with them.
- Holes. When the next bucket to step is `gap` steps after the last stepped one and
  `1 < gap <= max_fill + 1`, the `gap - 1` missing steps are stepped first, filled by linear
  interpolation exactly as the trainer's `np.interp` over the grid (step j of the hole:
  `(b - a) / gap * j + a`), counted `filled`. A longer hole is not filled: the engine sees the
  gap in the labels and applies its own `max_gap` rule.
- Order. The output keeps each stream's steps in time order and, across streams, the order in
  which the samples that stepped them arrived.
- Memory. At most `capacity` streams (least recently heard evicted first; its open bucket is
  stepped as it goes, it is the stream silent longest), each a few fields: nothing grows per
  sample. Open buckets are kept in order of their last arrival, so `flush_due` looks only at the
  buckets that are due (and one more).

Counters (a `streams_` view): `aligned`, samples that joined a bucket already holding one (a
bucket of n samples adds n - 1); `filled`, steps made up for holes; `dropped_stale`. So samples
in = steps out - filled + aligned + dropped_stale + pending() (+ open buckets `forget` dropped).

Durable state: `export(now)` / `restore(arrays, now)` (in `align_state.py`), fixed-dtype numpy
arrays for the snapshot; `flush_streams(names)` steps named streams' open buckets, for replaying
a journal that recorded what `flush_due` stepped (the only step that depends on wall time).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable

import numpy as np

from seqcast.edge.counters import Counters, CounterView
from seqcast.edge.timegrid import Grid

Item = tuple[str, float, tuple[float, ...]]  # (stream, ts, values): a sample, or a step
MODES = ("mean", "last", "off")
ON_LABEL_S = 1e-6  # a sample this close to its bucket's label is on it (as `Grid.on_grid`)
NONE = -(2**62)  # bucket index of "no bucket": below every real one


class StreamState:
    """One stream's aligning state: its latest bucket and its last stepped one."""

    __slots__ = ("k", "n", "acc", "top", "done_k", "done", "ongrid", "arrival")

    def __init__(self) -> None:
        self.k = NONE  # the latest bucket: open while n > 0, else the last stepped one (or NONE)
        self.n = 0  # samples in the open bucket (0: none open)
        self.acc: tuple[float, ...] = ()  # the open bucket's mean so far (mean) or latest (last)
        self.top = -math.inf  # the latest timestamp taken (so far the open bucket's latest)
        self.done_k = NONE  # the last stepped bucket
        self.done: tuple[float, ...] = ()  # its values
        self.ongrid = False  # the latest bucket's samples and any since were all on their labels
        self.arrival = 0.0  # when the open bucket's latest sample arrived


def _own_counters() -> CounterView:
    return Counters().view("streams_")


class Aligner:
    def __init__(
        self,
        grid: Grid,
        mode: str,
        max_fill: int,
        grace_s: float,
        capacity: int,
        n_features: int,
        counters: CounterView | None = None,
    ) -> None:
        """`mode`: `[streams] align`; `max_fill`: the bundle's `Manifest.max_fill`; `grace_s`:
        `[streams] grace` x the grid's `interval_s`; `capacity`: `[streams] max_streams`;
        `counters`: the registry's `streams_` view."""
        if mode not in MODES:
            raise ValueError(f"align must be one of {', '.join(MODES)}, got {mode!r}")
        if int(max_fill) != max_fill or max_fill < 0:
            raise ValueError(f"max_fill must be a whole number >= 0, got {max_fill}")
        if not (grace_s > 0 and math.isfinite(grace_s)):
            raise ValueError(f"grace must be > 0 s, got {grace_s}")
        if capacity < 1:
            raise ValueError(f"max_streams must be >= 1, got {capacity}")
        if n_features < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        self.grid, self.mode, self.max_fill = grid, mode, int(max_fill)
        self.grace_s, self.capacity, self.n_features = float(grace_s), capacity, n_features
        self.counters = counters if counters is not None else _own_counters()
        self.states: OrderedDict[str, StreamState] = OrderedDict()  # least recently heard first
        self.due: OrderedDict[str, StreamState] = OrderedDict()  # open buckets, by last arrival
        self.clock = -math.inf  # the latest arrival or `now` seen: arrivals never run backwards
        self._fixed = grid.unit == "second"
        self._origin, self._n = float(grid.origin), float(grid.n)
        self._filled = 0
        self._cached = (math.inf, -math.inf, NONE)  # calendar grids: (point(k), point(k+1), k)

    def __len__(self) -> int:
        return len(self.states)

    def pending(self) -> int:
        """Streams with an open bucket (stepped by a later sample, or `flush_due`)."""
        return len(self.due)

    def latest(self, stream: str) -> float | None:
        """The stream's latest sample timestamp taken (None: unknown stream)."""
        st = self.states.get(stream)
        return None if st is None else st.top

    def label(self, k: int) -> float:
        return self._origin + k * self._n if self._fixed else self.grid.point(k)

    def process(self, items: Iterable[Item], arrival: float) -> list[Item]:
        """Samples (in arrival order, all arrived at `arrival`) -> the steps they complete."""
        if self.mode == "off":
            return list(items)
        if arrival > self.clock:
            self.clock = arrival
        arrival = self.clock
        out: list[Item] = []
        states, due = self.states, self.due
        fixed, origin, n = self._fixed, self._origin, self._n
        label = self.label
        mean = self.mode == "mean"
        aligned = stale = 0
        floor = math.floor
        for stream, ts, values in items:
            st = states.get(stream)
            if st is None:
                st = self._create(stream, out)
            else:
                states.move_to_end(stream)
            k = floor((ts - origin) / n + 1e-9) if fixed else self._calendar_index(ts)
            latest = st.k
            if k > latest:  # a later bucket: the open one is complete
                if st.n:
                    self._close(stream, st, out)
                at = label(k)
                on = -ON_LABEL_S <= ts - at <= ON_LABEL_S
                st.k, st.top = k, ts
                if on and st.ongrid:  # on the grid: nothing more will come for this bucket
                    self._emit(stream, st, k, values, out)
                else:
                    st.n, st.acc, st.arrival = 1, values, arrival
                    due[stream] = st  # not in `due` (closed above): goes last, as it arrived last
                st.ongrid = on
            elif k == latest and st.n and ts == st.top:  # a duplicate (redelivery, bad sensor)
                stale += 1
            elif k == latest and st.n:  # one more sample of the open bucket
                c = st.n + 1
                st.n = c
                if mean:
                    st.acc = tuple([m + (x - m) / c for m, x in zip(st.acc, values, strict=True)])
                elif ts >= st.top:
                    st.acc = values
                if ts > st.top:
                    st.top = ts
                if st.ongrid and abs(ts - label(k)) > ON_LABEL_S:
                    st.ongrid = False
                st.arrival = arrival
                due.move_to_end(stream)
                aligned += 1
            else:  # its bucket was stepped, or it is older than the open one
                stale += 1
                # a sample inside the interval just stepped says the sensor is not on the grid
                # after all (wait from now on); a far older one (a wrong clock) says nothing
                if k == latest and st.ongrid and abs(ts - label(k)) > ON_LABEL_S:
                    st.ongrid = False
        self._count(aligned, stale)
        return out

    def flush_due(self, now: float) -> list[Item]:
        """Step every open bucket whose latest sample arrived `grace_s` or more before `now`.
        Cheap when nothing is due: one look at the oldest open bucket."""
        due = self.due
        if now > self.clock:
            self.clock = now
        if not due:
            return []
        limit = now - self.grace_s
        out: list[Item] = []
        while due:
            stream, st = next(iter(due.items()))
            if st.arrival > limit:
                break
            self._close(stream, st, out)
        self._count(0, 0)
        return out

    def flush_streams(self, streams: Iterable[str]) -> list[Item]:
        """Step the open buckets of these streams now (journal replay of `flush_due`)."""
        out: list[Item] = []
        for stream in streams:
            st = self.due.get(stream)
            if st is not None:
                self._close(stream, st, out)
        self._count(0, 0)
        return out

    def forget(self, stream: str) -> None:
        """Drop a stream's state, open bucket included (the stream table evicted it)."""
        if self.states.pop(stream, None) is not None:
            self.due.pop(stream, None)

    def clear(self) -> None:
        self.states.clear()
        self.due.clear()

    # -- internals ------------------------------------------------------------------------------
    def _calendar_index(self, ts: float) -> int:
        """`grid.index` for a calendar grid, remembering the last bucket found (numpy's months
        cost microseconds; a batch's samples mostly fall into the same month)."""
        lo, hi, k = self._cached
        if lo <= ts < hi:
            return k
        k = self.grid.index(ts)
        self._cached = (self.grid.point(k), self.grid.point(k + 1), k)
        return k

    def _create(self, stream: str, out: list[Item]) -> StreamState:
        if len(self.states) >= self.capacity:
            old, st = self.states.popitem(last=False)
            if st.n:
                self._close(old, st, out)
        st = self.states[stream] = StreamState()
        return st

    def _close(self, stream: str, st: StreamState, out: list[Item]) -> None:
        """Step the open bucket (in `due`)."""
        del self.due[stream]
        st.n = 0
        self._emit(stream, st, st.k, st.acc, out)

    def _emit(
        self, stream: str, st: StreamState, k: int, values: tuple[float, ...], out: list[Item]
    ) -> None:
        """Step bucket k, after the interpolated steps of a hole of at most max_fill."""
        a, gap = st.done_k, k - st.done_k
        if 1 < gap <= self.max_fill + 1 and a != NONE:
            label, last = self.label, st.done
            for j in range(1, gap):  # as np.interp: slope * (x - x0) + y0
                row = tuple([(y - x) / gap * j + x for x, y in zip(last, values, strict=True)])
                out.append((stream, label(a + j), row))
            self._filled += gap - 1
        out.append((stream, self.label(k), values))
        st.done_k, st.done = k, values

    def _count(self, aligned: int, stale: int) -> None:
        if aligned:
            self.counters.add("aligned", aligned)
        if stale:
            self.counters.add("dropped_stale", stale)
        if self._filled:
            self.counters.add("filled", self._filled)
            self._filled = 0

    # -- durable state (see align_state.py) ---------------------------------------------------
    def export(self, now: float) -> dict[str, np.ndarray]:
        """The streams' state as fixed-dtype arrays (least recently heard first)."""
        from seqcast.edge.path.align_state import export_state

        return export_state(self, now)

    def restore(self, arrays: dict[str, np.ndarray], now: float) -> int:
        """Replace the state with `export`'s arrays (ValueError, nothing changed, when they are
        not sound); returns the streams restored."""
        from seqcast.edge.path.align_state import restore_state

        return restore_state(self, arrays, now)
