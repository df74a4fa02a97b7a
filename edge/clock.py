"""Time the daemon can trust: arrival stamps that never run backwards, and whether the device
clock itself is believable.

A Pi without a real-time clock boots in the past (1970, or where it last shut down) until NTP
answers; an operator may also step the clock back. Two consequences are handled here:

- `ArrivalClock` stamps samples that carry no timestamp. It follows the wall clock forward (a
  boot-time NTP jump is real time passing) but never backward, so a clock stepped back by an hour
  does not make the next hour of arrivals "late" and dropped.
- `ClockJudge` decides, when a sample is rejected as being in the future, whether the sensor or
  the device is wrong. The device is suspect when systemd has not confirmed the clock as
  synchronised and most recent timestamped samples are "in the future": then the daemon holds
  those messages (unacknowledged, so the broker keeps them) instead of destroying them.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

TIMESYNC_FILE = Path("/run/systemd/timesync/synchronized")  # systemd-timesyncd, once synced
FORWARD_JUMP_S = 1.0  # a wall clock this far ahead of the monotonic estimate has jumped forward


class ArrivalClock:
    """`now()` is wall-clock time that never decreases (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wall = time.time()
        self._mono = time.monotonic()

    def now(self) -> float:
        wall, mono = time.time(), time.monotonic()
        with self._lock:
            estimate = self._wall + (mono - self._mono)
            if wall > estimate + FORWARD_JUMP_S:  # the clock jumped forward: follow it
                self._wall, self._mono = wall, mono
                return wall
            return estimate


def clock_synchronised(path: Path = TIMESYNC_FILE) -> bool:
    """systemd-timesyncd (time-sync.target) says the clock is synchronised."""
    return path.exists()


class ClockJudge:
    """Is a future timestamp the sensor's fault or the device clock's? (see the module doc)"""

    def __init__(self, window: int = 32, sync_file: Path = TIMESYNC_FILE) -> None:
        self._recent: deque[bool] = deque(maxlen=window)  # True: that sample was "in the future"
        self._sync_file = sync_file

    def reset(self) -> None:
        """Forget the evidence (the clock was just found trustworthy again)."""
        self._recent.clear()

    def saw(self, future: bool) -> None:
        """Record one timestamped sample: rejected as future, or not."""
        self._recent.append(future)

    def device_clock_suspect(self) -> bool:
        """True while the device clock should not be trusted to reject samples as future."""
        if clock_synchronised(self._sync_file):
            return False
        futures = sum(self._recent)
        return futures > 0 and futures * 2 >= len(self._recent)
