"""Snapshots and the outbox file: round trips, refusals, atomicity, file modes."""

from __future__ import annotations

import math
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.edge.path.streams import StreamTable
from seqcast.edge.service.outbox import load_outbox, save_outbox
from seqcast.edge.service.snapshot import SnapshotError, load_snapshot, save_snapshot


def filled_table(
    n_streams: int = 5, seq_len: int = 4, capacity: int = 10, seed: int = 0
) -> StreamTable:
    rng = np.random.default_rng(seed)
    t = StreamTable(capacity, seq_len, 2, [(3,), (3,)], max_gap_s=100.0)
    for i in range(n_streams):
        slot = t.lookup(f"s{i}")
        for k in range(i + 2):
            t.admit(slot, float(k))
            t.push(slot, rng.normal(size=2).astype(np.float32))
        for s in t.states:
            s[slot] = rng.normal(size=3)
    return t


def same_streams(a: StreamTable, b: StreamTable) -> None:
    assert [n for n, _ in a.items()] == [n for n, _ in b.items()]
    for (name, sa), (_, sb) in zip(a.items(), b.items(), strict=True):
        np.testing.assert_array_equal(a.history(sa), b.history(sb), err_msg=name)
        assert a.count[sa] == b.count[sb] and a.last_ts[sa] == b.last_ts[sb]
        for x, y in zip(a.states, b.states, strict=True):
            np.testing.assert_array_equal(x[sa], y[sb])


def test_snapshot_round_trip_and_mode(tmp_path):
    t = filled_table()
    path = tmp_path / "streams.npz"
    assert save_snapshot(path, t, "ab" * 32, "stream") == 5
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    fresh = StreamTable(10, 4, 2, [(3,), (3,)], max_gap_s=100.0)
    n, age = load_snapshot(path, fresh, "ab" * 32, "stream")
    assert n == 5 and 0 <= age < 60
    same_streams(t, fresh)
    assert fresh.counters.created == 0  # restored streams are not counted as new


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sha": "cd" * 32}, "taken with another bundle"),
        ({"mode": "window"}, "mode is 'stream'"),
        ({"seq_len": 5}, "seq_len is 4"),
        ({"shapes": [(4,), (4,)]}, "state_shapes"),
    ],
)
def test_snapshot_for_another_model_is_refused(tmp_path, kwargs, message):
    path = tmp_path / "s.npz"
    save_snapshot(path, filled_table(), "ab" * 32, "stream")
    table = StreamTable(10, kwargs.get("seq_len", 4), 2, kwargs.get("shapes", [(3,), (3,)]))
    with pytest.raises(SnapshotError, match=message):
        load_snapshot(path, table, kwargs.get("sha", "ab" * 32), kwargs.get("mode", "stream"))
    assert len(table) == 0  # nothing half-applied


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_snapshot_is_refused(tmp_path, damage):
    path = tmp_path / "s.npz"
    save_snapshot(path, filled_table(), "ab" * 32, "stream")
    data = path.read_bytes()
    path.write_bytes(
        {"truncate": data[: len(data) // 2], "garbage": b"\x00" * 100, "empty": b""}[damage]
    )
    table = StreamTable(10, 4, 2, [(3,), (3,)])
    with pytest.raises(SnapshotError, match="unreadable"):
        load_snapshot(path, table, "ab" * 32, "stream")
    assert len(table) == 0


def test_snapshot_into_a_smaller_table_keeps_the_most_recent(tmp_path):
    path = tmp_path / "s.npz"
    save_snapshot(path, filled_table(n_streams=6), "ab" * 32, "stream")
    small = StreamTable(3, 4, 2, [(3,), (3,)])
    assert load_snapshot(path, small, "ab" * 32, "stream")[0] == 3
    assert small.streams() == ["s3", "s4", "s5"]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 12), seed=st.integers(0, 1000))
def test_snapshot_round_trip_property(tmp_path_factory, n, seed):
    path = tmp_path_factory.mktemp("p") / "s.npz"
    t = filled_table(n_streams=n, capacity=12, seed=seed)
    save_snapshot(path, t, "00" * 32, "window")
    fresh = StreamTable(12, 4, 2, [(3,), (3,)], max_gap_s=100.0)
    load_snapshot(path, fresh, "00" * 32, "window")
    same_streams(t, fresh)
    assert all(math.isfinite(fresh.last_ts[s]) for _, s in fresh.items())


def test_outbox_round_trip_bound_and_mode(tmp_path):
    path = tmp_path / "outbox.jsonl"
    items = [
        (f"forecasts/m{i}", b'{"stream":"m%d","ts":%d.0}' % (i, i), 1, False) for i in range(100)
    ]
    kept, dropped = save_outbox(path, items, max_bytes=2000)
    assert kept + dropped == 100 and 0 < kept < 100 and path.stat().st_size <= 2000
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = load_outbox(path)
    assert [i.topic for i in loaded] == [t for t, *_ in items[:kept]]  # oldest first, in order
    assert loaded[0].payload == b'{"stream":"m0","ts":0.0,"redelivered":true}'
    save_outbox(path, [], max_bytes=2000)
    assert not path.exists() and load_outbox(path) == []


def test_outbox_skips_unreadable_lines(tmp_path, caplog):
    path = tmp_path / "outbox.jsonl"
    path.write_bytes(b'{"topic": "a", "payload": "{}", "qos": 1, "retain": false}\nnot json\n')
    assert [i.topic for i in load_outbox(path)] == ["a"]
    assert "1 unreadable lines skipped" in caplog.text
