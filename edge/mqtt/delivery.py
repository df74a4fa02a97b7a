"""Delivery bookkeeping: received messages, and when it is safe to acknowledge them."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InboundMessage:
    stream: str
    topic: str
    payload: bytes
    received_at: float  # time.time() at arrival
    mid: int = 0  # packet id, to acknowledge after processing (QoS > 0)
    qos: int = 0
    dup: bool = False  # the broker redelivered it (it may have been processed before a crash)


@dataclass(slots=True)
class Batch:
    outstanding: set[int]  # forecast mids the broker has not acknowledged yet
    inputs: list[tuple[int, int]]  # (mid, qos) of the inputs that produced them
    tag: int | None = None  # the caller's sequence number of this batch (the journal's chunk)


class AckGate:
    """Acknowledge inputs only once their forecasts are safe at the broker, in arrival order.

    Until then the broker keeps the inputs (persistent session) and delivers them again after a
    crash or reconnect, so a forecast is never lost between the two hops.
    """

    EARLY_TTL_S = 10.0
    EARLY_MAX = 4096

    def __init__(self) -> None:
        self.lock = threading.Lock()  # guards the fields below; never held while calling paho
        self.ack_lock = threading.Lock()  # keeps PUBACKs in order across threads
        self.early: dict[int, float] = {}  # PUBACKs that arrived before their batch registered
        self.batches: deque[Batch] = deque()
        self.by_mid: dict[int, Batch] = {}
        self.pending: dict[int, tuple[str, bytes, int, bool]] = {}  # forecasts awaiting PUBACK
        self.released_tag = 0  # the highest tag of a batch whose forecasts are all acknowledged

    def note_early(self, mid: int) -> None:
        """A PUBACK for a mid we do not know (yet): a racing forecast, or a status message."""
        self.early.pop(mid, None)  # re-insert at the end: the dict stays in time order
        self.early[mid] = time.monotonic()
        if len(self.early) > self.EARLY_MAX:
            del self.early[next(iter(self.early))]  # the oldest: O(1)

    def take_early(self, mid: int) -> bool:
        t = self.early.pop(mid, None)
        return t is not None and time.monotonic() - t < self.EARLY_TTL_S

    def register(
        self,
        sent: list[tuple[int, str, bytes]],
        inputs: list[tuple[int, int]],
        qos: int,
        retain: bool,
        tag: int | None = None,
    ) -> None:
        """A batch handed to paho: `sent` (mid, topic, payload) forecasts, `inputs` (mid, qos)."""
        batch = Batch(set(), inputs, tag)
        with self.lock:
            for mid, topic, payload in sent:
                if not self.take_early(mid):  # its PUBACK has not overtaken us
                    batch.outstanding.add(mid)
                    self.by_mid[mid] = batch
                    self.pending[mid] = (topic, payload, qos, retain)
            self.batches.append(batch)

    def acked(self, mid: int, early: bool) -> bool:
        """The broker acknowledged forecast `mid`; True if it was part of a registered batch.
        `early`: remember an unknown mid, its batch may not be registered yet."""
        with self.lock:
            self.pending.pop(mid, None)
            batch = self.by_mid.pop(mid, None)
            if batch is None:
                if early:
                    self.note_early(mid)
                return False
            batch.outstanding.discard(mid)
            return True

    def pending_list(self) -> list[tuple[str, bytes, int, bool]]:
        """Forecasts awaiting their PUBACK, oldest first."""
        with self.lock:
            return list(self.pending.values())

    def ready(self) -> list[tuple[int, int]]:
        """Inputs of the complete batches at the head, in order; call with the lock held."""
        out: list[tuple[int, int]] = []
        while self.batches and not self.batches[0].outstanding:
            batch = self.batches.popleft()
            out += batch.inputs
            if batch.tag is not None:
                self.released_tag = max(self.released_tag, batch.tag)
        return out
