"""The grid aligner (edge/path/align.py): raw samples in, one step per model interval out."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcast.edge.counters import Counters
from seqcast.edge.path.align import Aligner, Item
from seqcast.edge.timegrid import MONTH_S, Grid

H = 3600.0
T0 = 1_700_006_400.0  # on the hourly grid (2023-11-15 00:00 UTC)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make(  # fmt: skip
    mode: str = "mean", max_fill: int = 3, capacity: int = 100, f: int = 1, grid: Grid | None = None
) -> tuple[Aligner, Counters]:
    reg = Counters()
    g = grid or Grid.fixed(H)
    return Aligner(g, mode, max_fill, g.interval_s, capacity, f, reg.view("streams_")), reg


def feed(al: Aligner, samples: list[tuple[float, float]], stream: str = "s") -> list[Item]:
    """One sample per call, arriving a second apart: every step they emit."""
    out: list[Item] = []
    for ts, v in samples:
        out += al.process([(stream, ts, (v,))], arrival=al.clock + 1 if al.clock > 0 else 1.0)
    return out


def steps(items: list[Item]) -> list[tuple[float, tuple[float, ...]]]:
    return [(ts, v) for _, ts, v in items]


def test_ten_minute_samples_into_an_hourly_grid_give_the_hours_mean_labelled_on_the_hour() -> None:
    al, reg = make()
    emitted = [steps(feed(al, [(T0 + 600 * i, float(i))])) for i in range(18)]
    # only the first sample of each later hour steps the hour before; 11:00 itself waits
    assert emitted[6] == [(T0, (2.5,))] and emitted[12] == [(T0 + H, (8.5,))]
    assert sum(map(len, emitted)) == 2 and al.pending() == 1
    assert steps(al.flush_due(math.inf)) == [(T0 + 2 * H, (14.5,))]
    assert reg["streams_aligned"] == 15 and reg["streams_dropped_stale"] == 0


def test_an_off_grid_sensor_waits_for_the_next_bucket_even_when_it_hits_a_label() -> None:
    al, _ = make()
    assert feed(al, [(T0 - 600, 1.0)]) == []  # 09:50
    assert steps(feed(al, [(T0, 2.0)])) == [(T0 - H, (1.0,))]  # 10:00 closes 09:00, not itself
    assert feed(al, [(T0 + 600, 3.0), (T0 + 1200, 4.0)]) == []
    assert steps(feed(al, [(T0 + H, 5.0)])) == [(T0, (3.0,))]  # 11:00 waits: 10:50 was off
    assert steps(feed(al, [(T0 + H + 600, 7.0)])) == []
    assert steps(feed(al, [(T0 + 2 * H, 8.0)])) == [(T0 + H, (6.0,))]
    hourly, _ = make()  # ...and a sensor at xx:05 waits one bucket each time
    assert feed(hourly, [(T0 + 300, 1.0)]) == []
    assert steps(feed(hourly, [(T0 + H + 300, 2.0)])) == [(T0, (1.0,))]


def test_a_sensor_on_the_grid_is_stepped_at_once_from_its_second_sample() -> None:
    al, reg = make()
    assert feed(al, [(T0, 1.0)]) == [] and al.pending() == 1  # the first cannot know
    assert steps(feed(al, [(T0 + H, 2.0)])) == [(T0, (1.0,)), (T0 + H, (2.0,))]
    assert steps(feed(al, [(T0 + 2 * H, 3.0)])) == [(T0 + 2 * H, (3.0,))]
    assert al.pending() == 0
    # a lost message does not break the streak: the hole is filled and the sample stepped
    assert steps(feed(al, [(T0 + 4 * H, 5.0)])) == [(T0 + 3 * H, (4.0,)), (T0 + 4 * H, (5.0,))]
    # a redelivered duplicate is stale, and keeps the streak
    assert feed(al, [(T0 + 4 * H, 5.0)]) == [] and reg["streams_dropped_stale"] == 1
    # a sample from a wrong clock (far older, off its label) is stale and keeps it too
    assert feed(al, [(T0 - 1000 * H + 60, 0.0)]) == [] and reg["streams_dropped_stale"] == 2
    assert steps(feed(al, [(T0 + 5 * H, 6.0)])) == [(T0 + 5 * H, (6.0,))]
    # a stale sample off its label inside the interval just stepped ends it: the next waits
    assert feed(al, [(T0 + 5 * H + 60, 0.0)]) == [] and reg["streams_dropped_stale"] == 3
    assert feed(al, [(T0 + 6 * H, 7.0)]) == []
    # and so does an off-label sample joining it
    assert feed(al, [(T0 + 6 * H + 60, 8.0)]) == []
    assert steps(feed(al, [(T0 + 7 * H, 9.0)])) == [(T0 + 6 * H, (7.5,))]
    assert feed(al, [(T0 + 8 * H + 60, 1.0)]) == [("s", T0 + 7 * H, (9.0,))]
    assert feed(al, [(T0 + 9 * H, 2.0)]) == [("s", T0 + 8 * H, (1.0,))]  # off before: waits
    assert al.pending() == 1


def test_last_takes_the_latest_timestamp_and_a_duplicate_is_dropped() -> None:
    samples = [(T0 + 1200, 2.0), (T0 + 600, 1.0), (T0 + 1200, 6.0), (T0 + H + 1, 0.0)]
    last, reg = make("last")
    assert steps(feed(last, samples)) == [(T0, (2.0,))]  # the latest ts; its repeat is dropped
    assert reg["streams_aligned"] == 1 and reg["streams_dropped_stale"] == 1
    mean, _ = make("mean")
    assert steps(feed(mean, samples)) == [(T0, (1.5,))]  # (2 + 1) / 2: a repeat never counts


def test_flush_due_steps_an_open_bucket_after_grace_of_silence() -> None:
    al, reg = make()  # grace: one interval, 3600 s
    assert al.process([("a", T0 + 600, (1.0,))], arrival=100.0) == []
    assert al.process([("b", T0 + 600, (2.0,)), ("c", T0 + 60, (3.0,))], arrival=200.0) == []
    assert al.process([("a", T0 + 700, (3.0,))], arrival=300.0) == []  # a's deadline moves on
    assert al.flush_due(3799.0) == [] and al.pending() == 3
    assert al.flush_due(3800.0) == [("b", T0, (2.0,)), ("c", T0, (3.0,))]
    assert al.flush_due(3899.0) == [] and al.flush_due(3900.0) == [("a", T0, (2.0,))]
    assert al.process([("a", T0 + 1200, (9.0,))], arrival=3901.0) == []  # too late: stale
    assert reg["streams_dropped_stale"] == 1 and al.pending() == 0


def test_arrivals_never_run_backwards_and_a_restored_bucket_keeps_its_grace() -> None:
    al, _ = make()
    al.process([("a", T0 + 1, (1.0,))], arrival=1000.0)
    al.process([("b", T0 + 1, (2.0,))], arrival=500.0)  # taken as 1000
    state = al.export(now=2000.0)
    assert state["silent_s"].tolist() == [1000.0, 1000.0]
    fresh, _ = make()
    fresh.restore(state, now=5.0)
    assert fresh.flush_due(5.0 + 2599) == [] and fresh.pending() == 2
    assert fresh.flush_due(5.0 + 2600) == [("a", T0, (1.0,)), ("b", T0, (2.0,))]


def test_flush_streams_replays_a_recorded_flush() -> None:
    al, _ = make()
    al.process([("a", T0 + 1, (1.0,)), ("b", T0 + 2, (2.0,))], arrival=1.0)
    assert al.flush_streams(["b", "nobody"]) == [("b", T0, (2.0,))] and al.pending() == 1


def interp_like_the_trainer(first: tuple[float, ...], last: tuple[float, ...], gap: int) -> list:
    values = np.full((gap + 1, len(first)), np.nan)
    values[0], values[gap] = first, last
    idx, m = np.arange(gap + 1), np.isnan(values[:, 0])
    for j in range(values.shape[1]):
        values[m, j] = np.interp(idx[m], idx[~m], values[~m, j])
    return [tuple(row) for row in values[1:gap].tolist()]


@pytest.mark.parametrize(("max_fill", "missing"), [(2, 2), (3, 3), (3, 1), (6, 5)])
def test_a_hole_up_to_max_fill_is_filled_exactly_as_np_interp_on_the_grid(
    max_fill: int, missing: int
) -> None:
    al, reg = make(max_fill=max_fill, f=2)
    a, b = (0.1, 7.0), (1.0, -3.3)
    al.process([("s", T0 + 10, a)], arrival=1.0)
    gap = missing + 1
    out = al.process([("s", T0 + gap * H + 10, b)], arrival=2.0)  # steps T0 (no fill before it)
    out += al.flush_due(math.inf)
    fills = interp_like_the_trainer(a, b, gap)
    assert out == [("s", T0, a)] + [("s", T0 + j * H, fills[j - 1]) for j in range(1, gap)] + [
        ("s", T0 + gap * H, b)
    ]
    assert reg["streams_filled"] == missing


@pytest.mark.parametrize(("max_fill", "missing"), [(2, 3), (0, 1)])
def test_a_hole_longer_than_max_fill_is_not_filled(max_fill: int, missing: int) -> None:
    al, reg = make(max_fill=max_fill)
    out = feed(al, [(T0, 1.0), (T0 + H, 2.0), (T0 + (missing + 2) * H, 3.0)])
    assert [ts for ts, _ in steps(out)] == [T0, T0 + H, T0 + (missing + 2) * H]
    assert reg["streams_filled"] == 0


def test_stale_samples_are_dropped_and_counted() -> None:
    al, reg = make(max_fill=0)
    assert steps(feed(al, [(T0 + 60, 1.0), (T0 + H + 60, 2.0)])) == [(T0, (1.0,))]
    assert feed(al, [(T0 + 120, 5.0), (T0 - 2 * H, 5.0)]) == []  # stepped bucket, and older
    assert steps(feed(al, [(T0 + 3 * H + 1, 3.0)])) == [(T0 + H, (2.0,))]
    assert feed(al, [(T0 + 2 * H + 1, 5.0)]) == []  # never stepped, but older than the open one
    assert reg["streams_dropped_stale"] == 3 and reg["streams_aligned"] == 0
    assert steps(al.flush_due(math.inf)) == [(T0 + 3 * H, (3.0,))]


def test_a_month_grid_with_daily_samples_gives_month_start_labels() -> None:
    grid = Grid.months(1, "start")
    al, _ = make(grid=grid)
    assert al.grace_s == MONTH_S
    days = np.arange("2024-01-01", "2024-04-01", dtype="datetime64[D]")
    ts = (days.astype("datetime64[s]").astype(np.int64) + 43200).astype(float)  # noon
    out = feed(al, [(t, float(i)) for i, t in enumerate(ts.tolist())]) + al.flush_due(math.inf)
    months = days.astype("datetime64[M]")
    starts = np.unique(months).astype("datetime64[s]").astype(np.int64).astype(float)
    means = [float(np.arange(len(days))[months == m].mean()) for m in np.unique(months)]
    assert steps(out) == [(s, (m,)) for s, m in zip(starts.tolist(), means, strict=True)]


def test_eviction_steps_the_least_recently_heard_stream_and_forget_drops_one() -> None:
    al, _ = make(capacity=2)
    al.process([("a", T0 + 1, (1.0,)), ("b", T0 + 2, (2.0,)), ("a", T0 + 3, (3.0,))], 1.0)
    assert al.process([("c", T0 + 4, (4.0,))], 2.0) == [("b", T0, (2.0,))]
    assert len(al) == 2 and al.latest("b") is None and al.latest("a") == T0 + 3
    al.forget("a")  # gone without a step
    assert len(al) == 1 and al.flush_due(math.inf) == [("c", T0, (4.0,))]


def test_output_keeps_stream_order_and_arrival_order_across_streams() -> None:
    al, _ = make()
    al.process([("a", T0 + 1, (1.0,)), ("b", T0 + 2, (2.0,))], 1.0)
    batch = [("b", T0 + H + 1, (3.0,)), ("a", T0 + 2 * H + 1, (4.0,)), ("a", T0 + 5, (0.0,))]
    assert al.process(batch, 2.0) == [("b", T0, (2.0,)), ("a", T0, (1.0,))]
    assert al.flush_due(math.inf) == [("b", T0 + H, (3.0,)), ("a", T0 + H, (2.5,)), (
        "a", T0 + 2 * H, (4.0,))]  # fmt: skip


def test_off_passes_every_sample_through() -> None:
    al, reg = make("off")
    batch = [("a", T0 + 1, (1.0,)), ("a", T0 + 1, (2.0,)), ("a", T0 - H, (3.0,))]
    assert al.process(batch, 1.0) == batch and al.flush_due(math.inf) == []
    assert al.pending() == 0 and reg["streams_dropped_stale"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "median"}, {"max_fill": -1}, {"max_fill": 1.5}, {"grace_s": 0.0},
     {"grace_s": math.inf}, {"capacity": 0}, {"n_features": 0}],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"mode": "mean", "max_fill": 3, "grace_s": H, "capacity": 10}
    args |= {"n_features": 1} | kwargs
    with pytest.raises(ValueError):
        Aligner(Grid.fixed(H), **args)  # type: ignore[arg-type]


def scenario() -> tuple[list[list[Item]], list[float]]:
    rng = np.random.default_rng(7)
    chunks = []
    for c in range(40):
        chunk = []
        for _ in range(5):
            s = int(rng.integers(0, 6))
            on = s < 2  # streams 0 and 1 report on the grid
            t = T0 + (c // 3 + s) * H + (0.0 if on else float(rng.integers(1, 3600)))
            chunk.append((f"s{s}-é", t, (float(rng.normal()), float(rng.normal()))))
        chunks.append(chunk)
    return chunks, [1000.0 * c for c in range(40)]


def run(al: Aligner, chunks: list[list[Item]], arrivals: list[float], shift: float) -> list:
    out = []
    for chunk, t in zip(chunks, arrivals, strict=True):
        out.append(al.process(chunk, t + shift) + al.flush_due(t + shift + 500))
    return out


def test_export_restore_round_trip_continues_exactly() -> None:
    chunks, arrivals = scenario()
    a, _ = make(f=2, capacity=5)
    run(a, chunks[:20], arrivals[:20], 0.0)
    state = a.export(now=arrivals[19] + 600)
    assert state["open_values"].dtype == np.float64 and state["count"].dtype == np.int64
    assert a.pending() > 0 and len(a) == 5
    order = list(a.states)
    b, _ = make(f=2, capacity=5)
    assert b.restore(state, now=50.0) == 5  # after a reboot: another monotonic clock
    again = b.export(now=50.0)
    assert all(np.array_equal(again[k], v) and again[k].dtype == v.dtype for k, v in state.items())
    shift = 50.0 - (arrivals[19] + 600)
    assert run(b, chunks[20:], arrivals[20:], shift) == run(a, chunks[20:], arrivals[20:], 0.0)
    small, _ = make(f=2, capacity=2)
    assert small.restore(state, now=0.0) == 2 and list(small.states) == order[-2:]


def corrupt(state: dict[str, np.ndarray], key: str, how: str) -> None:
    if how == "drop":
        del state[key]
    elif how == "shape":
        state[key] = state[key][:, :1] if state[key].ndim == 2 else state[key][:-1]
    elif how == "offgrid":
        state[key] = state[key] + 1.0
    else:
        state[key] = state[key].astype(float if how != "neg" else state[key].dtype)
        state[key][0] = {"nan": math.nan, "inf": math.inf, "neg": -1.0}[how]


@pytest.mark.parametrize(
    ("key", "how", "message"),
    [("open_values", "nan", "NaN"), ("stepped_label", "inf", "infinity"),
     ("latest_ts", "nan", "NaN"), ("open_values", "shape", "shape"), ("count", "neg", ">= 0"),
     ("silent_s", "neg", ">= 0"), ("name_len", "shape", "add up"),
     ("open_label", "drop", "missing"), ("open_label", "offgrid", "another grid")],
)  # fmt: skip
def test_restore_refuses_unsound_state_and_keeps_its_own(key: str, how: str, message: str) -> None:
    a, _ = make(f=2)
    a.process([("x", T0 + 1, (1.0, 2.0)), ("x", T0 + H + 1, (3.0, 4.0))], 1.0)
    state = a.export(now=2.0)
    corrupt(state, key, how)
    b, _ = make(f=2)
    b.process([("mine", T0 + 1, (1.0, 2.0))], 1.0)
    with pytest.raises(ValueError, match=message):
        b.restore(state, now=3.0)
    assert list(b.states) == ["mine"] and b.pending() == 1


# -- properties ----------------------------------------------------------------------------------
VALUE = st.floats(-1e6, 1e6, allow_nan=False)
OFFSET = st.one_of(st.just(0.0), st.floats(0.5, H - 0.5))  # on the label, or anywhere off it


@st.composite
def grid_series(draw: st.DrawFn) -> tuple[Grid, list[int], list[tuple[float, float]], list]:
    """A grid, bucket indices in time order (holes allowed), a value per bucket, and each
    bucket's samples: any number, on or off the label, in any order."""
    grid = Grid.fixed(H, origin=draw(st.sampled_from([0.0, 900.0, 1234.5])))
    gaps = draw(st.lists(st.integers(1, 8), min_size=1, max_size=10))
    ks = (np.cumsum(gaps) + 472_000).tolist()
    values = [(draw(VALUE), draw(VALUE)) for _ in ks]
    offsets = [draw(st.lists(OFFSET, min_size=1, max_size=4)) for _ in ks]
    return grid, ks, values, offsets


@PROPERTY
@given(
    case=grid_series(),
    mode=st.sampled_from(["mean", "last"]),
    max_fill=st.integers(0, 6),
    cuts=st.lists(st.tuples(st.booleans(), st.floats(0.0, 2.5 * H)), min_size=40, max_size=40),
)
def test_any_interleaving_of_a_grid_series_gives_the_clean_series(
    case: tuple[Grid, list[int], list[tuple[float, float]], list[list[float]]],
    mode: str,
    max_fill: int,
    cuts: list[tuple[bool, float]],
) -> None:
    grid, ks, values, offsets = case
    al, reg = make(mode, max_fill=max_fill, f=2, grid=grid)
    samples = [
        ("s", grid.point(k) + off, v)
        for k, v, offs in zip(ks, values, offsets, strict=True)
        for off in offs
    ]
    out: list[Item] = []
    chunk: list[Item] = []
    now = 0.0
    for i, sample in enumerate(samples):  # cut into chunks, with silences that flush
        chunk.append(sample)
        end, pause = cuts[i % len(cuts)]
        if end:
            out += al.process(chunk, now) + al.flush_due(now + pause)
            chunk, now = [], now + pause
    out += al.process(chunk, now) + al.flush_due(math.inf)
    # the clean series, with holes of up to max_fill filled by np.interp on the grid (as trained)
    want = []
    for i, (k, v) in enumerate(zip(ks, values, strict=True)):
        gap = k - ks[i - 1] if i else 0
        if 1 < gap <= max_fill + 1:
            fills = interp_like_the_trainer(values[i - 1], v, gap)
            want += [(grid.point(ks[i - 1] + j), fills[j - 1]) for j in range(1, gap)]
        want.append((grid.point(k), v))
    assert steps(out) == want
    assert al.pending() == 0
    stepped_from_samples = len(ks)
    assert len(samples) == stepped_from_samples + reg["streams_aligned"] + reg[
        "streams_dropped_stale"]  # fmt: skip


@PROPERTY
@given(
    seconds=st.lists(st.integers(0, 20 * 3600 - 1), min_size=1, max_size=60),
    values=st.lists(VALUE, min_size=60, max_size=60),
    mode=st.sampled_from(["mean", "last"]),
    chunk=st.integers(1, 60),
)
def test_mean_is_a_groupby_mean_over_buckets(
    seconds: list[int], values: list[float], mode: str, chunk: int
) -> None:
    # off the labels (an on-label streak may step a bucket at once: the property above)
    ts = np.sort(np.array([s if s % 3600 else s + 1 for s in seconds], np.float64))
    v = np.array(values[: len(ts)])
    repeats = len(ts) - len(np.unique(ts))  # a repeated timestamp is dropped, not averaged
    al, reg = make(mode, max_fill=0, grid=Grid.fixed(H))
    items = [("s", t, (x,)) for t, x in zip(ts.tolist(), v.tolist(), strict=True)]
    out: list[Item] = []
    for lo in range(0, len(items), chunk):
        out += al.process(items[lo : lo + chunk], float(lo))
    out += al.flush_due(math.inf)
    _, first = np.unique(ts, return_index=True)
    ts, v = ts[first], v[first]
    buckets, inverse = np.unique(ts // H, return_inverse=True)
    if mode == "mean":
        want = np.bincount(inverse, weights=v) / np.bincount(inverse)
    else:
        want = v[np.r_[np.flatnonzero(np.diff(inverse)), len(v) - 1]]
    assert [t for t, _ in steps(out)] == (buckets * H).tolist()
    got = np.array([x for _, (x,) in steps(out)])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * (1 + np.abs(v).max()))
    assert reg["streams_aligned"] == len(ts) - len(buckets)
    assert reg["streams_dropped_stale"] == repeats


@PROPERTY
@given(
    seconds=st.lists(st.integers(1_672_531_200, 1_735_689_600), min_size=1, max_size=40),
    anchor=st.sampled_from(["start", "end"]),
    months=st.sampled_from([1, 3]),
)
def test_calendar_buckets_are_the_grids_floor(seconds: list[int], anchor: str, months: int) -> None:
    grid = Grid.months(months, anchor)  # type: ignore[arg-type]
    al, _ = make(max_fill=0, grid=grid)
    ts = [s + 0.5 for s in seconds]  # never on a label (midnight); a stream each, any order
    out = al.process([(f"s{i}", t, (1.0,)) for i, t in enumerate(ts)], 0.0)
    out += al.flush_due(math.inf)
    assert [t for t, _ in steps(out)] == [grid.floor(t) for t in ts]
