"""One wrong timestamp must not hijack a stream, and a broker that delivers newer messages first
must not cost the older ones.

A sample that jumps further ahead of its stream than `max_gap` is one of three things:
- a sensor's clock glitch (one sample, or a few, 20 days ahead while the stream goes on);
- a broker delivering out of order: after a restart, mosquitto may deliver newer messages
  before the block it had queued for us (seen: 225 steps ahead, the older block 2.6 s later);
- the stream resuming after a real outage.
Taken at face value, the first two move the stream's clock forward and every older, correct
sample is "late" and dropped. So the jump is held, not stepped, together with the samples that
continue from it (a held run), and what happens next decides:
- the old timeline catches up to the run (its last sample within `max_gap` of the run's first):
  the run is released in order, at the next sample that continues it or when the wait is over
  (it was a reordering);
- the wait (`reorder_s`) is over and the old timeline went on without coming near the run: the
  run is dropped and counted (a glitch);
- the wait is over and nothing else arrived for the stream: the run is released (an outage; the
  engine restarts the stream for the gap, as before). A run of one sample waits for a second
  one, so a lone glitch on a quiet stream never moves it.
Samples of the old timeline are processed as usual meanwhile: a hold never delays them.

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


class JumpGuard:
    def __init__(
        self,
        table: StreamTable,
        max_gap_s: float,
        counters: CounterView,
        reorder_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        latest: Callable[[str], float | None] | None = None,
    ) -> None:
        self.table = table
        # a stream's latest sample time: the aligner's when it aligns (the table holds the
        # label of the last interval stepped, up to two intervals behind)
        self.latest = latest
        self.max_gap_s = max_gap_s
        self.counters = counters  # the `streams_` counters
        self.reorder_s = reorder_s
        self.clock = clock
        self.runs: OrderedDict[str, _Run] = OrderedDict()  # at most one per stream

    def held_items(self) -> list[Item]:
        """Every held sample, each stream's in time order (to journal them again)."""
        return [it for run in self.runs.values() for it in run.items]

    def _last_ts(self, stream: str) -> float:
        if self.latest is not None and (ts := self.latest(stream)) is not None:
            return ts
        slot = self.table.get(stream)
        return float(self.table.last_ts[slot]) if slot is not None else -math.inf

    def filter(self, items: list[Item]) -> list[Item]:
        """`items` in arrival order, with forward jumps held back or released (module doc)."""
        if not math.isfinite(self.max_gap_s):
            return items
        gap, out = self.max_gap_s, []
        last: dict[str, float] = {}  # this chunk's view; the table has the rest
        for item in items:
            stream, ts, _ = item
            before = last.get(stream)
            if before is None:
                before = self._last_ts(stream)
            run = self.runs.get(stream)
            if run is not None:
                if ts >= run.first:
                    out += self._extend(stream, run, item, before)
                    if stream not in self.runs:  # released (or dropped): the table moves on
                        last[stream] = self._released_last(out, stream, before)
                    continue
                run.progressed = True  # the old timeline goes on; processed as usual
            elif before != -math.inf and ts - before > gap:
                self.counters.add("held")
                self.runs[stream] = _Run([item], before, self.clock())
                if len(self.runs) > self.table.capacity:  # bounded like the table
                    _, oldest = self.runs.popitem(last=False)
                    self.counters.add("dropped_outlier", len(oldest.items))
                continue
            out.append(item)
            if ts > before:
                last[stream] = ts
        return out

    @staticmethod
    def _released_last(out: list[Item], stream: str, before: float) -> float:
        return max((ts for s, ts, _ in out if s == stream), default=before)

    def _extend(self, stream: str, run: _Run, item: Item, before: float) -> list[Item]:
        """A sample at or after the run's start: part of the run, its continuation, or proof
        that a lone held sample was a glitch."""
        ts, gap = item[1], self.max_gap_s
        if ts - run.last > gap and len(run.items) == 1:  # past it, not from it: it was alone
            del self.runs[stream]
            self.counters.add("dropped_outlier")
            self.counters.add("held")
            self.runs[stream] = _Run([item], before, self.clock())
            return []
        if ts > run.last and before >= run.first - gap:  # continues it, old timeline caught up
            del self.runs[stream]
            return [*run.items, item]
        if run.add(item):
            self.counters.add("held")
            if len(run.items) >= RUN_CAP:
                return self._decide(stream, run, before)
        return []

    def due(self) -> list[Item]:
        """Runs whose wait is over: released (in order) or dropped (see the module doc)."""
        if not self.runs:
            return []
        now, out = self.clock(), []
        for stream, run in list(self.runs.items()):
            if now - run.held_at >= self.reorder_s:
                out += self._decide(stream, run, self._last_ts(stream))
        return out

    def _decide(self, stream: str, run: _Run, before: float) -> list[Item]:
        if before >= run.first - self.max_gap_s or (not run.progressed and len(run.items) > 1):
            del self.runs[stream]  # caught up (a reordering), or a quiet stream resumed
            return run.items
        if run.progressed:  # the old timeline went on without it: a glitch
            del self.runs[stream]
            self.counters.add("dropped_outlier", len(run.items))
        return []  # a lone sample on a quiet stream: the next sample decides

    def release_all(self) -> list[Item]:
        """At the end of a finite input (a replay): every run decided as if its wait were over."""
        out: list[Item] = []
        for stream, run in list(self.runs.items()):
            out += self._decide(stream, run, self._last_ts(stream))
        return out
