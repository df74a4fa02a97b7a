"""Group commit: the journal's fsync off the data path.

A batch's inputs may be acknowledged only once the journal holding its samples is on disk
(service/journal.py). Doing the fsync on the main thread put it on every sample's latency path:
at 1,000 single-sample messages/s a batch is a message or two, and the message that arrives
during an fsync waits for it. Here the main thread writes the journal to the OS and hands the
batch's inputs over; this thread fsyncs once for everything handed over since its last fsync and
then registers those inputs for acknowledgement, in the order they came. Forecasts never wait
for it: they are published before the commit, as before.

`drain()` waits until everything handed over is durable: before the journal file is emptied or
closed (a checkpoint, a model swap, shutdown), so an fsync never targets a closed descriptor.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from seqcast.edge.counters import CounterView
from seqcast.edge.service.replica import ReplicaError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Committer(Generic[T]):
    def __init__(
        self,
        release: Callable[[list[T]], None],
        counters: CounterView,
        sync: Callable[[], None] | None = None,
    ) -> None:
        self._release = release  # registers inputs for acknowledgement
        self._sync = sync  # after the fsync: waits until the state's copy elsewhere holds it too
        self._sync_error = ""
        self.counters = counters  # the `state_` counters
        self._pending: list[tuple[int | None, list[T]]] = []
        self._busy = False
        self._closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="seqcast-commit", daemon=True)
        self._thread.start()

    def submit(self, fd: int | None, inputs: list[T]) -> None:
        """`inputs` may be acknowledged once `fd` (None: nothing new to sync) is on disk."""
        with self._cond:
            self._pending.append((fd, inputs))
            self._cond.notify()

    def drain(self) -> None:
        """Until everything submitted is on disk and released."""
        with self._cond:
            self._cond.wait_for(lambda: not self._pending and not self._busy)

    def close(self) -> None:
        self.drain()
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                group, self._pending, self._busy = self._pending, [], True
            try:
                self._commit(group)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _commit(self, group: list[tuple[int | None, list[T]]]) -> None:
        try:
            for fd in {fd for fd, _ in group if fd is not None}:
                os.fsync(fd)
        except OSError as e:
            # not acknowledged: the broker delivers these inputs again after a reconnect
            self.counters.add("commit_errors")
            log.error("cannot fsync the journal (%s); its inputs stay unacknowledged", e)
            return
        if self._sync is not None:
            try:
                self._sync()
            except ReplicaError as e:
                self.counters.add("commit_errors")
                if str(e) != self._sync_error:  # one line per new reason, not per commit
                    log.error("%s; its inputs stay unacknowledged", e)
                self._sync_error = str(e)
                return
            self._sync_error = ""
        self.counters.add("commits")
        for _, inputs in group:
            if inputs:
                self._release(inputs)
