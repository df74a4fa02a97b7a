"""Home Assistant's birth message: `online` on its birth topic means Home Assistant (re)started
and wants every discovery config again.

paho's thread calls `heard`; the main thread asks `take` between batches. Only paho's thread
bumps `_heard`, only the main thread `_taken`, so neither needs a lock.
"""

from __future__ import annotations

from seqcast.edge.counters import Counters


class Births:
    def __init__(self, registry: Counters) -> None:
        self._registry = registry
        self._heard = 0
        self._taken = 0

    def heard(self, payload: bytes) -> None:
        """A message on the birth topic (paho's thread)."""
        self._registry.inc("hass_birth_messages")
        if payload.strip() == b"online":  # `offline` is Home Assistant's last will
            self._heard += 1

    def take(self) -> bool:
        """Whether Home Assistant said `online` since the last call."""
        heard, taken = self._heard, self._taken
        self._taken = heard
        return heard != taken
