"""The journal: every sample the data path took since the last snapshot, on disk before any input
it came from is acknowledged.

A snapshot alone loses what arrived after it: after a SIGKILL, the broker does not deliver again
what the daemon had acknowledged, so those samples would be missing from the restored state. The
journal closes that gap. Each chunk of samples handed to the engine is appended as one record and
the file is fsynced before the batch's inputs can be acknowledged (their acknowledgements are
registered after the fsync, by the committer thread: service/committer.py). At start the daemon
replays the records on top of the snapshot: the state is what it was, bit for bit, because the
engine is deterministic.
Records whose forecasts the broker had not acknowledged yet (after the last `acked` mark) have
their forecasts recomputed by that replay and published again; their inputs come back from the
broker as duplicates and are dropped by the stream table.

File format, little endian, one record after another:

    magic b"SQJ1" | header length u32 | body length u32 | header (JSON) | body | crc32 u32

Headers: `{"bundle": sha256, "mode": m, "features": F}` (first record), `{"seq": n, "streams":
[names], "n": N}` (a chunk; body: stream index i32[N], ts f64[N], values f64[N, F]; with
`"flushed": [names]` when the aligner stepped those streams' open intervals by wall time) and
`{"acked": n}` (every chunk up to seq n is safe at the broker). A torn tail (the process died
while writing) fails its length or CRC check and ends the replay there: it was never committed.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

MAGIC = b"SQJ1"
_HEAD = struct.Struct("<4sII")
_CRC = struct.Struct("<I")

Item = tuple[str, float, tuple[float, ...]]  # (stream, ts, values in feature order)


class Mirror(Protocol):
    """A second copy of the journal file elsewhere (service/replica.py): `append` gets every byte
    the file gets, `sync` returns once those are stored, `restart_journal` empties the copy."""

    def append(self, data: bytes) -> None: ...
    def sync(self) -> None: ...
    def restart_journal(self) -> None: ...


class JournalError(ValueError):
    """A journal that cannot be replayed (another bundle, or not a journal)."""


@dataclass
class Chunk:
    seq: int
    items: list[Item]
    flushed: list[str] = field(default_factory=list)  # streams whose open interval was stepped


@dataclass
class Replay:
    chunks: list[Chunk] = field(default_factory=list)
    acked: int = 0  # every chunk up to this seq had its forecasts acknowledged by the broker


class Journal:
    """Append-only; `commit` makes what was appended durable; `restart` empties it."""

    def __init__(
        self,
        path: Path,
        bundle_sha256: str,
        mode: str,
        n_features: int,
        mirror: Mirror | None = None,
    ) -> None:
        self.path = path
        self.mirror = mirror
        self._unmirrored: list[bytes] = []
        self._header = {"bundle": bundle_sha256, "mode": mode, "features": n_features}
        self._file: BinaryIO | None = None
        self._dirty = False
        self.bytes = 0

    def _open(self) -> BinaryIO:
        if self._file is None:
            fd = os.open(
                self.path,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            self._file = os.fdopen(fd, "ab", buffering=1 << 16)
            self.bytes = os.fstat(fd).st_size
            if self.bytes == 0:
                self._write(self._header, b"")
        return self._file

    def _write(self, header: dict[str, object], body: bytes) -> None:
        head = json.dumps(header, separators=(",", ":")).encode()
        crc = zlib.crc32(body, zlib.crc32(head))
        f = self._file
        assert f is not None
        record = _HEAD.pack(MAGIC, len(head), len(body)) + head + body + _CRC.pack(crc)
        f.write(record)
        if self.mirror is not None:
            self._unmirrored.append(record)
        self.bytes += len(record)
        self._dirty = True

    def append(
        self, seq: int, items: Sequence[Item], n_features: int, flushed: Sequence[str] = ()
    ) -> None:
        """One chunk of samples, in the order they were taken in; or the streams whose open
        interval the aligner stepped after its grace ran out (`flushed`: wall time decided it,
        so the replay must be told)."""
        if not items and not flushed:
            return
        self._open()
        names: dict[str, int] = {}
        index = np.fromiter((names.setdefault(s, len(names)) for s, _, _ in items), np.int32)
        ts = np.fromiter((t for _, t, _ in items), np.float64, len(items))
        values = np.asarray([v for _, _, v in items], np.float64).reshape(len(items), n_features)
        body = index.tobytes() + ts.tobytes() + values.tobytes()
        header: dict[str, object] = {"seq": seq, "streams": list(names), "n": len(items)}
        if flushed:
            header["flushed"] = list(flushed)
        self._write(header, body)

    def mark_acked(self, seq: int) -> None:
        """Chunks up to `seq` are safe at the broker (not fsynced: a lost mark only republishes)."""
        self._open()
        self._write({"acked": seq}, b"")

    def flush(self) -> int | None:
        """Hand what was appended to the OS; the descriptor to fsync before the inputs can be
        acknowledged (None: nothing new). The daemon's committer thread does the fsync."""
        if self._file is None or not self._dirty:
            return None
        self._file.flush()
        self._dirty = False
        self._to_mirror()
        return self._file.fileno()

    def _to_mirror(self) -> None:
        if self.mirror is not None and self._unmirrored:
            self.mirror.append(b"".join(self._unmirrored))
            self._unmirrored.clear()

    def commit(self, mirror: bool = True) -> None:
        """Flush and fsync, here and now; and, unless `mirror` is False, wait until the mirror
        holds it too."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._dirty = False
            if mirror:
                self._to_mirror()
                if self.mirror is not None:
                    self.mirror.sync()

    def restart(self) -> None:
        """Empty the journal (everything in it is in a snapshot now), and then its mirror."""
        self.close(mirror=False)
        self._unmirrored.clear()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fsync(fd)
        os.close(fd)
        self.bytes = 0
        if self.mirror is not None:
            self.mirror.restart_journal()

    def close(self, mirror: bool = True) -> None:
        if self._file is not None:
            self.commit(mirror)
            self._file.close()
            self._file = None


def read_journal(path: Path, bundle_sha256: str, mode: str, n_features: int) -> Replay:
    """The committed chunks of a journal file; an empty `Replay` when there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Replay()
    out = Replay()
    pos, first = 0, True
    while pos + _HEAD.size <= len(data):
        magic, hlen, blen = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + hlen + blen + _CRC.size
        if magic != MAGIC or end > len(data):
            break  # a torn tail: never committed
        head = data[pos + _HEAD.size : pos + _HEAD.size + hlen]
        body = data[pos + _HEAD.size + hlen : end - _CRC.size]
        if _CRC.unpack_from(data, end - _CRC.size)[0] != zlib.crc32(body, zlib.crc32(head)):
            break
        header = json.loads(head)
        pos = end
        if first:
            first = False
            expected = {"bundle": bundle_sha256, "mode": mode, "features": n_features}
            if header != expected:
                raise JournalError(
                    f"{path}: written for another bundle or mode ({str(header)[:120]})"
                )
            continue
        if "acked" in header:
            out.acked = max(out.acked, int(header["acked"]))
            continue
        n, names = int(header["n"]), list(header["streams"])
        index = np.frombuffer(body, np.int32, n, 0)
        ts = np.frombuffer(body, np.float64, n, 4 * n)
        values = np.frombuffer(body, np.float64, n * n_features, 12 * n).reshape(n, n_features)
        items = [
            (names[i], t, tuple(v))
            for i, t, v in zip(index.tolist(), ts.tolist(), values.tolist(), strict=True)
        ]
        flushed = [str(x) for x in header.get("flushed", [])]
        out.chunks.append(Chunk(int(header["seq"]), items, flushed))
    if first and data:
        raise JournalError(f"{path}: not a seqcast journal")
    return out
