"""Polling for a condition in tests that talk to real processes."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(cond: Callable[[], bool], timeout: float) -> bool:
    """Whether `cond()` holds within `timeout` seconds (polled every 20 ms; checked once more at
    the end, so a slow machine's last chance counts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()
