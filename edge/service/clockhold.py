"""Input held while the device clock is not trusted, and the clock state the status reports.

A sample "in the future" is bad input, unless the device clock itself is suspect (see
edge/clock.py): then its message stays unacknowledged (the broker keeps it) until the clock is
synchronised, jumps forward, or the samples since say the future stamps were the sensors' fault.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from seqcast.edge.clock import ClockJudge, clock_synchronised
from seqcast.edge.counters import Counters

log = logging.getLogger(__name__)

CLOCK_JUMP_S = 60.0  # the wall clock moved this much more than monotonic time: it was set


class ClockHold:
    def __init__(self, counters: Counters, sync_file: Path, max_future_s: float) -> None:
        self._counters = counters
        self._sync_file = sync_file
        self._max_future_s = max_future_s
        self._since: tuple[float, float] | None = None  # (wall, monotonic) when the hold began
        counters.gauge("clock_untrusted", lambda: int(self.holding))

    @property
    def holding(self) -> bool:
        return self._since is not None

    def hold(self, messages: int) -> bool:
        """Count `messages` held for the clock; True when this starts a hold (logged here)."""
        self._counters.add("mqtt_held_for_clock", messages)
        if self._since is not None:
            return False
        self._since = (time.time(), time.monotonic())
        log.error(
            "device clock looks wrong: timestamped samples are more than %g s ahead of it and "
            "systemd has not synchronised it (%s); holding those messages unacknowledged until "
            "the clock is synchronised or jumps forward",
            self._max_future_s,
            time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        )
        return True

    def released(self, judge: ClockJudge) -> bool:
        """True once a hold is over: the caller asks the broker for the held messages again."""
        if self._since is None:
            return False
        wall0, mono0 = self._since
        jumped = time.time() - wall0 > time.monotonic() - mono0 + CLOCK_JUMP_S
        # trusted again: synchronised, set forward, or the samples since say it was the sensors'
        evidence = not judge.device_clock_suspect()
        if not (clock_synchronised(self._sync_file) or jumped or evidence):
            return False
        self._since = None
        judge.reset()
        log.warning("device clock trusted again; asking the broker to deliver held messages again")
        return True

    def state(self) -> dict[str, bool]:
        """The status message's `clock`: synchronised (systemd says so), trusted (not holding)."""
        return {"synchronised": clock_synchronised(self._sync_file), "trusted": not self.holding}
