"""The aligner's state as fixed-dtype numpy arrays, for the snapshot (no pickle, no objects).

Per stream, least recently heard first (N streams, F features):

| array | dtype, shape | meaning |
|---|---|---|
| `names`, `name_len` | uint8 (sum of lengths,), int64 (N,) | stream names, UTF-8, concatenated |
| `count` | int64 (N,) | samples in the open bucket (0: none open) |
| `open_label`, `open_values` | float64 (N,), (N, F) | its label and mean (or last) so far |
| `latest_ts` | float64 (N,) | the latest sample timestamp taken |
| `stepped`, `stepped_label`, `stepped_values` | bool, float64 (N,), (N, F) | last stepped bucket |
| `on_grid` | bool (N,) | the zero-latency streak (see align.py) |
| `silent_s` | float64 (N,) | seconds since the open bucket's latest sample arrived |

Labels are timestamps, not grid indices, so state made on another grid is recognised (its labels
are not on this one) and refused. Unused slots (no open or no stepped bucket) hold zeros. Arrival
times are stored as ages (`silent_s`) because the monotonic clock starts again at each boot: a
restored open bucket keeps what was left of its grace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from seqcast.edge.path.align import NONE, ON_LABEL_S, StreamState

if TYPE_CHECKING:
    from seqcast.edge.path.align import Aligner

FLOATS = ("open_label", "open_values", "latest_ts", "stepped_label", "stepped_values", "silent_s")
PER_STREAM = ("count", "on_grid", "stepped", *FLOATS)
KEYS = ("names", "name_len", *PER_STREAM)


def export_state(al: Aligner, now: float) -> dict[str, np.ndarray]:
    items = list(al.states.items())
    n, f = len(items), al.n_features
    encoded = [name.encode("utf-8") for name, _ in items]
    open_values = np.zeros((n, f))
    stepped_values = np.zeros((n, f))
    for i, (_, st) in enumerate(items):
        if st.n:
            open_values[i] = st.acc
        if st.done_k != NONE:
            stepped_values[i] = st.done
    states = [st for _, st in items]
    return {
        "names": np.frombuffer(b"".join(encoded), np.uint8).copy(),
        "name_len": np.array([len(b) for b in encoded], np.int64),
        "count": np.array([st.n for st in states], np.int64),
        "open_label": np.array([al.label(st.k) if st.n else 0.0 for st in states], np.float64),
        "open_values": open_values,
        "latest_ts": np.array([st.top for st in states], np.float64),
        "stepped": np.array([st.done_k != NONE for st in states], bool),
        "stepped_label": np.array(
            [al.label(st.done_k) if st.done_k != NONE else 0.0 for st in states], np.float64
        ),
        "stepped_values": stepped_values,
        "on_grid": np.array([st.ongrid for st in states], bool),
        "silent_s": np.array([max(0.0, now - st.arrival) if st.n else 0.0 for st in states]),
    }


def _bucket(al: Aligner, label: float, what: str, name: str) -> int:
    k = al.grid.index(label)
    if abs(al.grid.point(k) - label) > ON_LABEL_S:
        raise ValueError(
            f"aligner state: {what} {label!r} of stream {name!r} is not on this model's grid "
            f"({al.grid.describe()}): state from another grid"
        )
    return k


def _checked(arrays: dict[str, np.ndarray], f: int) -> tuple[list[str], dict[str, np.ndarray]]:
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(f"aligner state: missing array(s) {', '.join(missing)}")
    a = {k: np.asarray(arrays[k]) for k in KEYS}
    for k, v in a.items():
        if v.dtype.kind not in "biuf":
            raise ValueError(f"aligner state: array {k} holds {v.dtype}, not numbers")
    if any(a[k].dtype.kind not in "iu" for k in ("names", "name_len", "count")):
        raise ValueError("aligner state: names, name_len and count must hold integers")
    lengths = a["name_len"]
    if lengths.ndim != 1 or (lengths < 0).any() or a["names"].ndim != 1:
        raise ValueError("aligner state: names and name_len must be 1-D, lengths >= 0")
    n = len(lengths)
    if int(lengths.sum()) != len(a["names"]):
        raise ValueError("aligner state: name_len does not add up to the names' bytes")
    for k in PER_STREAM:
        want = (n, f) if k.endswith("_values") else (n,)
        if a[k].shape != want:
            raise ValueError(f"aligner state: {k} has shape {a[k].shape}, expected {want}")
        if k in FLOATS and not np.isfinite(a[k]).all():
            raise ValueError(f"aligner state: {k} holds a NaN or an infinity")
    if (a["count"] < 0).any() or (a["silent_s"] < 0).any():
        raise ValueError("aligner state: count and silent_s must be >= 0")
    blob = a["names"].astype(np.uint8).tobytes()
    ends = np.cumsum(lengths).tolist()
    starts = [e - m for e, m in zip(ends, lengths.tolist(), strict=True)]
    try:
        names = [blob[s:e].decode("utf-8") for s, e in zip(starts, ends, strict=True)]
    except UnicodeDecodeError as e:
        raise ValueError(f"aligner state: a stream name is not UTF-8 ({e})") from None
    if len(set(names)) != n:
        raise ValueError("aligner state: a stream name appears twice")
    return names, a


def restore_state(al: Aligner, arrays: dict[str, np.ndarray], now: float) -> int:
    names, a = _checked(arrays, al.n_features)
    count = a["count"].astype(np.int64).tolist()
    stepped = a["stepped"].astype(bool).tolist()
    on_grid = a["on_grid"].astype(bool).tolist()
    floats = {k: a[k].astype(np.float64) for k in FLOATS}
    restored: list[tuple[str, StreamState]] = []
    for i, name in enumerate(names):
        st = StreamState()
        if stepped[i]:
            st.done_k = _bucket(al, float(floats["stepped_label"][i]), "stepped label", name)
            st.done = tuple(floats["stepped_values"][i].tolist())
            st.k = st.done_k
        if count[i]:
            st.k = _bucket(al, float(floats["open_label"][i]), "open label", name)
            if st.k <= st.done_k:
                raise ValueError(f"aligner state: stream {name!r} is open on a stepped bucket")
            st.n, st.acc = count[i], tuple(floats["open_values"][i].tolist())
            st.arrival = now - float(floats["silent_s"][i])
        elif not stepped[i]:
            raise ValueError(f"aligner state: stream {name!r} has no bucket at all")
        st.top = float(floats["latest_ts"][i])
        if al.grid.index(st.top) != st.k:
            raise ValueError(f"aligner state: latest_ts of stream {name!r} is not in its bucket")
        st.ongrid = on_grid[i]
        restored.append((name, st))
    al.clear()
    if al.mode == "off":
        return 0
    restored = restored[max(0, len(restored) - al.capacity) :]  # the most recently heard
    al.states.update(restored)
    opened = sorted((st.arrival, i) for i, (_, st) in enumerate(restored) if st.n)
    al.due.update(restored[i] for _, i in opened)
    if now > al.clock:
        al.clock = now
    return len(restored)
