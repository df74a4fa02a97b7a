"""`[state] replicate` (edge/service/replica.py) against a real nats-server with JetStream: what one
daemon writes, another on an empty state directory reads back byte for byte; a purge starts a new
generation that late messages of the old one cannot join; a hole ends the journal; an unreachable
or dead server is a ReplicaError, never a silent gap."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqcast.edge.service.replica import (
    MESSAGE_BYTES,
    PART,
    STREAM,
    ReplicaError,
    StateReplica,
    key_token,
)
from tests.nats_server import NatsServer
from tests.test_partitioned import nats_or_skip

pytestmark = [pytest.mark.nats]


@pytest.fixture(scope="module")
def server() -> Iterator[NatsServer]:
    nats_or_skip()
    with NatsServer(partitions=1) as s:
        yield s


def url(server: NatsServer) -> str:
    return f"nats://{server.host}:{server.nats_port}"


@pytest.fixture
def replicas(server: NatsServer) -> Iterator[list[StateReplica]]:
    made: list[StateReplica] = []
    yield made
    for r in made:
        r.close()


def replica(made: list[StateReplica], server: NatsServer, key: str, **kw: float) -> StateReplica:
    r = StateReplica([url(server)], key, timeout_s=kw.get("timeout_s", 5.0))
    r.start()
    made.append(r)
    return r


def publish_raw(r: StateReplica, data: bytes, part: str) -> None:
    """A journal message on `r`'s subject, numbered `part` ("<generation>:<n>"), as the sender
    would publish it."""
    r._run(r._js.publish(r.subject, data, stream=STREAM, headers={PART: part}))


def state_dir(tmp_path: Path, name: str) -> Path:
    d = tmp_path / name
    d.mkdir()
    return d


def test_a_standby_reads_back_what_the_worker_wrote(
    tmp_path: Path, server: NatsServer, replicas: list[StateReplica]
) -> None:
    worker_dir = state_dir(tmp_path, "worker")
    (worker_dir / "streams.npz").write_bytes(os.urandom(3000))
    (worker_dir / "outbox.jsonl").write_bytes(b'{"topic": "t", "payload": "x"}\n')
    head = os.urandom(100)
    (worker_dir / "journal.bin").write_bytes(head)
    worker = replica(replicas, server, "edge-part-1")
    worker.push(worker_dir)
    # more journal as the daemon flushes it: one record bigger than a message
    more = [os.urandom(50), os.urandom(MESSAGE_BYTES * 2 + 7), os.urandom(1)]
    for chunk in more:
        worker.append(chunk)
    worker.sync()

    standby_dir = state_dir(tmp_path, "standby")
    (standby_dir / "journal.bin").write_bytes(b"stale: from an older run on this host")
    standby = replica(replicas, server, "edge-part-1")
    pulled = standby.pull(standby_dir)
    journal = head + b"".join(more)
    assert (standby_dir / "journal.bin").read_bytes() == journal
    for name in ("streams.npz", "outbox.jsonl"):
        assert (standby_dir / name).read_bytes() == (worker_dir / name).read_bytes()
    assert pulled == 3000 + len(b'{"topic": "t", "payload": "x"}\n') + len(journal)
    # another key sees none of it
    assert replica(replicas, server, "edge-part-2").pull(state_dir(tmp_path, "other")) == 0
    assert not (tmp_path / "other" / "journal.bin").exists()


def test_a_checkpoint_empties_the_journal_and_late_messages_cannot_rejoin(
    tmp_path: Path, server: NatsServer, replicas: list[StateReplica]
) -> None:
    d = state_dir(tmp_path, "worker")
    (d / "streams.npz").write_bytes(b"snapshot 1")
    worker = replica(replicas, server, "edge/part 3")  # not a subject token as it is
    worker.push(d)
    worker.append(b"before the checkpoint")
    worker.sync()
    old_generation = worker._generation
    (d / "streams.npz").write_bytes(b"snapshot 2")
    worker.put_file("streams.npz", d / "streams.npz")
    worker.restart_journal()
    worker.append(b"after")
    worker.sync()

    # a message of the emptied journal that arrives late (numbered as the next one)
    publish_raw(worker, b"LATE", f"{old_generation}:1")
    standby_dir = state_dir(tmp_path, "standby")
    replica(replicas, server, "edge/part 3").pull(standby_dir)
    assert (standby_dir / "streams.npz").read_bytes() == b"snapshot 2"
    assert (standby_dir / "journal.bin").read_bytes() == b"after"
    assert worker.subject == "seqcast.journal." + key_token("edge/part 3") != "edge/part 3"


def test_a_hole_in_the_journal_ends_it_there(
    tmp_path: Path, server: NatsServer, replicas: list[StateReplica]
) -> None:
    worker = replica(replicas, server, "edge-hole")
    worker.push(state_dir(tmp_path, "worker"))
    worker.append(b"0")
    worker.sync()

    publish_raw(worker, b"2", f"{worker._generation}:2")  # message 1 never stored; 2 was
    standby_dir = state_dir(tmp_path, "standby")
    replica(replicas, server, "edge-hole").pull(standby_dir)
    assert (standby_dir / "journal.bin").read_bytes() == b"0"


def test_an_unreachable_server_fails_at_start_in_one_line() -> None:
    from tests.broker import free_port

    r = StateReplica([f"nats://127.0.0.1:{free_port()}"], "edge", timeout_s=1.0)
    try:
        with pytest.raises(ReplicaError, match=r"^NATS nats://127\.0\.0\.1:\d+: ") as e:
            r.start()
        assert "\n" not in str(e.value)
    finally:
        r.close()


def test_a_dead_server_fails_sync_until_a_checkpoint_rewrites_the_copy(tmp_path: Path) -> None:
    nats_or_skip()
    made: list[StateReplica] = []
    with NatsServer(partitions=1) as server:
        worker = replica(made, server, "edge-dies", timeout_s=1.0)
        worker.push(state_dir(tmp_path, "worker"))
        server._node.kill()
        worker.append(b"lost with the server")
        with pytest.raises(ReplicaError, match="incomplete"):
            worker.sync()
        assert worker.broken
        with pytest.raises(ReplicaError):  # still: the copy has a hole
            worker.sync()
        with pytest.raises(ReplicaError):  # a checkpoint cannot rewrite it while it is down
            worker.restart_journal()
        assert worker.broken
    for r in made:
        r.close()


def test_the_sender_keeps_publish_order(
    tmp_path: Path, server: NatsServer, replicas: list[StateReplica]
) -> None:
    worker = replica(replicas, server, "edge-order")
    worker.push(state_dir(tmp_path, "worker"))
    chunks = [f"{i:05d};".encode() for i in range(2000)]
    for c in chunks:
        worker.append(c)
    worker.sync()
    standby_dir = state_dir(tmp_path, "standby")
    replica(replicas, server, "edge-order").pull(standby_dir)
    assert (standby_dir / "journal.bin").read_bytes() == b"".join(chunks)


def test_a_late_answer_about_an_emptied_journal_does_not_touch_the_current_one() -> None:
    """Messages are known by (generation, number): after a checkpoint the numbers start at 0
    again, so an acknowledgement or a failure that arrives late for the old generation's message
    3 must neither count as the new message 3 stored nor break the new copy."""
    r = StateReplica(["nats://127.0.0.1:1"], "edge-late")  # never started: pure bookkeeping
    try:
        r._generation = "new"
        r._outstanding = {("old", 3), ("new", 3)}
        r._acked(("old", 3), None, "not stored: TimeoutError")
        assert not r.broken and r._outstanding == {("new", 3)}
        r._acked(("new", 3), None, "not stored: TimeoutError")
        assert r.broken and r._outstanding == set()
    finally:
        r.close()
