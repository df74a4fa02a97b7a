"""The inbox: the queue from paho's network thread to the main thread's data path.

Its bound applies to QoS 0 messages, which the daemon may drop (and count) when it cannot keep
up. A QoS 1/2 message is never dropped here: it is not acknowledged until its forecasts are safe,
so the broker holds no more of them in flight than its window allows (MQTT 5: our Receive
Maximum; MQTT 3.1.1: the broker's max_inflight_messages), and that window bounds the inbox.
"""

from __future__ import annotations

import queue

from seqcast.edge.mqtt.delivery import InboundMessage


class Inbox(queue.Queue[InboundMessage]):
    """A `queue.Queue` with a QoS 0 bound that also hands out everything waiting as one batch."""

    def __init__(self, limit: int = 0) -> None:
        super().__init__()  # unbounded underneath: the bound is applied per QoS in `offer`
        self.limit = limit

    def offer(self, message: InboundMessage) -> bool:
        """Queue `message`; False (not queued) only for a QoS 0 message beyond the bound."""
        if message.qos == 0 and 0 < self.limit <= self.qsize():  # limit 0: unbounded
            return False
        self.put_nowait(message)
        return True

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
                batch += [popleft() for _ in range(n)]  # unbounded underneath: nobody waits to put
        return batch
