"""One bad value must never silence a stream (issue 9, finding 3).

A finite but absurd value (`"temp": 3.5e38`) is rejected by the input sanity check (the bundle's
training mean and standard deviation, `[input] max_deviation`) before it touches the stream; with
the check off, the non-finite state it causes resets the stream, which forecasts again after
warm-up (snapshots: test_poison_snapshot.py). Through the real pipeline and interpreter, and
through the real daemon.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from seqcast.edge.config import InputConfig, StreamsConfig
from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import LoadedModel, load_model
from seqcast.edge.mqtt import InboundMessage
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.path.streams import StreamTable
from tests.daemon_harness import (
    DaemonProcess,
    offline_forecasts,
    publish_lines,
    received,
    write_config,
)

T0 = 1_700_000_000.0
STEP = 1800.0
HUGE = 3.5e38  # finite, valid JSON, and still a float32: the value from the finding
MODES = ["stream", "window"]


@pytest.fixture(scope="module")
def model(small_bundle: Path) -> LoadedModel:
    return load_model(read_bundle(small_bundle))[0]


def pipeline(model: LoadedModel, mode: str, max_deviation: float | None = None) -> Pipeline:
    return Pipeline(
        model,
        mode=mode,
        input=InputConfig() if max_deviation is None else InputConfig(max_deviation=max_deviation),
        # a rejected sample leaves a hole; here the next sample is not held for a late one
        streams=StreamsConfig(max_streams=100, reorder_s=0),
        output_topic="out/{stream}",
    )


def msg(stream: str, body: object) -> InboundMessage:
    return InboundMessage(stream, f"in/{stream}", json.dumps(body).encode(), T0)


def sample(stream: str, k: float, temp: float | None = None) -> dict[str, float]:
    s = sum(map(ord, stream)) % 7
    return {
        "ts": T0 + STEP * k,
        "load": 100 + 10 * math.sin(k / 3 + s),
        "temp": 20.0 + s / 2 + math.cos(k / 5) if temp is None else temp,
    }


def run(p: Pipeline, messages: list[InboundMessage], batch: int = 5) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for i in range(0, len(messages), batch):
        for topic, payload in p.handle(messages[i : i + batch]):
            out.setdefault(topic, []).append(payload)
    return out


def forecast_ts(payloads: list[bytes]) -> list[float]:
    return [json.loads(b)["ts"] for b in payloads]


# -- input sanity --------------------------------------------------------------------------------


@pytest.mark.tflite
@pytest.mark.parametrize("mode", MODES)
def test_an_absurd_value_is_rejected_and_the_stream_goes_on(model, mode):
    n = 20
    clean: list[InboundMessage] = []
    dirty: list[InboundMessage] = []
    for k in range(n):
        for stream in ("a", "b", "c"):
            if stream == "c" and k == 12:
                # one message, three samples: the middle one is absurd, the others are kept
                good = [sample("c", 12), sample("c", 12.5)]
                clean.append(msg("c", good))
                dirty.append(msg("c", [good[0], sample("c", 12.2, temp=-HUGE), good[1]]))
                continue
            m = msg(stream, sample(stream, k))
            clean.append(m)
            dirty.append(m)
        if k == 8:  # stream a: one sample between two good ones, finite and absurd
            dirty.append(msg("a", sample("a", 8.5, temp=HUGE)))
            dirty.append(msg("new", sample("new", 8.5, temp=HUGE)))  # a new stream's first
    ref = pipeline(model, mode)
    want = run(ref, clean)
    p = pipeline(model, mode)
    got = run(p, dirty)
    # rejected before it touched anything: every stream, a included, as if it never came
    assert got == want
    assert len(got["out/a"]) == n - model.bundle.manifest.min_history + 1
    assert forecast_ts(got["out/a"])[-1] == T0 + STEP * (n - 1)  # a still forecasts at the end
    c = p.counters.as_dict()
    assert c["bad_out_of_range"] == 3  # one per rejected sample
    assert c["bad_payloads"] == 3
    assert c["samples"] == ref.counters["samples"]
    assert c["encode_errors"] == 0 and c["streams_resets_nonfinite"] == 0
    assert "new" not in p.table  # a rejected first sample creates no stream
    assert c["streams_created"] == 3


@pytest.mark.tflite
@pytest.mark.parametrize("copies", [1, 5])  # a few samples per engine call, and many
@pytest.mark.parametrize("max_deviation", [None, 5.0])
def test_the_limit_is_max_deviation_training_standard_deviations(model, max_deviation, copies):
    p = pipeline(model, "stream", max_deviation)
    limit = InputConfig().max_deviation if max_deviation is None else max_deviation
    sc = model.bundle.manifest.scaler
    mean, std = sc.feature_mean[1], sc.feature_std[1]  # temp
    inside = [mean + 0.98 * limit * std, mean - 0.98 * limit * std]
    outside = [mean + 1.02 * limit * std, mean - 1.02 * limit * std]
    temps = [inside[0], outside[0], inside[1], outside[1]] * copies
    p.handle([msg("x", [sample("x", k, temp=t) for k, t in enumerate(temps)])])
    c = p.counters.as_dict()
    # every rejected sample leaves a one-step hole, filled as in training (align = "mean")
    assert c["samples"] - c["streams_filled"] == 2 * copies
    assert c["streams_filled"] == 2 * copies - 1
    assert c["bad_out_of_range"] == c["bad_payloads"] == 2 * copies  # one per sample


@pytest.mark.tflite
def test_without_a_limit_only_what_float32_cannot_hold_is_rejected(model):
    p = pipeline(model, "stream", max_deviation=0)
    p.handle(
        [
            msg("x", sample("x", 0)),
            msg("x", {**sample("x", 1), "load": 1e300}),
            msg("x", sample("x", 2)),
        ]
    )
    c = p.counters.as_dict()
    assert c["samples"] - c["streams_filled"] == 2 and c["bad_out_of_range"] == 1
    assert c["streams_resets_nonfinite"] == 0


# -- a non-finite state resets the stream --------------------------------------------------------


@pytest.mark.tflite
@pytest.mark.parametrize("mode", MODES)
def test_a_non_finite_state_resets_the_stream_and_it_forecasts_again(model, mode):
    min_history = model.bundle.manifest.min_history
    bad_k, n = 10, 24
    a = [msg("a", sample("a", k, temp=HUGE if k == bad_k else None)) for k in range(n)]
    b = [msg("b", sample("b", k)) for k in range(n)]
    mixed = [m for pair in zip(a, b, strict=True) for m in pair]
    poisoned = NonFiniteOnHuge(model)
    p = pipeline(poisoned, mode, max_deviation=0)  # no input check: the value gets to the model
    got = run(p, mixed)
    c = p.counters.as_dict()
    assert poisoned.poisoned_rows >= 1  # the huge value did reach the model
    assert c["streams_resets_nonfinite"] == 1
    assert c["encode_errors"] == 0 and c["bad_payloads"] == 0
    # a restarted right after the bad sample, exactly like a new stream fed what came after it
    fresh = run(pipeline(model, mode, max_deviation=0), a[bad_k + 1 :])["out/a"]
    before = run(pipeline(model, mode, max_deviation=0), a[:bad_k])["out/a"]
    assert got["out/a"] == before + fresh
    assert forecast_ts(fresh)[0] == T0 + STEP * (bad_k + min_history)  # after warm-up again
    assert forecast_ts(fresh)[-1] == T0 + STEP * (n - 1)  # never silent
    # the other stream is untouched
    assert got["out/b"] == run(pipeline(model, mode, max_deviation=0), b)["out/b"]
    # and batching changes nothing: all at once equals one message at a time
    assert run(pipeline(poisoned, mode, max_deviation=0), mixed, batch=len(mixed)) == got
    assert run(pipeline(poisoned, mode, max_deviation=0), mixed, batch=1) == got


class NonFiniteOnHuge(LoadedModel):
    """The real model, except that a row whose (scaled) input holds a huge value comes out
    non-finite, as the finding's bundle did for 3.5e38. Whether a given bundle's weights
    overflow to NaN or saturate is up to its training, so the test makes it certain."""

    def __init__(self, model: LoadedModel) -> None:
        self.__dict__.update(model.__dict__)
        self.poisoned_rows = 0

    def step(self, x, states):  # x (B, F)
        y, new = super().step(x, states)
        huge = np.abs(x).max(axis=1) > 1e30  # (B,)
        self.poisoned_rows += int(huge.sum())
        new = [s.copy() for s in new]
        for s in new:
            s[huge] = np.nan
        return y, new

    def window(self, x):  # x (B, L, F)
        y = super().window(x).copy()
        huge = np.abs(x).max(axis=(1, 2)) > 1e30  # (B,)
        self.poisoned_rows += int(huge.sum())
        y[huge] = np.inf
        return y


class RowModel:
    """A step model whose new state is the input's first feature, as given: rows never mix."""

    def step(self, x, states):
        h = np.repeat(x[:, :1], 3, axis=1).astype(np.float32)  # (B, 3)
        return h[:, None, :1].repeat(2, axis=1), [h]  # y (B, 2, 1)

    def window(self, x):
        return x[:, -1:, :1].repeat(2, axis=1).astype(np.float32)  # (B, 2, 1)


@pytest.mark.parametrize("mode", MODES)
def test_only_the_non_finite_rows_reset_and_huge_finite_values_do_not(mode):
    from seqcast.edge.path.engine import Engine, Scaling

    table = StreamTable(10, 2, 2, [(3,)] if mode == "stream" else [])
    one = np.ones(1)
    scaling = Scaling(np.zeros(2), np.ones(2), np.zeros(1), one)
    e = Engine(RowModel(), table, scaling, mode, min_history=1)
    # 1e30 squared overflows float32 (the fast check's false alarm): still finite, still served
    values = {"ok": 1.0, "huge": 1e30, "inf": math.inf, "nan": math.nan}
    items = [(name, float(t), (v, 0.0)) for t in range(3) for name, v in values.items()]
    # without a limit only what float32 cannot hold is refused: inf and nan, as bad input
    forecasts = e.process(items)
    assert {f.stream for f in forecasts} == {"ok", "huge"}
    assert e.counters["bad_out_of_range"] == 6 and e.counters["streams_resets_nonfinite"] == 0

    class NanFor(RowModel):  # the model itself goes non-finite for rows whose input is 7
        def step(self, x, states):
            y, (h,) = super().step(x, states)
            h[x[:, 0] == 7] = np.nan
            return y, [h]

        def window(self, x):
            y = super().window(x)
            y[x[:, -1, 0] == 7] = np.inf
            return y

    e = Engine(NanFor(), StreamTable(10, 2, 2, table.state_shapes), scaling, mode, 1)
    items = [
        (s, float(t), (7.0 if (s, t) == ("b", 1) else 1.0, 0.0)) for t in range(4) for s in "abc"
    ]
    got = [(f.stream, f.ts) for f in e.process(items)]
    assert e.counters["streams_resets_nonfinite"] == 1
    assert ("b", 1.0) not in got
    assert sorted(got) == sorted(
        (s, float(t)) for t in range(4) for s in "abc" if (s, t) != ("b", 1)
    )


# -- the real daemon -------------------------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.tflite
def test_daemon_keeps_forecasting_after_an_absurd_value(
    tmp_path, broker, small_bundle, unique_topic
):
    good = [(T0 + STEP * k, [sample("m", k)["load"], sample("m", k)["temp"]]) for k in range(20)]
    lines = [json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode() for ts, v in good]
    bad = json.dumps({"ts": T0 + STEP * 9.5, "load": 100.0, "temp": HUGE}).encode()
    lines.insert(10, bad)  # after the 10th good sample
    want = offline_forecasts(small_bundle, good, "stream")  # as if the bad one never came
    assert len(want) == 15
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        with broker.subscriber(f"{unique_topic}/forecasts/+", qos=1) as sub:
            publish_lines(broker, f"{unique_topic}/sensors/m/data", lines)
            messages = sub.collect(len(want), timeout=30)
        assert daemon.stop() == 0, daemon.log()
        status = broker.sub(f"{unique_topic}/status", 1, timeout=5)
    finally:
        daemon.kill()
    got = received(messages, ["load"]).get("m", [])
    assert [ts for ts, _ in got] == [ts for ts, _ in want]  # forecasts kept coming after it
    np.testing.assert_allclose([r for _, r in got], [r for _, r in want], rtol=1e-6, atol=1e-6)
    doc = json.loads(status[0][1])
    assert doc["state"] == "offline"
    counters = doc["counters"]
    assert counters["bad_out_of_range"] == 1 and counters["bad_payloads"] == 1
    assert counters["encode_errors"] == 0 and counters["streams_resets_nonfinite"] == 0
    assert counters["samples"] == 20
    assert "rejected: temp = 3.5e+38" in daemon.log()
