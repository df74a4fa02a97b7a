"""The inbox: a bounded queue from paho's network thread to the main thread's data path."""

from __future__ import annotations

import queue

from seqcast.edge.mqtt.delivery import InboundMessage


class Inbox(queue.Queue[InboundMessage]):
    """A `queue.Queue` that also hands out everything waiting as one batch."""

    def next_batch(self, timeout: float, limit: int) -> list[InboundMessage]:
        """Wait up to `timeout` s for a message, then take at most `limit` in arrival order."""
        try:
            batch = [self.get(timeout=timeout)]
        except queue.Empty:
            return []
        # the rest under one lock round: get_nowait() per message would cost one round each
        with self.mutex:
            n = min(len(self.queue), limit - 1)
            if n:
                popleft = self.queue.popleft
                batch += [popleft() for _ in range(n)]
                self.not_full.notify(n)
        return batch
