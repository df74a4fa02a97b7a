"""Issue 13's acceptance, live quality: a real series replayed through a real mosquitto and the
real daemon (TensorFlow blocked); the per-stream rolling MAE it publishes on `[quality] topic`
equals the offline computation from the forecasts it published and the inputs sent
(tests/quality_reference.py), and so do the drift flags and the `quality_drift_*` counters in
its status message."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.daemon_harness import DaemonProcess, publish_lines, write_config
from tests.mqtt_clients import Collector
from tests.quality_reference import offline_quality
from tests.test_daemon import stream_data

pytestmark = [pytest.mark.broker, pytest.mark.tflite]

WINDOW, DRIFT_AFTER, STEPS = 20, 3, 46  # blocks of 2 steps; about 40 steps are scored


def test_live_mae_equals_the_offline_computation(broker, small_bundle, tmp_path) -> None:
    from seqcast.edge.model.bundle import read_bundle

    m = read_bundle(small_bundle).manifest
    prefix = f"t/quality-{tmp_path.name}"
    quality = {"window": WINDOW, "drift_after": DRIFT_AFTER, "topic": f"{prefix}/quality"}
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, prefix, quality=quality)
    series = {"meter-1": stream_data(STEPS, seed=1), "meter-2": stream_data(STEPS, seed=2)}
    # meter-2 flat for a while: persistence is perfect there, so the model is worse (drift)
    series["meter-2"] = [
        (ts, [100.0, v[1]]) if 15 <= k < 30 else (ts, v)
        for k, (ts, v) in enumerate(series["meter-2"])
    ]
    expected = STEPS - m.min_history + 1  # forecasts per stream
    collector = Collector(broker.host, broker.port, [f"{prefix}/#"])
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        for name, samples in series.items():
            lines = [
                json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode() for ts, v in samples
            ]
            publish_lines(broker, f"{prefix}/sensors/{name}/data", lines)

        def published() -> list[dict]:
            return collector.forecasts()

        assert collector.wait_for(lambda: len(published()) >= 2 * expected, 30), daemon.log()
        assert daemon.stop() == 0, daemon.log()  # the last quality message goes out at shutdown
        assert collector.wait_for(lambda: collector.counters().get("quality_drift_flagged"), 5)
    finally:
        daemon.kill()
        collector.close()
    with collector.lock:
        msgs = [(t, p) for _, t, p in collector.messages]
    live = [json.loads(p) for t, p in msgs if t == f"{prefix}/quality"][-1]
    status = [json.loads(p) for t, p in msgs if t == f"{prefix}/status"][-1]
    assert {d["model"] for d in published()} == {live["model_id"]}

    flagged = cleared = 0
    for name, samples in series.items():
        step_of = {ts: i for i, (ts, _) in enumerate(samples)}
        docs = [d for d in published() if d["stream"] == name]
        assert len({d["ts"] for d in docs}) == expected
        forecasts = {step_of[d["ts"]]: [[f["load"]] for f in d["forecast"]] for d in docs}
        actuals = [[v[0]] for _, v in samples]  # on the grid: the aligned step is the sample
        want = offline_quality(actuals, forecasts, m.horizon, WINDOW, DRIFT_AFTER)
        got = live["streams"][name]
        np.testing.assert_allclose(got["mae"], want.mae, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got["persistence_mae"], want.persistence_mae, rtol=1e-9)
        assert (got["n"], got["drifting"]) == (want.n, want.drifting)
        assert want.n == WINDOW  # the window rolled: scored steps beyond it were dropped
        flagged, cleared = flagged + want.flagged, cleared + want.cleared
    assert flagged > 0  # the flat stretch made one drift
    assert status["counters"]["quality_drift_flagged"] == flagged
    assert status["counters"]["quality_drift_cleared"] == cleared
    summary = live["summary"]
    assert summary["streams_scored"] == 2
    assert summary["streams_drifting"] == sum(s["drifting"] for s in live["streams"].values())
