"""Rate-limited logging: a flood of bad input must not flood the journal."""

from __future__ import annotations

import logging
import threading
import time


class RateLimitedLog:
    """At most one record per `kind` every `interval_s`; the next one says how many were skipped."""

    def __init__(self, logger: logging.Logger, interval_s: float = 10.0) -> None:
        self._logger = logger
        self._interval = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, kind: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self._interval:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return
            self._last[kind] = now
            skipped = self._suppressed.pop(kind, 0)
        if skipped:
            msg, args = msg + " (%d similar messages suppressed)", (*args, skipped)
        self._logger.log(level, msg, *args)
