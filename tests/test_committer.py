"""Group commit (edge/service/committer.py): inputs are released only after their journal bytes
were fsynced, in the order they were handed over; a failed fsync releases nothing."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from seqcast.edge.counters import Counters
from seqcast.edge.service import committer as committer_mod
from seqcast.edge.service.committer import Committer
from seqcast.edge.service.replica import ReplicaError


def test_inputs_are_released_in_order_after_one_fsync_per_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    gate = threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        gate.wait(5)  # the first fsync blocks until everything below was handed over
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(committer_mod.os, "fsync", slow_fsync)
    released: list[list[int]] = []
    counters = Counters()
    c: Committer[int] = Committer(released.append, counters.view("state_"))
    fd = os.open(tmp_path / "j", os.O_WRONLY | os.O_CREAT)
    try:
        c.submit(fd, [1])
        c.submit(fd, [2, 3])
        c.submit(None, [4])
        c.submit(fd, [])
        gate.set()
        c.drain()
        assert released == [[1], [2, 3], [4]]  # in order; nothing released for an empty batch
        assert 1 <= len(synced) <= 2  # the three batches behind the first share one fsync
        assert counters["state_commits"] == len(synced)
    finally:
        c.close()
        os.close(fd)


def test_a_failed_fsync_releases_nothing_and_is_counted() -> None:
    released: list[list[int]] = []
    counters = Counters()
    c: Committer[int] = Committer(released.append, counters.view("state_"))
    bad_fd = 1_000_000  # never open here: fsync fails with EBADF
    try:
        c.submit(bad_fd, [1, 2])
        c.drain()
        assert released == []
        assert counters["state_commit_errors"] == 1
        c.submit(None, [3])  # the committer goes on
        c.drain()
        assert released == [[3]]
    finally:
        c.close()


def test_inputs_wait_for_the_replica_too_and_a_failing_one_releases_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`[state] replicate`: after the fsync the committer waits for the copy (`sync`); while it
    fails, nothing is released, each failure is counted, and a reason is logged once."""
    failing = {"why": "the state copy in NATS is incomplete: no quorum"}
    calls: list[int] = []

    def sync() -> None:
        calls.append(1)
        if failing["why"]:
            raise ReplicaError(failing["why"])

    released: list[list[int]] = []
    counters = Counters()
    c: Committer[int] = Committer(released.append, counters.view("state_"), sync)
    try:
        for batch in ([1], [2]):
            c.submit(None, batch)
            c.drain()
        assert released == [] and len(calls) == 2
        assert counters["state_commit_errors"] == 2
        assert caplog.text.count("no quorum") == 1  # one line per reason, not per commit
        failing["why"] = ""
        c.submit(None, [3])
        c.drain()
        assert released == [[3]]
        assert counters["state_commits"] == 1  # a commit: durable here and in the copy
    finally:
        c.close()
