"""A snapshot never carries non-finite values across a restart, and stores stream names as UTF-8
(issue 9, findings 3 and 5)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from seqcast.edge.path.streams import StreamTable
from seqcast.edge.service.snapshot import SnapshotError, load_snapshot, save_snapshot

SHA = "ab" * 32


def filled_table(names: list[str], seq_len: int = 4, seed: int = 0) -> StreamTable:
    rng = np.random.default_rng(seed)
    t = StreamTable(max(len(names), 1), seq_len, 2, [(3,), (3,)], max_gap_s=100.0)
    for i, name in enumerate(names):
        slot = t.lookup(name)
        for k in range(i % 5 + 2):
            t.admit(slot, float(k))
            t.push(slot, rng.normal(size=2).astype(np.float32))
        for s in t.states:
            s[slot] = rng.normal(size=3)
    return t


def empty_like(t: StreamTable) -> StreamTable:
    return StreamTable(t.capacity, t.seq_len, t.n_features, t.state_shapes, max_gap_s=100.0)


def rewrite(path: Path, change) -> None:
    """Rewrite the snapshot's arrays with numpy, as a hand (or a bug) would."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k].copy() for k in z.files}
    change(arrays)
    with path.open("wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    ("key", "index", "value"),
    [
        ("state0", (1, 0), math.nan),
        ("state1", (2, 2), math.inf),
        ("buf", (0, 3, 1), math.nan),
        ("buf", (4, 0, 0), -math.inf),
        ("last_ts", (3,), math.inf),
        ("last_ts", (0,), -math.inf),
        ("last_ts", (2,), math.nan),
    ],
)
def test_a_snapshot_with_non_finite_values_is_refused(tmp_path, key, index, value):
    path = tmp_path / "streams.npz"
    t = filled_table([f"s{i}" for i in range(5)])
    save_snapshot(path, t, SHA, "stream")

    def poison(arrays: dict[str, np.ndarray]) -> None:
        arrays[key][index] = value

    rewrite(path, poison)
    fresh = empty_like(t)
    with pytest.raises(SnapshotError) as e:
        load_snapshot(path, fresh, SHA, "stream")
    text = str(e.value)
    assert "\n" not in text and str(path) in text and "non-finite" in text
    assert f"in {key}" in text and f"stream 's{index[0]}'" in text
    assert len(fresh) == 0  # nothing half-applied


def test_a_format_1_snapshot_is_restored_and_refused_when_it_holds_nan(tmp_path):
    """What the daemon wrote until now (meta as a numpy unicode string) still restores; the same
    file with a NaN state does not."""
    path = tmp_path / "streams.npz"
    t = filled_table(["a", "b", "ü"])
    save_snapshot(path, t, SHA, "stream")

    def as_format_1(arrays: dict[str, np.ndarray]) -> None:
        raw = arrays["meta"]
        meta = json.loads(raw.tobytes().decode() if raw.dtype == np.uint8 else str(raw))
        arrays["meta"] = np.array(json.dumps({**meta, "format": 1}))

    rewrite(path, as_format_1)
    fresh = empty_like(t)
    assert load_snapshot(path, fresh, SHA, "stream")[0] == 3
    assert fresh.streams() == ["a", "b", "ü"]
    np.testing.assert_array_equal(fresh.states[0][fresh.get("ü")], t.states[0][t.get("ü")])

    def poison(arrays: dict[str, np.ndarray]) -> None:
        arrays["state0"][1, 1] = math.nan

    rewrite(path, poison)
    with pytest.raises(SnapshotError, match=r"non-finite.*'b'"):
        load_snapshot(path, empty_like(t), SHA, "stream")


def test_save_leaves_out_a_stream_with_non_finite_state(tmp_path):
    path = tmp_path / "streams.npz"
    t = filled_table(["a", "b", "c"])
    t.states[1][t.get("b")] = math.nan
    assert save_snapshot(path, t, SHA, "stream") == 2
    fresh = empty_like(t)
    assert load_snapshot(path, fresh, SHA, "stream")[0] == 2
    assert fresh.streams() == ["a", "c"]


def test_snapshot_size_follows_the_names_utf8_bytes(tmp_path):
    # 10,000-character names, ASCII and not (2, 3 and 4 UTF-8 bytes per character), one short
    names = [c * 10_000 for c in "abcüé€😀"] + ["x"] + [f"{i:04d}" + "m" * 9_996 for i in range(8)]
    t = filled_table(names)
    path = tmp_path / "streams.npz"
    assert save_snapshot(path, t, SHA, "stream") == len(names)
    utf8 = sum(len(n.encode()) for n in names)
    n = len(names)
    arrays = n * (t.buf[0].nbytes + 3 * 8 + sum(s[0].nbytes for s in t.states))
    size = path.stat().st_size
    # the names' UTF-8 bytes, the arrays, and a few KB of zip and npy headers and meta; not 4
    # bytes per character (or per character of the longest name, for every stream)
    assert utf8 < size <= utf8 + arrays + 8192, (size, utf8)
    fresh = empty_like(t)
    assert load_snapshot(path, fresh, SHA, "stream")[0] == n
    assert fresh.streams() == names


def test_snapshot_names_round_trip_whatever_they_hold(tmp_path):
    names = ['quote " and \\ backslash', "new\nline", "tab\t", "\x00nul", "\ud800 lone surrogate"]
    t = filled_table(names)
    path = tmp_path / "streams.npz"
    save_snapshot(path, t, SHA, "window")
    fresh = empty_like(t)
    load_snapshot(path, fresh, SHA, "window")
    assert fresh.streams() == names
    with np.load(path) as z:
        assert z["meta"].dtype == np.uint8  # UTF-8 bytes, not a numpy unicode string
