"""Stream table and engine: ring buffers, policies, and batched == one-at-a-time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.edge.path.engine import Engine, Scaling
from seqcast.edge.path.streams import StreamTable, Verdict


class LinearModel:
    """A tiny recurrent model with the same interface as a TFLite bundle (exact in float32)."""

    def __init__(self, horizon: int = 2):
        self.horizon = horizon
        self.calls: list[int] = []

    def step(self, x, states):
        (h,) = states  # (B, 1)
        self.calls.append(len(x))
        new = (0.5 * h + x.sum(axis=1, keepdims=True)).astype(np.float32)
        y = (
            np.repeat(new[:, None, :], self.horizon, axis=1)
            * np.arange(1, self.horizon + 1)[None, :, None]
        )
        return y.astype(np.float32), [new]

    def window(self, x):
        self.calls.append(len(x))
        h = np.zeros((len(x), 1), np.float32)
        for t in range(x.shape[1]):
            xt = np.where(x[:, t] > 1e8, 0.0, x[:, t])  # masked rows leave the state alone
            h = np.where(
                (x[:, t] > 1e8).all(axis=1, keepdims=True),
                h,
                0.5 * h + xt.sum(axis=1, keepdims=True),
            )
        y = (
            np.repeat(h[:, None, :], self.horizon, axis=1)
            * np.arange(1, self.horizon + 1)[None, :, None]
        )
        return y.astype(np.float32)


SCALING = Scaling(np.array([1.0, 2.0]), np.array([2.0, 4.0]), np.array([10.0]), np.array([3.0]))


def make_engine(
    mode="stream", capacity=100, seq_len=4, min_history=4, max_gap_s=math.inf, policy="drop"
):
    table = StreamTable(capacity, seq_len, 2, [(1,)], max_gap_s=max_gap_s, out_of_order=policy)
    return Engine(LinearModel(), table, SCALING, mode, min_history, 1e9)


def stream_items(n_streams=5, n=20, seed=0):
    rng = np.random.default_rng(seed)
    items = []
    for t in range(n):
        for s in rng.permutation(n_streams):
            items.append((f"s{s}", 1000.0 + 10 * t, tuple(rng.normal(size=2).round(3))))
    return items


def by_stream(forecasts):
    out: dict[str, list] = {}
    for f in forecasts:
        out.setdefault(f.stream, []).append((f.ts, f.values.tolist()))
    return out


@pytest.mark.parametrize("mode", ["stream", "window"])
@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_batched_equals_one_at_a_time(mode, chunk):
    items = stream_items()
    single = make_engine(mode)
    ref = [f for it in items for f in single.process([it])]
    batched = make_engine(mode)
    got = [f for i in range(0, len(items), chunk) for f in batched.process(items[i : i + chunk])]
    assert by_stream(got) == by_stream(ref)
    assert len(ref) == 5 * (20 - 3)  # warm after seq_len samples
    if chunk > 1:
        assert max(batched.model.calls) > 1  # it really batched


def test_forecasts_are_in_original_units():
    e = make_engine()
    items = [("a", float(t), (1.0 + 2.0 * t, 2.0)) for t in range(4)]  # scaled: (t, 0)
    (f,) = e.process(items)
    h = 0.0
    for t in range(4):
        h = 0.5 * h + t
    np.testing.assert_allclose(f.values[:, 0], [h * 3 + 10, 2 * h * 3 + 10], rtol=1e-6)
    assert f.ts == 3.0 and f.stream == "a"


def test_window_and_stream_modes_agree_at_warm_up():
    items = [("a", float(t), (float(t), 1.0)) for t in range(4)]
    (fs,) = make_engine("stream").process(items)
    (fw,) = make_engine("window").process(items)
    np.testing.assert_allclose(fs.values, fw.values, rtol=1e-6)


def test_min_history_masks_short_windows():
    e = make_engine("window", min_history=2)
    out = e.process([("a", float(t), (float(t), 0.0)) for t in range(4)])
    assert [f.ts for f in out] == [1.0, 2.0, 3.0]
    s = make_engine("stream", min_history=2).process(
        [("a", float(t), (float(t), 0.0)) for t in range(4)]
    )
    for fw, fs in zip(out, s, strict=True):
        np.testing.assert_allclose(fw.values, fs.values, rtol=1e-6)


def test_duplicates_and_late_samples_are_dropped_and_counted():
    e = make_engine(min_history=1)
    out = e.process(
        [("a", 1.0, (0, 0)), ("a", 1.0, (0, 0)), ("a", 0.5, (0, 0)), ("a", 2.0, (0, 0))]
    )
    assert [f.ts for f in out] == [1.0, 2.0]
    c = e.table.counters
    assert c.dropped_duplicate == 1 and c.dropped_late == 1


def test_out_of_order_reset_policy():
    e = make_engine(min_history=2, policy="reset")
    out = e.process([("a", float(t), (0, 0)) for t in (1, 2, 3, 0, 4)])
    assert [f.ts for f in out] == [2.0, 3.0, 4.0]  # 0 restarted warm-up, 4 completes it
    assert e.table.counters.resets_out_of_order == 1


def test_gap_resets_the_stream_and_restarts_warm_up():
    e = make_engine(max_gap_s=25.0)
    first = e.process([("a", 10.0 * t, (1, 1)) for t in range(6)])
    assert len(first) == 3
    after_gap = e.process([("a", 1000.0 + 10 * t, (1, 1)) for t in range(5)])
    assert [f.ts for f in after_gap] == [1030.0, 1040.0]
    assert e.table.counters.resets_gap == 1
    # same values as a fresh stream: the state really was zeroed
    fresh = make_engine().process([("b", 10.0 * t, (1, 1)) for t in range(4)])
    np.testing.assert_array_equal(after_gap[0].values, fresh[0].values)


def test_gap_inside_one_batch_equals_sequential():
    items = [("a", 10.0 * t, (t, 1)) for t in range(6)] + [
        ("a", 500.0 + 10 * t, (t, 2)) for t in range(6)
    ]
    seq = make_engine(max_gap_s=25.0)
    ref = [f for it in items for f in seq.process([it])]
    got = make_engine(max_gap_s=25.0).process(items)
    assert by_stream(got) == by_stream(ref)


def test_lru_eviction_is_counted_and_bounded():
    e = make_engine(capacity=3, min_history=1)
    for i in range(10):
        e.process([(f"s{i}", 1.0, (0, 0))])
    assert len(e.table) == 3 and e.table.streams() == ["s7", "s8", "s9"]
    assert e.table.counters.evicted == 7 and e.table.counters.created == 10


def test_more_streams_in_one_batch_than_capacity_equals_sequential():
    items = stream_items(n_streams=6, n=10)
    seq = make_engine(capacity=4, min_history=2)
    ref = [f for it in items for f in seq.process([it])]
    got = make_engine(capacity=4, min_history=2).process(items)
    assert by_stream(got) == by_stream(ref)


def test_table_rejects_bad_settings():
    with pytest.raises(ValueError, match="max_streams must be >= 1, got 0"):
        StreamTable(0, 4, 1, [])
    with pytest.raises(ValueError, match="out_of_order"):
        StreamTable(1, 4, 1, [], out_of_order="keep")


@settings(max_examples=200, deadline=None)
@given(
    seq_len=st.integers(1, 9),
    values=st.lists(st.floats(-1e6, 1e6, width=32), min_size=1, max_size=40),
)
def test_ring_buffer_window_is_the_last_samples(seq_len, values):
    t = StreamTable(2, seq_len, 1, [])
    slot = t.lookup("x")
    for v in values:
        t.push(slot, np.array([v], np.float32))
    n = min(len(values), seq_len)
    np.testing.assert_array_equal(t.history(slot)[:, 0], np.array(values[-n:], np.float32))
    assert t.window(slot).shape == (seq_len, 1)
    if len(values) >= seq_len:
        np.testing.assert_array_equal(t.window(slot)[:, 0], np.array(values[-seq_len:], np.float32))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.floats(0, 100, allow_nan=False)), max_size=60))
def test_admit_never_accepts_time_going_backwards(events):
    t = StreamTable(4, 3, 1, [], max_gap_s=10.0)
    last: dict[int, float] = {}
    for stream, ts in events:
        slot = t.lookup(str(stream))
        v = t.admit(slot, ts)
        if stream in last and ts <= last[stream]:
            assert v in (Verdict.DUPLICATE, Verdict.LATE)
        else:
            assert v in (Verdict.ACCEPT, Verdict.RESET)
            assert (v is Verdict.RESET) == (stream in last and ts - last[stream] > 10.0)
            last[stream] = ts
