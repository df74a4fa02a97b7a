"""Snapshots of the stream table, so a restart does not restart every stream's warm-up.

One `.npz` file (numpy arrays only, no pickle) written atomically: temp file, fsync, rename.
It is restored only for the same bundle (sha256) and mode; anything else is reported and
ignored, never half-applied.

# N: streams in the snapshot  L: seq_len  F: features  U: state size
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from pathlib import Path

import numpy as np

from seqcast.edge.path.streams import StreamTable

SNAPSHOT_FORMAT = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; the message says why."""


def atomic_write(path: Path, write: object, mode: int = 0o600) -> None:
    """Write via `write(fileobj)` to a temp file created with `mode`, fsync, rename over `path`."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)  # type: ignore[operator]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def save_snapshot(path: Path, table: StreamTable, bundle_sha256: str, mode: str) -> int:
    items = table.items()
    slots = np.fromiter((slot for _, slot in items), np.int64, len(items))
    meta = {
        "format": SNAPSHOT_FORMAT,
        "bundle_sha256": bundle_sha256,
        "mode": mode,
        "seq_len": table.seq_len,
        "n_features": table.n_features,
        "state_shapes": [list(s) for s in table.state_shapes],
        "streams": [name for name, _ in items],
        "saved_at": time.time(),
    }
    arrays: dict[str, np.ndarray] = {
        "buf": table.buf[slots],  # (N, 2L, F)
        "pos": table.pos[slots],
        "count": table.count[slots],
        "last_ts": table.last_ts[slots],
        **{f"state{i}": s[slots] for i, s in enumerate(table.states)},  # each (N, U)
    }
    arrays["meta"] = np.array(json.dumps(meta))
    # numpy's stubs cannot tell array names from savez's own keyword `allow_pickle`
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return len(items)


def load_snapshot(
    path: Path, table: StreamTable, bundle_sha256: str, mode: str
) -> tuple[int, float]:
    """Restore into an empty table; returns (streams restored, age in seconds)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays: dict[str, np.ndarray] = {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise SnapshotError(f"{path}: unreadable ({e})") from None
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotError(f"{path}: format {meta.get('format')!r}, expected {SNAPSHOT_FORMAT}")
    if meta.get("bundle_sha256") != bundle_sha256:
        raise SnapshotError(
            f"{path}: taken with another bundle ({str(meta.get('bundle_sha256'))[:12]})"
        )
    want = {
        "mode": mode,
        "seq_len": table.seq_len,
        "n_features": table.n_features,
        "state_shapes": [list(s) for s in table.state_shapes],
    }
    for key, value in want.items():
        if meta.get(key) != value:
            raise SnapshotError(
                f"{path}: {key} is {meta.get(key)!r}, the running model needs {value!r}"
            )
    names = meta["streams"]
    n = len(names)
    shapes = {
        "buf": (n, 2 * table.seq_len, table.n_features),
        "pos": (n,),
        "count": (n,),
        "last_ts": (n,),
    }
    shapes.update({f"state{i}": (n, *s) for i, s in enumerate(table.state_shapes)})
    for key, shape in shapes.items():
        if key not in arrays or arrays[key].shape != shape:
            got = arrays[key].shape if key in arrays else "missing"
            raise SnapshotError(f"{path}: array {key} is {got}, expected {shape}")
    if not (
        np.all((arrays["pos"] >= 0) & (arrays["pos"] < table.seq_len))
        and np.all(arrays["count"] >= 0)
    ):
        raise SnapshotError(f"{path}: ring-buffer positions out of range")
    keep = range(max(0, n - table.capacity), n)  # the most recently used, if the table shrank
    for i in keep:
        slot = table.lookup(names[i])
        table.buf[slot] = arrays["buf"][i]
        table.pos[slot] = arrays["pos"][i]
        table.count[slot] = arrays["count"][i]
        table.last_ts[slot] = arrays["last_ts"][i]
        for j, s in enumerate(table.states):
            s[slot] = arrays[f"state{j}"][i]
    table.counters.add("created", -len(keep))  # restored, not new
    return len(keep), time.time() - float(meta.get("saved_at", time.time()))
