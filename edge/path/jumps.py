"""One wrong timestamp must not hijack a stream.

A sample that jumps further ahead than `max_gap` could be the stream resuming after an outage,
or a sensor's clock glitch (one sample 20 days ahead). Taken at face value, the glitch moves the
stream's clock 20 days forward and every later, correct sample is "late" and dropped: the
stream is silent for 20 days. So such a sample is held, not stepped, and the samples after it
decide. One that continues from the held one (later, within `max_gap`) confirms the jump: the
held sample goes to the engine first (which restarts the stream for the gap, as before), then
the new one. Samples on the old timeline are processed as usual meanwhile: a broker may deliver
older messages after a newer one around a restart, and once the old timeline has caught up to
within `max_gap` of the held sample, the first sample past it releases it in order. If instead
the old timeline goes on for more than `max_gap` without coming near it, or a sample passes it
that does not continue from it, the held sample was an outlier: dropped and counted.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from seqcast.edge.counters import CounterView
from seqcast.edge.path.streams import StreamTable

Item = tuple[str, float, tuple[float, ...]]  # (stream, ts, values)


class JumpGuard:
    def __init__(self, table: StreamTable, max_gap_s: float, counters: CounterView) -> None:
        self.table = table
        self.max_gap_s = max_gap_s
        self.counters = counters  # the `streams_` counters
        # stream -> (held sample, the stream's last ts when it was held): at most one each
        self.held: OrderedDict[str, tuple[Item, float]] = OrderedDict()

    def filter(self, items: list[Item]) -> list[Item]:
        """`items` in order, with forward jumps held back or released (see the module doc)."""
        if not math.isfinite(self.max_gap_s):
            return items
        gap = self.max_gap_s
        out: list[Item] = []
        last: dict[str, float] = {}  # this chunk's view; the table has the rest
        for item in items:
            stream, ts, _ = item
            before = last.get(stream)
            if before is None:
                slot = self.table.get(stream)
                before = float(self.table.last_ts[slot]) if slot is not None else -math.inf
            if stream in self.held:
                held, since = self.held[stream]
                held_ts = held[1]
                caught_up = before >= held_ts - gap  # the old timeline reached it: no jump now
                if ts == held_ts:
                    continue  # the held sample again (a redelivery): it is already here
                if held_ts < ts <= held_ts + gap and (caught_up or before == since):
                    del self.held[stream]  # confirmed: the jump was real, or time caught up
                    out += (held, item)
                    last[stream] = ts
                    continue
                if before < ts < held_ts:  # the old timeline goes on (or a late redelivery)
                    out.append(item)
                    last[stream] = ts
                    if ts - since > gap and ts < held_ts - gap:  # it went on without the jump
                        del self.held[stream]
                        self.counters.add("dropped_outlier")
                    continue
                if ts > held_ts:  # past it, but not from it: the held one was alone
                    del self.held[stream]
                    self.counters.add("dropped_outlier")
            if before != -math.inf and ts - before > gap:
                self.counters.add("held")
                self.held[stream] = (item, before)
                if len(self.held) > self.table.capacity:  # bounded like the table
                    self.held.popitem(last=False)
                    self.counters.add("dropped_outlier")
                continue
            out.append(item)
            if ts > before:
                last[stream] = ts
        return out
