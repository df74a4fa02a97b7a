"""The daemon end to end: real mosquitto, real mosquitto_pub/mosquitto_sub, real interpreter.

Forecasts read back with mosquitto_sub must equal forecasts computed offline from the same
bundle, one sample at a time.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.daemon_harness import (
    DaemonProcess,
    offline_forecasts,
    publish_lines,
    received,
    write_config,
)
from tests.synth import synthetic_frame

pytestmark = [pytest.mark.broker, pytest.mark.tflite]

FEATURES = ["load", "temp"]


@pytest.fixture(scope="module")
def bundle(small_bundle):
    return small_bundle


def stream_data(n: int, seed: int) -> list[tuple[float, list[float]]]:
    df = synthetic_frame(n, seed=seed)
    ts = 1_700_000_000.0 + 1800.0 * np.arange(n)
    return [
        (float(t), [float(a), float(b)]) for t, a, b in zip(ts, df["load"], df["temp"], strict=True)
    ]


def as_json(samples):
    return [json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode() for ts, v in samples]


def as_array(samples, chunk=5):
    return [
        json.dumps(
            [{"ts": ts, "load": v[0], "temp": v[1]} for ts, v in samples[i : i + chunk]]
        ).encode()
        for i in range(0, len(samples), chunk)
    ]


def as_senml(samples):
    return [
        json.dumps(
            [{"bn": "dev/", "bt": ts, "n": "load", "v": v[0]}, {"n": "temp", "v": v[1]}]
        ).encode()
        for ts, v in samples
    ]


def as_csv(samples):
    return [f"{ts!r},{v[0]!r},{v[1]!r}".encode() for ts, v in samples]


ENCODERS = {
    "meter-json": as_json,
    "meter-array": as_array,
    "meter-senml": as_senml,
    "meter-csv": as_csv,
}


def run_streams(tmp_path, broker, bundle, prefix, mode, extra_lines=None, n=30):
    cfg = write_config(tmp_path / "edge.toml", broker, bundle, prefix, model={"mode": mode})
    data = {name: stream_data(n, seed=i) for i, name in enumerate(ENCODERS)}
    expected_count = sum(len(offline_forecasts(bundle, s, mode)) for s in data.values())
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        with broker.subscriber(f"{prefix}/forecasts/+", qos=1) as sub:
            # interleave: every stream gets a slice in turn, so batches mix streams
            for start in range(0, n, 10):
                for name, enc in ENCODERS.items():
                    chunk = data[name][start : start + 10]
                    publish_lines(broker, f"{prefix}/sensors/{name}/data", enc(chunk))
                for topic, lines in (extra_lines or {}).items():
                    publish_lines(broker, f"{prefix}/{topic}", lines)
            messages = sub.collect(expected_count, timeout=30)
        assert daemon.stop() == 0, daemon.log()
        # the retained "offline" status carries the final counters, after the inbox was drained
        status = broker.sub(f"{prefix}/status", 1, timeout=5)
        assert json.loads(status[0][1])["state"] == "offline"
    finally:
        daemon.kill()
    return data, messages, status, daemon


@pytest.mark.parametrize("mode", ["stream", "window"])
def test_forecasts_equal_offline_for_every_payload_format(
    tmp_path, broker, bundle, unique_topic, mode
):
    data, messages, _, daemon = run_streams(tmp_path, broker, bundle, unique_topic, mode)
    got = received(messages, ["load"])
    assert set(got) == set(ENCODERS)
    for name, samples in data.items():
        want = offline_forecasts(bundle, samples, mode)
        assert len(got[name]) == len(want) == 30 - 6 + 1
        for (ts_g, rows_g), (ts_w, rows_w) in zip(got[name], want, strict=True):
            assert ts_g == ts_w
            np.testing.assert_allclose(rows_g, rows_w, rtol=1e-6, atol=1e-6)
    doc = json.loads(messages[0][1])
    assert doc["model"].startswith("m@") and len(doc["model"]) == len("m@") + 12
    assert f"in {mode} mode on backend litert" in daemon.log()


BAD_PAYLOADS = [
    b"\xff\xfe\xfd",  # invalid UTF-8
    b"{not json",
    b'{"ts": 1700000000, "load": 1.0}',  # missing field
    b'{"ts": 1700000000, "load": NaN, "temp": 1}',
    b'{"ts": 1700000000, "load": Infinity, "temp": 1}',
    b'{"ts": 1700000000, "load": "12", "temp": 1}',  # string for a number
    b"1.0,2.0,3.0,4.0",  # wrong CSV arity
    b"[" + b"1," * 40000 + b"1]",  # huge payload
    b'{"ts": 99999999999, "load": 1, "temp": 2}',  # far future
    b'{"ts": -5, "load": 1, "temp": 2}',  # before the epoch
    b'{"ts": "yesterday", "load": 1, "temp": 2}',
    b"",
    b"[]",
    b'[{"n": "load"}]',
    b"null",
]


def test_bad_input_never_stops_the_daemon_or_changes_good_streams(
    tmp_path, broker, bundle, unique_topic
):
    # bad payloads go both to their own stream and onto the good streams' topics
    extra = {
        "sensors/meter-json/data": BAD_PAYLOADS[:8],
        "sensors/meter-csv/data": BAD_PAYLOADS[8:],
        "sensors/broken/data": BAD_PAYLOADS,
        "sensors/too/deep/data": [b"{}"],
        "elsewhere/x": [b"{}"],
    }
    data, messages, status, daemon = run_streams(
        tmp_path, broker, bundle, unique_topic, "stream", extra
    )
    got = received(messages, ["load"])
    for name, samples in data.items():
        want = offline_forecasts(bundle, samples, "stream")
        assert [ts for ts, _ in got[name]] == [ts for ts, _ in want]
        np.testing.assert_allclose(
            [r for _, r in got[name]], [r for _, r in want], rtol=1e-6, atol=1e-6
        )
    assert "broken" not in got
    counters = json.loads(status[0][1])["counters"]
    # each of the 3 chunks x 15 bad payloads on the good topics + 15 on 'broken', all counted
    assert counters["bad_payloads"] == 3 * 2 * len(BAD_PAYLOADS)
    assert counters["bad_invalid_utf8"] == 6 and counters["bad_too_large"] == 6
    assert "bad payload on" in daemon.log()


def test_sigterm_publishes_offline_and_exits_zero(tmp_path, broker, bundle, unique_topic):
    cfg = write_config(tmp_path / "edge.toml", broker, bundle, unique_topic)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        assert json.loads(broker.sub(f"{unique_topic}/status", 1)[0][1])["state"] == "online"
        assert daemon.stop() == 0
        assert json.loads(broker.sub(f"{unique_topic}/status", 1)[0][1])["state"] == "offline"
    finally:
        daemon.kill()


def test_sighup_with_a_corrupt_bundle_keeps_serving_the_old_one(
    tmp_path, broker, bundle, unique_topic
):
    import signal

    live = tmp_path / "live.seqcast"
    shutil.copy(bundle, live)
    cfg = write_config(tmp_path / "edge.toml", broker, live, unique_topic, model={"watch": False})
    daemon = DaemonProcess.start(cfg)
    samples = stream_data(12, seed=3)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        live.write_bytes(live.read_bytes()[:1000])
        daemon.proc.send_signal(signal.SIGHUP)
        daemon.wait_for_log("reload failed, still serving")
        with broker.subscriber(f"{unique_topic}/forecasts/+", qos=1) as sub:
            publish_lines(broker, f"{unique_topic}/sensors/m/data", as_json(samples))
            messages = sub.collect(7, timeout=15)
        got = received(messages, ["load"])["m"]
        want = offline_forecasts(bundle, samples, "stream")
        np.testing.assert_allclose([r for _, r in got], [r for _, r in want], rtol=1e-6, atol=1e-6)
        assert daemon.stop() == 0
    finally:
        daemon.kill()
