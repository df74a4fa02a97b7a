"""Live forecast quality (edge/path/quality.py) against the offline computation of
tests/quality_reference.py: the scorer alone on random forecasts (many streams, waves of
distinct slots, blocks rolling, drift flagged and cleared), then the real pipeline and
interpreter in stream and window mode, where the forecasts are the published ones."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seqcast.edge.counters import Counters
from seqcast.edge.path.quality import Quality, block_size
from seqcast.edge.service.status import quality_summary
from tests.quality_reference import offline_quality

TOL = {"rtol": 1e-9, "atol": 1e-9}


def close(live: list, offline: list) -> bool:
    if [v is None for v in live] != [v is None for v in offline]:
        return False
    pairs = [(a, b) for a, b in zip(live, offline, strict=True) if a is not None]
    return all(np.isclose(a, b, **TOL) for a, b in pairs)


def test_block_sizes_keep_the_window_at_most_window_steps() -> None:
    for window in (1, 5, 7, 8, 20, 100, 288):
        s = block_size(window)
        blocks = max(1, window // s)
        assert blocks * s <= window and (blocks - 1) * s + 1 > window * 7 / 8 - s
    assert block_size(7) == 1  # exact below 8 steps


@pytest.mark.parametrize(
    "window,drift_after,solo", [(5, 2, False), (20, 4, False), (64, 30, False), (20, 4, True)]
)
def test_the_scorer_equals_the_offline_computation(window: int, drift_after: int, solo) -> None:
    """`solo`: one stream per call (the scorer's path for a single slot)."""
    rng = np.random.default_rng(window)
    horizon, n_streams, steps, F, C = 4, 5, 90, 3, 3  # two targets: features 0 and 2
    counters = Counters()
    q = Quality(
        8, horizon, [0, 2], [0, 2], window, drift_after, counters, targets=("a", "b")
    )  # output columns 0 and 2 are the point forecasts (1 is a quantile of "a")
    actual = rng.normal(size=(n_streams, steps, F)).cumsum(axis=1)
    # streams 0-1 forecast well, 2-4 badly, and stream 3 turns good halfway (drift clears)
    noise = np.array([0.1, 0.1, 3.0, 3.0, 3.0])
    forecasts: dict[int, dict[int, list]] = {s: {} for s in range(n_streams)}
    step = [0] * n_streams
    warm = 3  # forecasts from each stream's 3rd step on (min_history)
    while min(step) < steps:
        live = [s for s in range(n_streams) if step[s] < steps and rng.random() < 0.8]
        live = live[:1] if solo else live
        if not live:
            continue
        slots = np.array(live) + 2  # slots need not be the stream numbers
        values = np.stack([actual[s, step[s]] for s in live])  # (B, F)
        made = np.array([step[s] + 1 >= warm for s in live])
        rows = []
        for s, m in zip(live, made, strict=True):
            if m:
                spread = noise[s] if not (s == 3 and step[s] > steps // 2) else 0.01
                future = actual[s, step[s] + 1 : step[s] + 1 + horizon, :]
                pad = np.zeros((horizon - len(future), F))
                y = np.vstack([future, pad]) + rng.normal(0, spread, (horizon, C))
                rows.append(y)
                forecasts[s][step[s]] = [[r[0], r[2]] for r in y.tolist()]
        q.observe(slots, values, made, np.stack(rows) if rows else None, [f"s{s}" for s in live])
        for s in live:
            step[s] += 1
        # the status message's counts, read without the snapshot, agree with it at every call
        summary = q.snapshot([(f"s{s}", s + 2) for s in range(n_streams)])["summary"]
        counts = {k: summary[k] for k in ("streams_scored", "streams_drifting")}
        assert q.counts(np.arange(n_streams) + 2) == counts
    snap = q.snapshot([(f"s{s}", s + 2) for s in range(n_streams)])
    flagged = cleared = 0
    for s in range(n_streams):
        want = offline_quality(
            actual[s][:, [0, 2]].tolist(), forecasts[s], horizon, window, drift_after
        )
        got = snap["streams"][f"s{s}"]
        assert close(got["mae"], want.mae), (s, got["mae"], want.mae)
        assert close(got["persistence_mae"], want.persistence_mae)
        assert (got["n"], got["drifting"]) == (want.n, want.drifting)
        flagged, cleared = flagged + want.flagged, cleared + want.cleared
    assert counters["quality_drift_flagged"] == flagged > 0
    assert counters["quality_drift_cleared"] == cleared
    summary = snap["summary"]
    assert summary["streams_scored"] == n_streams
    assert summary["streams_drifting"] == sum(s["drifting"] for s in snap["streams"].values())
    json.dumps(snap, allow_nan=False)  # the snapshot is plain JSON


@pytest.mark.parametrize("streams", [1, 2])  # the single-slot path, and the batch path
def test_the_drift_verdict_pools_every_pair_in_the_window(streams: int) -> None:
    """Horizon 2, actuals 0, 1, 0; forecasts from step 0: 1, 1.5; from step 1: 0. At step 2
    the model's errors are 0 (h=1, twice) and 1.5 (h=2), persistence's 1, 1 and 0. Pooled:
    MAE 0.5 vs 0.67, not worse; the mean of the per-step MAEs (0.75 vs 0.5) would say worse."""
    counters = Counters()
    q = Quality(4, 2, [0], [0], 64, 1, counters)
    slots = np.arange(streams)
    for x, forecast in [(0.0, [1.0, 1.5]), (1.0, [0.0, 9.0]), (0.0, [0.0, 0.0])]:
        values = np.full((streams, 1), x)
        q.observe(
            slots,
            values,
            np.ones(streams, bool),
            np.tile([[[forecast[0]], [forecast[1]]]], (streams, 1, 1)),
        )
    want = offline_quality([[0.0], [1.0], [0.0]], {0: [[1.0], [1.5]], 1: [[0.0], [9.0]]}, 2, 64, 1)
    assert want.flagged == 0 and not want.drifting
    assert counters["quality_drift_flagged"] == 0
    got = q.snapshot([(f"s{s}", s) for s in range(streams)])["streams"]["s0"]
    assert got["mae"] == [0.0, 1.5] and got["persistence_mae"] == [1.0, 0.0]
    assert not got["drifting"]


def test_a_reset_forgets_the_stream() -> None:
    q = Quality(2, 2, [0], [0], 8, 2, Counters())
    for k in range(6):
        q.observe(np.array([1]), np.array([[float(k)]]), np.array([True]), np.ones((1, 2, 1)))
    assert q.snapshot([("x", 1)])["streams"]["x"]["n"] > 0
    q.reset(1)
    assert q.snapshot([("x", 1)])["streams"] == {}


# -- the real pipeline and interpreter -------------------------------------------------------
def pipeline_case(bundle, mode: str, window: int = 10, drift_after: int = 2):
    """Two streams through a Pipeline with the small bundle (align off: a sample is a step), in
    batches that mix them: the live snapshot and the offline one from the published JSON."""
    from seqcast.edge.config import QualityConfig, StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline
    from tests.test_time_parity import on_grid

    model, _ = load_model(read_bundle(bundle), isolate=False)
    quality = QualityConfig(window=window, drift_after=drift_after)
    pipe = Pipeline(model, mode=mode, streams=StreamsConfig(align="off"), quality=quality)
    m = pipe.manifest
    series = {"a": on_grid(list(range(40))), "b": on_grid(list(range(7, 40)))}
    series["b"] = [(ts, [v[0] * 1.5 + 20 * (k % 2), v[1]]) for k, (ts, v) in enumerate(series["b"])]
    published: dict[str, dict[float, list]] = {"a": {}, "b": {}}
    for lo in range(0, 40, 7):  # batches with several samples of each stream
        items = [(n, ts, tuple(v)) for n, s in series.items() for ts, v in s[lo : lo + 7]]
        for _, payload in pipe.run(items):
            doc = json.loads(payload)
            published[doc["stream"]][doc["ts"]] = [[f["load"]] for f in doc["forecast"]]
    live = pipe.quality_snapshot()
    want = {}
    for name, samples in series.items():
        origin = {ts: i for i, (ts, _) in enumerate(samples)}
        fc = {origin[ts]: rows for ts, rows in published[name].items()}
        actuals = [[v[0]] for _, v in samples]  # load is the target
        want[name] = offline_quality(actuals, fc, m.horizon, window, drift_after)
    return live, want, pipe


@pytest.mark.tflite
@pytest.mark.parametrize("mode", ["stream", "window"])
def test_the_pipeline_scores_what_it_published(small_bundle, mode: str) -> None:
    live, want, pipe = pipeline_case(small_bundle, mode)
    assert set(live["streams"]) == {"a", "b"}
    for name, w in want.items():
        got = live["streams"][name]
        assert close(got["mae"], w.mae), (name, got["mae"], w.mae)
        assert close(got["persistence_mae"], w.persistence_mae)
        assert (got["n"], got["drifting"]) == (w.n, w.drifting)
        assert all(v is not None for v in got["mae"])  # every horizon step was scored
    assert pipe.counters["quality_drift_flagged"] == sum(w.flagged for w in want.values())
    assert json.loads(pipe.quality_message())["streams"] == live["streams"]
    assert (
        pipe.quality_counts()
        == quality_summary(live)
        != {
            "streams_scored": 0,
            "streams_drifting": 0,
        }
    )


def test_the_quality_section_is_checked_at_start() -> None:
    from seqcast.edge.config import ConfigError, parse_config

    cfg = parse_config(
        {
            "model": {"path": "m"},
            "mqtt": {"client_id": "dev-1"},
            "quality": {"window": 96, "topic": "seqcast/{client_id}/quality"},
        }
    )
    assert (cfg.quality.enabled, cfg.quality.window, cfg.quality_topic) == (
        True,
        96,
        "seqcast/dev-1/quality",
    )
    assert parse_config({"model": {"path": "m"}}).quality_topic == ""  # off by default
    bad = [
        ({"window": 0}, "quality.window"),
        ({"drift_after": 0}, "quality.drift_after"),
        ({"topic": "q/+/x"}, "quality.topic"),
        ({"topic": "sensors/x/data"}, "quality.topic"),  # would be read back as input
    ]
    for section, key in bad:
        with pytest.raises(ConfigError, match=key):
            parse_config({"model": {"path": "m"}, "quality": section})
    with pytest.raises(ConfigError, match="output.format"):
        parse_config({"model": {"path": "m"}, "output": {"format": "csv"}})


@pytest.mark.tflite
def test_with_quality_off_the_snapshot_keeps_its_shape(small_bundle) -> None:
    from seqcast.edge.config import QualityConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline

    model, _ = load_model(read_bundle(small_bundle), isolate=False)
    on = Pipeline(model).quality_snapshot()
    off = Pipeline(model, quality=QualityConfig(enabled=False))
    assert off.quality is None and off.engine.quality is None and off.table.on_reset is None
    got = off.quality_snapshot()
    assert got["streams"] == {} and set(got["summary"]) == set(on["summary"])
    assert got["summary"]["streams_scored"] == 0
