"""One wrong timestamp must not hijack a stream, and a broker or publisher that delivers newer
messages first must not cost the older ones.

A sample that leaves a hole after its stream's latest one is one of four things:
- a sensor's clock glitch (one sample, or a few, 20 days ahead while the stream goes on);
- a broker delivering out of order: after a restart, mosquitto may deliver newer messages
  before the block it had queued for us (seen: 225 steps ahead, the older block 2.6 s later);
- a publisher sending out of order: paho, publishing QoS 1 flat out, sends a new message as
  soon as an in-flight slot frees, ahead of the ones still queued (seen: one step ahead);
- a real hole or outage: the samples in between are lost.
Taken at face value, the first three cost the older, correct samples: they are "late" and
dropped, and the hole they would have closed was filled or restarted the stream. So the sample
is held, not stepped, together with the samples that continue from it (a held run), while
the stream's older samples are processed as usual (a hold never delays them). Then:
- the old timeline closes the hole (no step missing before the run): the run is released at
  once, in order (it was a reordering);
- the wait (`reorder_s`) is over with the run within `max_gap_s` of the stream: released (a
  short hole is filled or restarts the stream as before; an outage the old timeline caught up to
  within `max_gap_s` is the same);
- the wait is over, the run beyond `max_gap_s`, and the old timeline went on without coming near
  it: the run is dropped and counted (a glitch);
- the wait is over, the run beyond `max_gap_s`, and nothing else arrived for the stream (an
  outage): released; the engine restarts the stream for the gap. Such a run of one sample waits
  for a second one, so a lone glitch on a quiet stream never moves it.
Price: a stream with a real short hole gets the samples after it `reorder_s` later.

Decisions depend only on sample timestamps and on how long a run has been held; the daemon
journals samples before this guard, so a restart replays them through it again (see
service/state.py: held runs are journaled again at every checkpoint).
"""

from __future__ import annotations

import bisect
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from seqcast.edge.counters import CounterView
from seqcast.edge.path.streams import StreamTable
from seqcast.edge.timegrid import Grid

Item = tuple[str, float, tuple[float, ...]]  # (stream, ts, values)
RUN_CAP = 4096  # samples a run may hold; a longer run is decided at once, as if the wait were over


@dataclass
class _Run:
    items: list[Item]  # in time order, no two with the same ts
    since: float  # the stream's last ts when the jump was held
    held_at: float  # monotonic seconds
    progressed: bool = False  # the old timeline moved since
    times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.times = [it[1] for it in self.items]

    @property
    def first(self) -> float:
        return self.times[0]

    @property
    def last(self) -> float:
        return self.times[-1]

    def add(self, item: Item) -> bool:
        """Insert in time order; False for a timestamp it already has (a redelivery)."""
        i = bisect.bisect_left(self.times, item[1])
        if i < len(self.times) and self.times[i] == item[1]:
            return False
        self.times.insert(i, item[1])
        self.items.insert(i, item)
        return True


def grid_hole(grid: Grid) -> Callable[[float, float], bool]:
    """Aligned: a step is missing when the samples' buckets are two or more steps apart (the
    cheap test first: buckets are at least 0.9 nominal intervals long, months included)."""
    shortest = grid.interval_s * (1.0 if grid.unit == "second" else 0.9)
    index = grid.index
    return lambda before, ts: ts - before > shortest and index(ts) - index(before) >= 2


def step_hole(interval_s: float) -> Callable[[float, float], bool]:
    """Not aligned: every sample is a step, so one more than half an interval late is missing."""
    return lambda before, ts: ts - before > 1.5 * interval_s


class JumpGuard:
    def __init__(
        self,
        table: StreamTable,
        max_gap_s: float,
        counters: CounterView,
        reorder_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        latest: Callable[[str], float | None] | None = None,
        hole: Callable[[float, float], bool] | None = None,
    ) -> None:
        """`hole(before, ts)`: whether a sample at `ts` after one at `before` leaves a step
        missing (None, or `reorder_s` 0: only jumps beyond `max_gap_s` are held)."""
        self.table = table
        # a stream's latest sample time: the aligner's when it aligns (the table holds the
        # label of the last interval stepped, up to two intervals behind)
        self.latest = latest
        self.max_gap_s = max_gap_s
        self.counters = counters  # the `streams_` counters
        self.reorder_s = reorder_s
        self.clock = clock
        # with a hole test, samples after a short hole wait in `near`, and the old timeline
        # closing a hole releases what waited for it at once; without one, "within max_gap_s"
        # is no proof that nothing is missing: a far run waits for its next sample or the wait
        self.exact = hole is not None and reorder_s > 0
        self.hole = hole if hole is not None and self.exact else self._far
        self.runs: OrderedDict[str, _Run] = OrderedDict()  # far runs, at most one per stream
        self.near: OrderedDict[str, _Run] = OrderedDict()  # short-hole waits, one per stream

    def _far(self, before: float, ts: float) -> bool:
        return ts - before > self.max_gap_s

    @property
    def holding(self) -> bool:
        """Whether any sample is held (`due` has something to decide)."""
        return bool(self.runs or self.near)

    def held_items(self) -> list[Item]:
        """Every held sample, each stream's in time order (to journal them again)."""
        near = [it for run in self.near.values() for it in run.items]
        return near + [it for run in self.runs.values() for it in run.items]

    def _last_ts(self, stream: str) -> float:
        if self.latest is not None and (ts := self.latest(stream)) is not None:
            return ts
        slot = self.table.get(stream)
        return float(self.table.last_ts[slot]) if slot is not None else -math.inf

    def filter(self, items: list[Item]) -> list[Item]:
        """`items` in arrival order, with samples after a hole held back or released."""
        if not math.isfinite(self.max_gap_s):
            return items
        hole, gap, out = self.hole, self.max_gap_s, []
        last: dict[str, float] = {}  # this chunk's view; the table has the rest
        for item in items:
            stream, ts, _ = item
            before = last.get(stream)
            if before is None:
                before = self._last_ts(stream)
            run = self.runs.get(stream)
            if run is not None and ts >= run.first:
                released = self._extend(stream, run, item, before)
                if released:  # in time order: the stream moves on to the last
                    out += released
                    last[stream] = max(before, released[-1][1])
                continue
            near = self.near.get(stream)
            if before == -math.inf:
                pass
            elif near is not None and ts > near.first:  # past a hole still open: wait too
                if ts - near.last <= gap or run is not None:
                    self._wait(stream, item, run)
                    continue
                self._hold(stream, item, near.last)
                continue
            elif hole(before, ts):
                if ts - before <= gap:  # a short hole: wait for it to close
                    self._wait(stream, item, run)
                    continue
                if run is None:
                    self._hold(stream, item, before)
                    continue
                if run.first - ts <= gap:  # far from the stream, near the run: part of it
                    if run.add(item):
                        self.counters.add("held")
                    continue
            if run is not None:
                run.progressed = True  # the old timeline goes on; processed as usual
            out.append(item)
            if ts > before:
                if run is None and near is None:
                    last[stream] = ts
                    continue
                self._progress(run, near, ts)
                last[stream] = self._advance(stream, ts, out)
        return out

    def _progress(self, run: _Run | None, near: _Run | None, ts: float) -> None:
        """The old timeline came nearer to what is held: the wait starts again, so a block of
        older samples that takes longer than `reorder_s` to arrive is still waited for (a far
        run only once the old timeline is within `max_gap_s` of it: a glitch never is)."""
        now = self.clock()
        if near is not None:
            near.held_at = now
        if run is not None and run.first - ts <= self.max_gap_s:
            run.held_at = now

    def _advance(self, stream: str, before: float, out: list[Item]) -> float:
        """The stream's timeline reached `before`: what waited for it follows (returns where
        the timeline is then)."""
        near = self.near.get(stream)
        if near is not None:
            k = 0  # the waiting samples the timeline now reaches, each closing the next one's hole
            while k < len(near.times) and not self.hole(before, near.times[k]):
                before = max(before, near.times[k])
                k += 1
            out += near.items[:k]
            del near.items[:k], near.times[:k]
            if not near.items:
                del self.near[stream]
                near = None
        run = self.runs.get(stream)
        if run is not None and near is None and self.exact and not self.hole(before, run.first):
            del self.runs[stream]  # the old timeline closed the hole: a reordering
            out += run.items
            before = run.last
        return before

    def _wait(self, stream: str, item: Item, run: _Run | None) -> None:
        if run is not None:
            run.progressed = True  # the old timeline goes on (even if it waits)
        near = self.near.get(stream)
        if near is None:
            near = self.near[stream] = _Run([], item[1], self.clock())
            self._bound(self.near)
        if near.add(item):
            self.counters.add("held")

    def _hold(self, stream: str, item: Item, before: float) -> None:
        self.counters.add("held")
        self.runs[stream] = _Run([item], before, self.clock())
        self._bound(self.runs)

    def _bound(self, waits: OrderedDict[str, _Run]) -> None:
        """At most one wait per table slot: the oldest goes first, counted."""
        if len(waits) > self.table.capacity:
            _, oldest = waits.popitem(last=False)
            self.counters.add("dropped_outlier", len(oldest.items))

    def _extend(self, stream: str, run: _Run, item: Item, before: float) -> list[Item]:
        """A sample at or after a far run's start: part of the run, its continuation, or proof
        that a lone held sample was a glitch."""
        ts, gap = item[1], self.max_gap_s
        if ts - run.last > gap and len(run.items) == 1:  # past it, not from it: it was alone
            del self.runs[stream]
            self.counters.add("dropped_outlier")
            self._hold(stream, item, before)
            return []
        caught_up = stream not in self.near and not self.hole(before, run.first)
        if ts > run.last and caught_up:  # continues it, and the old timeline caught up
            del self.runs[stream]
            return [*run.items, item]
        if run.add(item):
            self.counters.add("held")
            if not run.progressed:  # the newer block is still coming: the wait starts after it
                run.held_at = self.clock()
            if len(run.items) >= RUN_CAP:
                return self._decide(stream, run, before)
        return []

    def due(self) -> list[Item]:
        """Waits that are over: short holes released, far runs released or dropped (see the
        module doc)."""
        if not self.holding:
            return []
        return self._settle(self.clock() - self.reorder_s)

    def _settle(self, deadline: float) -> list[Item]:
        """Decide every wait that started before `deadline` (monotonic seconds)."""
        out: list[Item] = []
        reached: dict[str, float] = {}  # where released short-hole waits took their streams
        for stream, near in list(self.near.items()):
            if near.held_at <= deadline or len(near.items) >= RUN_CAP:
                out += self._release_near(stream, reached)
        for stream, run in list(self.runs.items()):
            if run.held_at <= deadline:
                before = max(self._last_ts(stream), reached.get(stream, -math.inf))
                out += self._decide(stream, run, before)
        return out

    def _release_near(self, stream: str, reached: dict[str, float]) -> list[Item]:
        near = self.near.pop(stream)
        out = list(near.items)
        reached[stream] = near.last
        run = self.runs.get(stream)
        if run is not None and not self.hole(near.last, run.first):
            del self.runs[stream]  # the far run continues what waited: all in order
            out += run.items
        return out

    def _decide(self, stream: str, run: _Run, before: float) -> list[Item]:
        if stream in self.near:  # the short holes before it are decided first
            return []
        if run.first - before <= self.max_gap_s or (not run.progressed and len(run.items) > 1):
            del self.runs[stream]  # near enough, or a quiet stream resumed
            return run.items
        if run.progressed:  # the old timeline went on without it: a glitch
            del self.runs[stream]
            self.counters.add("dropped_outlier", len(run.items))
        return []  # a lone sample on a quiet stream: the next sample decides

    def release_all(self) -> list[Item]:
        """At the end of a finite input (a replay): every wait decided as if it were over."""
        return self._settle(math.inf)
