"""Snapshots of the stream table, so a restart does not restart every stream's warm-up.

One `.npz` file (numpy arrays only, no pickle) written atomically: temp file, fsync, rename.
It is restored only for the same bundle (sha256) and mode; anything else is reported and
ignored, never half-applied.

Format 2 stores `meta` (JSON, stream names included) as UTF-8 bytes, so the file is the
streams' arrays plus their names' UTF-8 bytes; format 1 held it as a numpy unicode string, 4
bytes per character (24 per non-ASCII one, which JSON escaped). Both are read. A snapshot with a
non-finite state, buffer or timestamp is refused: it would silence its stream for good.

# N: streams in the snapshot  L: seq_len  F: features  U: state size
"""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path

import numpy as np

from seqcast.edge.path.streams import StreamTable
from seqcast.edge.service.statedir import atomic_write

SNAPSHOT_FORMAT = 2
READABLE_FORMATS = (1, 2)


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; the message says why."""


EXTRA = "x_"  # prefix of the arrays saved beside the table


def _nonfinite(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """For each array (first axis: the n streams) that holds a NaN or an infinity, the (n,) bool
    mask of the streams that do; {} when everything is finite."""
    masks: dict[str, np.ndarray] = {}
    if n == 0:
        return masks
    for key, a in arrays.items():
        bad = ~np.isfinite(a.reshape(n, -1)).all(axis=1)
        if bad.any():
            masks[key] = bad
    return masks


def save_snapshot(
    path: Path,
    table: StreamTable,
    bundle_sha256: str,
    mode: str,
    extra: dict[str, np.ndarray] | None = None,
) -> int:
    """Write the table's streams (never a non-finite one: the engine resets those, and any that
    slipped through is left out to start cold); returns how many were written. `extra`: more
    arrays saved beside them (the aligner's), given back by `load_snapshot`."""
    items = table.items()
    slots = np.fromiter((slot for _, slot in items), np.int64, len(items))
    checked = {"buf": table.buf, "last_ts": table.last_ts}
    checked.update({f"state{i}": s for i, s in enumerate(table.states)})
    masks = _nonfinite({k: a[slots] for k, a in checked.items()}, len(items))
    if masks:  # not expected (the engine resets such a stream at once): it will start cold
        ok = ~np.logical_or.reduce(list(masks.values()))
        items = [item for item, good in zip(items, ok.tolist(), strict=True) if good]
        slots = slots[ok]
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
    # UTF-8 bytes (surrogatepass: any str round-trips), not a numpy unicode string
    text = json.dumps(meta, ensure_ascii=False).encode("utf-8", "surrogatepass")
    arrays["meta"] = np.frombuffer(text, np.uint8)
    arrays.update({EXTRA + k: a for k, a in (extra or {}).items()})
    # numpy's stubs cannot tell array names from savez's own keyword `allow_pickle`
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
    return len(items)


def load_snapshot(
    path: Path,
    table: StreamTable,
    bundle_sha256: str,
    mode: str,
    extra: dict[str, np.ndarray] | None = None,
) -> tuple[int, float]:
    """Restore into an empty table; returns (streams restored, age in seconds). `extra` gets the
    arrays `save_snapshot` was given beside the table (for their owner to check)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = z["meta"]
            if raw.dtype == np.uint8:  # format 2: UTF-8 bytes
                meta = json.loads(raw.tobytes().decode("utf-8", "surrogatepass"))
            else:  # format 1: a numpy unicode string
                meta = json.loads(str(raw))
            arrays: dict[str, np.ndarray] = {k: z[k] for k in z.files if k != "meta"}
        if extra is not None:
            extra.update({k[len(EXTRA) :]: a for k, a in arrays.items() if k.startswith(EXTRA)})
        arrays = {k: a for k, a in arrays.items() if not k.startswith(EXTRA)}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as e:
        raise SnapshotError(f"{path}: unreadable ({e})") from None
    if not isinstance(meta, dict):
        raise SnapshotError(f"{path}: unreadable (meta is not a JSON object)")
    if meta.get("format") not in READABLE_FORMATS:
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
    names = meta.get("streams")
    if not (isinstance(names, list) and all(isinstance(x, str) for x in names)):
        raise SnapshotError(f"{path}: meta.streams is not a list of stream names")
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
        if arrays[key].dtype.kind not in "biuf":
            raise SnapshotError(f"{path}: array {key} holds {arrays[key].dtype}, not numbers")
    if not (
        np.all((arrays["pos"] >= 0) & (arrays["pos"] < table.seq_len))
        and np.all(arrays["count"] >= 0)
    ):
        raise SnapshotError(f"{path}: ring-buffer positions out of range")
    masks = _nonfinite({k: arrays[k] for k in shapes if k not in ("pos", "count")}, n)
    if masks:
        bad = np.logical_or.reduce(list(masks.values()))
        first = int(np.argmax(bad))
        name = names[first]
        shown = repr(name if len(name) <= 64 else name[:64] + "...")
        what = ", ".join(k for k, m in masks.items() if m[first])
        raise SnapshotError(
            f"{path}: {int(bad.sum())} of {n} streams hold non-finite values "
            f"(first: stream {shown}, in {what})"
        )
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
