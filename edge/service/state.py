"""State across restarts: the stream snapshot, the outbox and the journal, kept consistent.

- The journal (`journal.py`) holds every chunk of samples since the last snapshot, fsynced before
  the inputs it came from can be acknowledged.
- A checkpoint writes the outbox (forecasts the broker has not acknowledged), then the snapshot,
  then empties the journal; a crash between any two steps loses nothing (an older snapshot plus
  the journal, or a newer snapshot plus the outbox).
- At start: snapshot, then the journal replayed on top of it; the forecasts of chunks the broker
  had not acknowledged are recomputed by that replay and published again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from seqcast.edge.counters import Counters
from seqcast.edge.path.pipeline import Item, Pipeline
from seqcast.edge.service.journal import Journal, JournalError, read_journal
from seqcast.edge.service.outbox import OutboxItem, load_outbox, mark_redelivered, save_outbox
from seqcast.edge.service.replica import ReplicaError, StateReplica
from seqcast.edge.service.snapshot import SnapshotError, load_snapshot, save_snapshot
from seqcast.edge.service.statedir import JOURNAL_FILE, OUTBOX_FILE, SNAPSHOT_FILE

log = logging.getLogger(__name__)

JOURNAL_CHECKPOINT_BYTES = 64 << 20  # a journal this big triggers a checkpoint (bounds replay)
REPLICA_RETRY_S = 5.0  # a broken state copy is rewritten by a checkpoint this often


class DurableState:
    def __init__(
        self,
        state_dir: Path,
        counters: Counters,
        outbox_max_bytes: int,
        replica: StateReplica | None = None,
    ) -> None:
        self.dir = state_dir
        self.replica = replica  # `[state] replicate`: a copy in NATS JetStream (replica.py)
        self._replica_retry = 0.0
        self.counters = counters
        self.outbox_max_bytes = outbox_max_bytes
        self.journal: Journal | None = None
        self.seq = 0  # the last chunk number handed out
        self._acked_mark = 0

    def _open_journal(self, pipeline: Pipeline) -> Journal:
        n_features = len(pipeline.manifest.features)
        sha, mode = pipeline.bundle.sha256, pipeline.mode
        return Journal(self.dir / JOURNAL_FILE, sha, mode, n_features, self.replica)

    # -- start ------------------------------------------------------------------------------------
    def restore(self, pipeline: Pipeline) -> list[tuple[str, bytes]]:
        """Snapshot + journal into `pipeline`'s stream table; the forecasts to publish again.
        With a replica, its copy replaces the directory's files first (a standby taking over),
        and what was restored becomes the copy (ReplicaError: it cannot be read or written)."""
        if self.replica is None:
            return self._restore(pipeline)
        pulled = self.replica.pull(self.dir)
        if pulled:
            log.info("state from the NATS copy: %d bytes", pulled)
        again = self._restore(pipeline)
        self.replica.push(self.dir, files=not pulled)  # what was pulled is there already
        return again

    def _restore(self, pipeline: Pipeline) -> list[tuple[str, bytes]]:
        path = self.dir / SNAPSHOT_FILE
        if path.exists():
            try:
                extra: dict[str, np.ndarray] = {}
                sha, mode = pipeline.bundle.sha256, pipeline.mode
                n, age = load_snapshot(path, pipeline.table, sha, mode, extra)
                log.info("restored %d streams from snapshot (%.0f s old)", n, age)
                self._restore_aligner(pipeline, extra)
            except SnapshotError as e:
                log.warning("snapshot ignored, streams start cold: %s", e)
        journal = self._open_journal(pipeline)
        try:
            replay = read_journal(
                journal.path, pipeline.bundle.sha256, pipeline.mode, len(pipeline.manifest.features)
            )
        except JournalError as e:
            log.warning("journal ignored: %s", e)
            journal.restart()
            self.journal = journal
            return []
        again: list[tuple[str, bytes]] = []
        samples = 0
        for chunk in replay.chunks:
            forecasts = pipeline.step(chunk.items) if chunk.items else []
            if chunk.flushed:
                forecasts += pipeline.replay_flush(chunk.flushed)
            samples += len(chunk.items)
            if chunk.seq > replay.acked:
                again += [(topic, mark_redelivered(payload)) for topic, payload in forecasts]
            self.seq = max(self.seq, chunk.seq)
        self._acked_mark = replay.acked
        self.journal = journal
        if samples:
            self.counters.add("state_journal_replayed", samples)
            log.info(
                "replayed %d samples from the journal; %d forecasts the broker had not "
                "acknowledged will be published again",
                samples,
                len(again),
            )
        return again

    @staticmethod
    def _restore_aligner(pipeline: Pipeline, arrays: dict[str, np.ndarray]) -> None:
        """The aligner's open intervals, saved with the streams (none in older snapshots)."""
        if not arrays:
            return
        try:
            pipeline.aligner.restore(arrays, time.monotonic())
        except ValueError as e:
            log.warning("aligner state ignored, open intervals start empty: %s", e)

    def outbox(self) -> list[OutboxItem]:
        return load_outbox(self.dir / OUTBOX_FILE)

    # -- serving ----------------------------------------------------------------------------------
    def record(self, items: list[Item], n_features: int, flushed: Sequence[str] = ()) -> int:
        """Journal one chunk (or `flushed`: the streams whose open interval the aligner stepped
        by wall time); its number (the tag its forecasts are published with)."""
        self.seq += 1
        assert self.journal is not None
        self.journal.append(self.seq, items, n_features, flushed)
        return self.seq

    def flush(self) -> int | None:
        """The recorded chunks to the OS; the descriptor to fsync before their inputs may be
        acknowledged (see service/committer.py), None when there is nothing new."""
        return self.journal.flush() if self.journal is not None else None

    def note_acked(self, tag: int) -> None:
        if tag > self._acked_mark and self.journal is not None:
            self.journal.mark_acked(tag)
            self._acked_mark = tag

    def wants_checkpoint(self) -> bool:
        if self.replica is not None and self.replica.broken:  # a checkpoint rewrites the copy
            return time.monotonic() >= self._replica_retry
        return self.journal is not None and self.journal.bytes > JOURNAL_CHECKPOINT_BYTES

    def checkpoint(self, pipeline: Pipeline, pending: list[tuple[str, bytes, int, bool]]) -> bool:
        """Outbox, snapshot, empty journal (in that order); False (and logged) on a write error,
        when the journal is kept so nothing acknowledged is lost."""
        t0 = time.monotonic()
        try:
            kept, dropped = save_outbox(self.dir / OUTBOX_FILE, pending, self.outbox_max_bytes)
            n = save_snapshot(
                self.dir / SNAPSHOT_FILE,
                pipeline.table,
                pipeline.bundle.sha256,
                pipeline.mode,
                pipeline.aligner.export(time.monotonic()),
            )
            if self.replica is not None:  # the copy: the same order
                self.replica.put_file(OUTBOX_FILE, self.dir / OUTBOX_FILE)
                self.replica.put_file(SNAPSHOT_FILE, self.dir / SNAPSHOT_FILE)
            if self.journal is not None:
                self.journal.restart()
            self.journal = self._open_journal(pipeline)  # the bundle may have changed
            self._acked_mark = 0
            if held := pipeline.guard.held_items():  # acknowledged, not in the snapshot yet
                self.record(held, len(pipeline.manifest.features))
                self.journal.commit()
        except OSError as e:
            log.error("cannot write state to %s (the journal is kept): %s", self.dir, e)
            return False
        except ReplicaError as e:
            self._replica_retry = time.monotonic() + REPLICA_RETRY_S
            log.error("cannot write the state copy (the local state is whole): %s", e)
            return False
        self.counters.add("state_outbox_dropped", dropped)
        ms = 1000 * (time.monotonic() - t0)
        log.debug("checkpoint: %d streams, %d pending forecasts in %.0f ms", n, kept, ms)
        return True

    def close(self) -> None:
        try:
            if self.journal is not None:
                self.journal.close()
        except ReplicaError as e:
            log.error("the state copy misses the last samples (the local state is whole): %s", e)
        if self.replica is not None:
            self.replica.close()
