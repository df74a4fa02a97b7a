"""`--quantiles` on the device: the real daemon (TensorFlow blocked), a real mosquitto and the
real interpreter publish `<target>_p10` and `<target>_p90` next to each point forecast, equal to
the offline interpreter output, with p10 <= value <= p90 in every step (stream mode); window mode
through the pipeline gives the same columns."""

from __future__ import annotations

import numpy as np
import pytest

from tests.daemon_harness import offline_forecasts
from tests.test_time_parity import check, on_grid, serve

pytestmark = [pytest.mark.broker, pytest.mark.tflite, pytest.mark.slow]

KEYS = ["ts", "load", "load_p10", "load_p90"]


def _ordered(rows: list[list[float]]) -> bool:
    """Rows [ts, load, load_p10, load_p90]: p10 <= value <= p90 in each."""
    return all(p10 <= v <= p90 for _, v, p10, p90 in rows)


def test_the_daemon_publishes_ordered_intervals_equal_to_the_interpreters(
    broker, quantile_bundle, tmp_path
) -> None:
    bundle = quantile_bundle.bundle.path
    samples = {"a": on_grid(list(range(30))), "b": on_grid(list(range(100, 124)))}
    want = {name: offline_forecasts(bundle, s, "stream") for name, s in samples.items()}
    served = serve(broker, bundle, tmp_path, samples, {n: len(w) for n, w in want.items()})
    assert served.docs, served.log
    for doc in served.docs:
        for step in doc["forecast"]:
            assert list(step) == KEYS  # each target's quantiles right after it
            assert step["load_p10"] <= step["load"] <= step["load_p90"]
            assert step["load_p10"] < step["load_p90"]  # an interval, not a point
    for name, forecasts in want.items():
        check(served, name, forecasts)
        assert all(_ordered(rows) for _, rows in forecasts)


def test_window_mode_publishes_the_same_columns(quantile_bundle) -> None:
    import json

    from seqcast.edge.config import StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline

    bundle = quantile_bundle.bundle.path
    model, _ = load_model(read_bundle(bundle), isolate=False)
    pipe = Pipeline(model, mode="window", streams=StreamsConfig(align="off"))
    samples = on_grid(list(range(20)))
    out = pipe.run([("w", ts, tuple(v)) for ts, v in samples])
    want = offline_forecasts(bundle, samples, "window")
    got = []
    for _, payload in out:
        doc = json.loads(payload)
        assert [list(s) for s in doc["forecast"]] == [KEYS] * len(doc["forecast"])
        got.append((doc["ts"], [[s[k] for k in KEYS] for s in doc["forecast"]]))
    assert [ts for ts, _ in got] == [ts for ts, _ in want]
    for (_, rows), (_, ref) in zip(got, want, strict=True):
        np.testing.assert_allclose(np.float32(rows), np.float32(ref), rtol=0, atol=0)
        assert _ordered(rows)
