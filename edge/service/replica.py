"""`[state] replicate`: the state directory kept in NATS JetStream as well, so that a standby on
another host takes a partition over where its worker left it: no warm-up, nothing lost.

What is kept, per key (the MQTT client id, which names the partition; see `key_token`):
- the snapshot and the outbox: objects `<key>/streams.npz` and `<key>/outbox.jsonl` in the object
  store bucket `seqcast-state`, put at every checkpoint before the journal is emptied;
- the journal: the bytes appended to the local journal file, one message per flush on the subject
  `seqcast.journal.<key>` of the stream `SEQCAST_JOURNAL`, each numbered (header `Seqcast-Part`).
  The committer waits for their publish acknowledgements (the stream's replicas hold them) as well
  as for the fsync before the inputs may be acknowledged; a checkpoint purges the subject.

At start the copy in NATS wins: when it holds anything for the key, its files replace the state
directory's and the usual restore runs on them; when it holds nothing, the state directory's files
are pushed up first (replication just turned on).

Once a publish fails, the copy's journal has a hole: every later `sync` fails (those inputs stay
unacknowledged) until a checkpoint writes a whole copy again, which the daemon does at once.

nats-py is asyncio; it runs on a thread of its own, and this class is its blocking face.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
import threading
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from seqcast.edge.service.statedir import JOURNAL_FILE, OUTBOX_FILE, SNAPSHOT_FILE, atomic_write

log = logging.getLogger(__name__)

BUCKET = "seqcast-state"
STREAM = "SEQCAST_JOURNAL"
SUBJECT_PREFIX = "seqcast.journal."
# header "<generation>:<n>": the journal message's number since the last purge, from 0; the
# generation (object <key>/journal-gen, new at each purge) tells late messages of an emptied
# journal from the current ones
PART = "Seqcast-Part"
GENERATION = "journal-gen"
MESSAGE_BYTES = 256 << 10  # under nats-server's default max_payload (1 MiB)
FILES = (SNAPSHOT_FILE, OUTBOX_FILE)  # put at checkpoints; the journal goes as messages
T = TypeVar("T")


class ReplicaError(RuntimeError):
    """The copy in NATS cannot be read or written (unreachable, no quorum, a hole, a timeout)."""


def key_token(key: str) -> str:
    """`key` as one subject token and object name prefix (NATS subjects forbid `.`, `*`, `>` and
    white space): every character but letters, digits and `-` becomes `_<hex code>_`, so two
    keys never share a token."""
    return re.sub(r"[^A-Za-z0-9-]", lambda m: f"_{ord(m.group()):x}_", key) or "_"


class StateReplica:
    def __init__(
        self, servers: list[str], key: str, replicas: int = 1, timeout_s: float = 10.0
    ) -> None:
        self.servers, self.key, self.replicas, self.timeout_s = servers, key, replicas, timeout_s
        self.token = key_token(key)
        self.subject = SUBJECT_PREFIX + self.token
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="seqcast-replica")
        self._thread.daemon = True
        self._nc: Any = None
        self._js: Any = None
        self._obs: Any = None
        self._queue: asyncio.Queue[tuple[str, int, bytes]] | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._closing = False
        self._last_error = ""
        self._cond = threading.Condition()
        self._next_part = 0  # the next journal message's number
        # (generation, number) of the journal messages published, not acknowledged yet: a late
        # answer about an emptied journal's message must not count for the current one's
        self._outstanding: set[tuple[str, int]] = set()
        self._broken: str | None = None  # why the copy's journal has a hole
        self._generation = ""

    # -- the loop thread ----------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout or self.timeout_s)
        except ReplicaError:
            raise
        except Exception as e:  # nats-py's errors, timeouts
            future.cancel()
            why = f"{type(e).__name__} {e}".strip()
            if isinstance(e, TimeoutError) and not str(e):
                why = f"no answer within {timeout or self.timeout_s:g} s"
            raise ReplicaError(f"NATS {','.join(self.servers)}: {why}") from e

    def start(self) -> None:
        """Connect, and create the bucket and the stream when they are missing."""
        # nats-py is imported here, on the caller's thread: Python 3.11 can fail to parse
        # modules imported by two threads at once ("AST constructor recursion depth mismatch")
        import nats.js.api
        import nats.js.errors  # noqa: F401

        self._thread.start()
        try:
            self._run(self._connect())
        except ReplicaError as e:
            raise ReplicaError(f"{e} (at start: the state copy must be read first)") from e
        log.info("state replicated to NATS %s as %r", ",".join(self.servers), self.token)

    async def _connect(self) -> None:
        import nats
        from nats.js.api import ObjectStoreConfig, StorageType, StreamConfig
        from nats.js.errors import BucketNotFoundError, NotFoundError

        async def disconnected() -> None:
            if not self._closing:
                log.warning("state replica: disconnected from NATS")

        async def error(e: Exception) -> None:  # one line per new reason, no traceback
            if str(e) != self._last_error and not self._closing:
                log.warning("state replica: NATS: %s %s", type(e).__name__, e)
            self._last_error = str(e)

        async def reconnected() -> None:
            self._last_error = ""
            log.info("state replica: reconnected to NATS %s", self._nc.connected_url.netloc)

        self._nc = await nats.connect(
            self.servers,
            connect_timeout=min(2.0, self.timeout_s),  # per attempt; start() bounds them all
            max_reconnect_attempts=-1,
            dont_randomize=True,  # this host's node first, as listed
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self._js = self._nc.jetstream(timeout=self.timeout_s)
        try:
            self._obs = await self._js.object_store(BUCKET)
        except BucketNotFoundError:
            config = ObjectStoreConfig(storage=StorageType.FILE, replicas=self.replicas)
            self._obs = await self._js.create_object_store(BUCKET, config=config)
        try:
            await self._js.stream_info(STREAM)
        except NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=STREAM,
                    subjects=[SUBJECT_PREFIX + ">"],
                    storage=StorageType.FILE,
                    num_replicas=self.replicas,
                )
            )
        self._queue = asyncio.Queue()
        self._sender_task = self._loop.create_task(self._sender())

    async def _sender(self) -> None:
        """Publishes the journal's messages one after another (so they are stored in order),
        without waiting for each acknowledgement."""
        assert self._queue is not None
        while True:
            generation, part, data = await self._queue.get()
            try:
                ack = await self._js.publish_async(
                    self.subject, data, stream=STREAM, headers={PART: f"{generation}:{part}"}
                )
                ack.add_done_callback(lambda f, m=(generation, part): self._acked(m, f))
            except Exception as e:
                self._acked((generation, part), None, f"not sent: {type(e).__name__} {e}")

    def _acked(
        self, message: tuple[str, int], future: asyncio.Future[Any] | None, why: str = ""
    ) -> None:
        if future is not None and (future.cancelled() or future.exception() is not None):
            error = None if future.cancelled() else future.exception()
            why = f"not stored: {type(error).__name__} {error}"
        with self._cond:
            self._outstanding.discard(message)
            self._cond.notify_all()
            current = message[0] == self._generation
        if why and current:  # a failure of an emptied journal's message changes nothing
            self._fail(f"journal message {message[1]} {why}")

    def _fail(self, why: str) -> None:
        with self._cond:
            if self._broken is None:
                log.error("state replica: %s; commits fail until the next checkpoint", why)
            self._broken = self._broken or why
            self._cond.notify_all()

    # -- the journal ------------------------------------------------------------------------------
    def append(self, data: bytes) -> None:
        """Bytes the local journal file just got: published in order (in messages of at most
        MESSAGE_BYTES), acknowledged later."""
        assert self._queue is not None
        for at in range(0, len(data), MESSAGE_BYTES):
            with self._cond:
                part, self._next_part = self._next_part, self._next_part + 1
                self._outstanding.add((self._generation, part))
                message = (self._generation, part, data[at : at + MESSAGE_BYTES])
            self._loop.call_soon_threadsafe(self._queue.put_nowait, message)

    def sync(self) -> None:
        """Until every message appended so far is stored; ReplicaError when the copy has a hole
        or the acknowledgements do not come within the timeout."""
        with self._cond:
            generation, target = self._generation, self._next_part
            if not self._cond.wait_for(
                lambda: (
                    self._broken
                    or not any(g == generation and p < target for g, p in self._outstanding)
                ),
                self.timeout_s,
            ):
                self._fail(f"no acknowledgement within {self.timeout_s:g} s")
            if self._broken:
                raise ReplicaError(f"the state copy in NATS is incomplete: {self._broken}")

    @property
    def broken(self) -> bool:
        return self._broken is not None

    def restart_journal(self) -> None:
        """Empty the copy's journal (everything in it is in the snapshot put before)."""
        self._new_generation(b"")

    def _new_generation(self, journal: bytes) -> None:
        """The copy's journal becomes `journal`, under a new generation: its messages are stored
        first, then the generation object names them, then the older ones are purged, so the copy
        is whole after a crash at any point."""
        with self._cond:  # messages still in flight would land after the purge
            self._cond.wait_for(lambda: not self._outstanding, self.timeout_s)
            was_broken = self._broken is not None
        try:
            before = self._run(self._js.stream_info(STREAM)).state.last_seq
            with self._cond:
                self._generation, self._next_part = secrets.token_hex(4), 0
                self._outstanding, self._broken = set(), None
            self.append(journal)
            self.sync()
            self._run(self._put(f"{self.token}/{GENERATION}", self._generation.encode()))
            self._run(self._js.purge_stream(STREAM, subject=self.subject, seq=before + 1))
        except ReplicaError as e:
            self._fail(f"journal not rewritten: {e}")
            raise
        if was_broken:
            log.info("state replica: the copy in NATS is whole again")

    # -- files ------------------------------------------------------------------------------------
    def put_file(self, name: str, path: Path) -> None:
        """The state directory's `name` as it is now (deleted from the copy when absent)."""
        data = path.read_bytes() if path.exists() else None
        self._run(self._put(f"{self.token}/{name}", data))

    async def _put(self, name: str, data: bytes | None) -> None:
        from nats.js.errors import NotFoundError  # imported by start(), on the caller's thread

        if data is not None:
            await self._obs.put(name, data)
            return
        with contextlib.suppress(NotFoundError):
            await self._obs.delete(name)

    def pull(self, state_dir: Path) -> int:
        """The copy's files into `state_dir` (atomically each), when it holds any: -> the bytes
        written (0: the copy is empty, nothing was touched). `push` must follow before the
        journal is appended to."""
        files, journal = self._run(self._fetch(), timeout=self.timeout_s * 6)
        if not files and not journal:
            return 0

        def write(path: Path, data: bytes | None) -> None:
            def put(f: BinaryIO) -> None:
                f.write(data or b"")

            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, put)

        for name in FILES:
            write(state_dir / name, files.get(name))
        write(state_dir / JOURNAL_FILE, journal)
        return sum(map(len, files.values())) + len(journal)

    async def _fetch(self) -> tuple[dict[str, bytes], bytes]:
        from nats.js.errors import NotFoundError, ObjectDeletedError  # imported by start()

        files: dict[str, bytes] = {}
        for name in FILES:
            with contextlib.suppress(NotFoundError, ObjectDeletedError):
                files[name] = (await self._obs.get(f"{self.token}/{name}")).data or b""
        try:
            generation = (await self._obs.get(f"{self.token}/{GENERATION}")).data or b""
        except (NotFoundError, ObjectDeletedError):
            generation = b""
        parts: list[bytes] = []
        seq = 1
        while generation:
            try:
                msg = await self._js.get_msg(STREAM, seq=seq, subject=self.subject, next=True)
            except NotFoundError:
                break
            seq = msg.seq + 1
            gen, _, number = (msg.headers or {}).get(PART, "").partition(":")
            if gen != generation.decode():
                continue  # a late message of an emptied journal
            if number != str(len(parts)):  # a hole: later messages were never all acknowledged
                log.warning(
                    "state replica: journal message %d missing, replay ends there", len(parts)
                )
                break
            parts.append(msg.data or b"")
        return files, b"".join(parts)

    def push(self, state_dir: Path, files: bool = True) -> None:
        """The state directory's journal up, as the copy's (and, with `files`, the snapshot and
        the outbox): at every start, after `pull` (so the copy's journal is renumbered from what
        this daemon replays; its files are there already) or instead of it."""
        for name in FILES if files else ():
            self.put_file(name, state_dir / name)
        journal = state_dir / JOURNAL_FILE
        self._new_generation(journal.read_bytes() if journal.exists() else b"")

    def close(self) -> None:
        self._closing = True
        if self._thread.is_alive():
            try:
                self._run(self._shutdown())
            except ReplicaError as e:
                log.warning("state replica: %s", e)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
        if not self._thread.is_alive() and not self._loop.is_closed():
            rest = asyncio.all_tasks(self._loop)  # left by a shutdown that timed out
            for task in rest:
                task.cancel()
            if rest:
                self._loop.run_until_complete(asyncio.wait(rest))
            self._loop.close()

    async def _shutdown(self) -> None:
        if self._sender_task is not None:
            self._sender_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender_task
        if self._nc is not None:
            await self._nc.close()
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in rest:  # nats-py's own readers, so none is left pending on a closed loop
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)


def start_replica(servers: Sequence[str], key: str, replicas: int) -> StateReplica:
    """`[state] replicate`: connected, its bucket and stream there (ReplicaError otherwise, one
    line: the daemon exits 2 and systemd tries again)."""
    try:
        import nats  # noqa: F401
    except ImportError as e:
        raise ReplicaError(
            "[state] replicate needs nats-py in seqcast's environment "
            "(pip install nats-py, the nats extra)"
        ) from e
    replica = StateReplica(list(servers), key, replicas)
    try:
        replica.start()
    except BaseException:
        replica.close()
        raise
    return replica
