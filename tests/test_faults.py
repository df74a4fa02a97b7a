"""Fault injection with a real mosquitto: broker restarts, daemon SIGKILL, model swaps, floods.

Delivery semantics under test (README, "Reliability"): inputs are acknowledged only after their
forecasts are acknowledged by the broker, sessions are persistent and QoS 1 in and out, so every
sample the broker accepted yields its forecast. QoS 1 output may deliver a forecast twice after a
broker restart (same stream, ts and payload); forecasts republished from the outbox after a
daemon restart carry "redelivered": true.
"""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest

from tests.daemon_harness import DaemonProcess, offline_forecasts, write_config
from tests.mqtt_clients import Collector, Sender

pytestmark = [pytest.mark.broker, pytest.mark.tflite, pytest.mark.slow]

BROKER_CONFIG = ["persistence true", "max_queued_messages 100000", "max_inflight_messages 100"]


def series(n: int, stream_index: int) -> list[tuple[float, list[float]]]:
    t = np.arange(n)
    load = 100 + 30 * np.sin(2 * np.pi * (t + 7 * stream_index) / 48)
    temp = 20 + 3 * np.cos(2 * np.pi * t / 48)
    return [
        (1_700_000_000.0 + 1800 * i, [float(a), float(b)])
        for i, a, b in zip(t, load, temp, strict=True)
    ]


def payload(ts: float, v: list[float]) -> bytes:
    return json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode()


def check_against_offline(forecasts: list[dict], data: dict[str, list], bundle) -> dict[str, int]:
    """Every expected forecast arrived with the offline values; returns duplicates per stream."""
    dups: dict[str, int] = {}
    for name, samples in data.items():
        want = {ts: rows for ts, rows in offline_forecasts(bundle, samples, "stream")}
        got: dict[float, list] = {}
        for doc in (d for d in forecasts if d["stream"] == name):
            rows = [[f["ts"], f["load"]] for f in doc["forecast"]]
            if doc["ts"] in got:
                dups[name] = dups.get(name, 0) + 1
                assert rows == got[doc["ts"]], "a duplicate must be the same forecast"
                continue
            got[doc["ts"]] = rows
        missing = sorted(set(want) - set(got))
        assert not missing, f"{name}: {len(missing)} forecasts lost, first at ts {missing[0]}"
        for ts, rows in want.items():
            np.testing.assert_allclose(got[ts], rows, rtol=1e-6, atol=1e-6)
    return dups


def test_broker_restarts_during_qos1_replay_lose_nothing(
    tmp_path, make_broker, small_bundle, unique_topic
):
    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        small_bundle,
        unique_topic,
        mqtt={"reconnect_min_s": 0.1, "reconnect_max_s": 0.5},
        state={"snapshot_interval_s": 0},
    )
    streams = {f"m{i}": series(120, i) for i in range(3)}
    collector = Collector(
        broker.host, broker.port, [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    )
    daemon = DaemonProcess.start(cfg)
    sender = None
    try:
        daemon.wait_for_log("seqcast-edge serving")
        sender = Sender(broker.host, broker.port)
        reconnects: list[float] = []
        for k in range(120):
            for name, samples in streams.items():
                ts, v = samples[k]
                sender.send(f"{unique_topic}/sensors/{name}/data", payload(ts, v), (name, ts))
            if k in (30, 60, 90):
                n_online = sum(
                    b'"online"' in p for _, t, p in collector.messages if t.endswith("/status")
                )
                broker.restart()
                t0 = time.monotonic()
                assert collector.wait_for(
                    lambda n=n_online: (
                        sum(
                            b'"online"' in p
                            for _, t, p in collector.messages
                            if t.endswith("/status")
                        )
                        > n
                    ),
                    20,
                )
                reconnects.append(time.monotonic() - t0)
            time.sleep(0.004)
        assert sender.wait_all_accepted(360, 30), f"broker accepted {len(sender.accepted)} of 360"
        expected = 3 * (120 - 6 + 1)
        collector.wait_for(
            lambda: len({(d["stream"], d["ts"]) for d in collector.forecasts()}) >= expected, 30
        )
        dups = check_against_offline(collector.forecasts(), streams, small_bundle)
        print(
            "reconnect after broker restart: "
            f"{', '.join(f'{r * 1000:.0f} ms' for r in reconnects)}; "
            f"duplicate forecasts (QoS 1): {dups}"
        )
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
        collector.close()
        if sender:
            sender.close()


def test_daemon_sigkill_resumes_from_snapshot_and_processes_backlog(
    tmp_path, broker, small_bundle, unique_topic
):
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        small_bundle,
        unique_topic,
        state={"snapshot_interval_s": 0.2},
    )
    streams = {f"k{i}": series(60, i) for i in range(3)}
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)

    def send(k0: int, k1: int) -> None:
        for k in range(k0, k1):
            for name, samples in streams.items():
                ts, v = samples[k]
                sender.send(f"{unique_topic}/sensors/{name}/data", payload(ts, v), (name, ts))

    try:
        daemon.wait_for_log("seqcast-edge serving")
        send(0, 30)
        assert collector.wait_for(lambda: len(collector.forecasts()) >= 3 * 25, 20)
        time.sleep(0.6)  # at least two snapshots after the last sample
        daemon.kill()  # SIGKILL: no goodbye, no final snapshot
        send(30, 45)  # sent while the daemon is down: the broker keeps them for its session
        assert sender.wait_all_accepted(3 * 45, 10)
        daemon = DaemonProcess.start(cfg)
        daemon.wait_for_log("restored 3 streams from snapshot")
        send(45, 60)
        expected = 3 * (60 - 6 + 1)
        collector.wait_for(
            lambda: len({(d["stream"], d["ts"]) for d in collector.forecasts()}) >= expected, 30
        )
        forecasts = collector.forecasts()
        # no warm-up after the restart: the backlog's very first samples already have forecasts
        assert all(
            any(d["stream"] == n and d["ts"] == streams[n][30][0] for d in forecasts)
            for n in streams
        )
        dups = check_against_offline(forecasts, streams, small_bundle)
        for name, n in dups.items():  # only forecasts republished from the outbox may repeat
            assert n <= sum(1 for d in forecasts if d["stream"] == name and d.get("redelivered"))
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
        collector.close()
        sender.close()


def test_sigterm_saves_state_and_restart_continues_exactly(
    tmp_path, broker, small_bundle, unique_topic
):
    cfg = write_config(
        tmp_path / "edge.toml", broker, small_bundle, unique_topic, state={"snapshot_interval_s": 0}
    )
    streams = {"a": series(40, 0)}
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    try:
        for k0, k1 in ((0, 20), (20, 40)):
            daemon = DaemonProcess.start(cfg)
            daemon.wait_for_log("seqcast-edge serving")
            if k0:
                assert "restored 1 streams from snapshot" in daemon.log()
            for ts, v in streams["a"][k0:k1]:
                sender.send(f"{unique_topic}/sensors/a/data", payload(ts, v), ts)
            collector.wait_for(lambda k1=k1: len(collector.forecasts()) >= k1 - 5, 20)
            assert daemon.stop() == 0
        snap = tmp_path / "state" / "streams.npz"
        assert snap.exists() and (snap.stat().st_mode & 0o077) == 0
        assert (tmp_path / "state").stat().st_mode & 0o077 == 0
        assert check_against_offline(collector.forecasts(), streams, small_bundle) == {}
    finally:
        collector.close()
        sender.close()


@pytest.fixture(scope="module")
def other_bundles(tmp_path_factory):
    """A compatible retrain (same features and shapes, other weights) and a window-only model."""
    from seqcast.train.fit import FitOptions, fit
    from tests.synth import SMALL_FIT, write_csv

    tmp = tmp_path_factory.mktemp("swap")
    csv = str(write_csv(tmp / "s.csv", n=800, seed=5))
    common = dict(data=csv, **SMALL_FIT)
    compatible = fit(FitOptions(**common, seed=7, out=str(tmp / "compatible.seqcast"))).bundle.path
    window_only = fit(
        FitOptions(**common, mode="window", bidirectional=True, out=str(tmp / "w.seqcast"))
    ).bundle.path
    return compatible, window_only


def _swap_file(live, new) -> None:
    tmp = live.with_name(".incoming")
    shutil.copy(new, tmp)
    tmp.replace(live)  # atomic, as deploy tools do


def test_hot_swap_on_file_change(tmp_path, broker, small_bundle, other_bundles, unique_topic):
    compatible, window_only = other_bundles
    live = tmp_path / "live.seqcast"
    shutil.copy(small_bundle, live)
    cfg = write_config(
        tmp_path / "edge.toml", broker, live, unique_topic, model={"mode": "stream", "watch": True}
    )
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    samples = series(30, 0)

    def feed(k0: int, k1: int) -> None:
        for ts, v in samples[k0:k1]:
            sender.send(f"{unique_topic}/sensors/s/data", payload(ts, v), ts)

    try:
        daemon.wait_for_log("seqcast-edge serving")
        feed(0, 10)
        assert collector.wait_for(lambda: len(collector.forecasts()) >= 5, 10)
        old_id = collector.forecasts()[-1]["model"]

        live.write_bytes(b"PK\x03\x04 this is not a bundle")  # corrupt
        daemon.wait_for_log("reload failed, still serving")
        _swap_file(live, window_only)  # valid, but cannot stream
        daemon.wait_for_log("has no step model")
        feed(10, 15)
        assert collector.wait_for(lambda: len(collector.forecasts()) >= 10, 10)
        assert {d["model"] for d in collector.forecasts()} == {old_id}  # the old model kept serving

        _swap_file(live, compatible)
        daemon.wait_for_log("streams kept")
        feed(15, 30)
        assert collector.wait_for(lambda: len(collector.forecasts()) >= 25, 10)
        after = [d for d in collector.forecasts() if d["ts"] >= samples[15][0]]
        assert after and {d["model"] for d in after} == {d["model"] for d in after[:1]} != {old_id}
        assert len(collector.forecasts()) == 25  # no warm-up after a compatible swap
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
        daemon.kill()
        collector.close()
        sender.close()


def test_mosquitto_default_queue_limit_drops_qos1_for_an_absent_subscriber(make_broker):
    """Why the README tells deployments to raise `max_queued_messages` (default 1000)."""
    results = {}
    for label, extra in (("default", []), ("max_queued_messages 0", ["max_queued_messages 0"])):
        broker = make_broker(extra)
        topic = f"q/{label.replace(' ', '_')}"
        c = Collector(broker.host, broker.port, [topic], client_id=f"absent-{len(results)}")
        c.close()  # the session stays, the subscriber is away
        s = Sender(broker.host, broker.port)
        for i in range(3000):
            s.send(topic, b"%d" % i, i)
        assert s.wait_all_accepted(3000, 30)  # the broker acknowledged every one of them
        s.close()
        back = Collector(broker.host, broker.port, [topic], client_id=f"absent-{len(results)}")
        back.wait_for(lambda b=back: len(b.messages) >= 3000, 5)
        time.sleep(0.5)
        results[label] = len(back.messages)
        back.close()
    print(f"QoS 1 messages delivered of 3000 accepted while the subscriber was away: {results}")
    assert results["default"] < 3000  # silently dropped by the broker
    assert results["max_queued_messages 0"] == 3000


def test_newer_messages_first_then_a_sigkill_lose_nothing(
    tmp_path, broker, small_bundle, unique_topic
):
    """A broker that delivers newer messages before older ones (mosquitto after a restart): the
    daemon holds the jump ahead; killed while it holds it (and after checkpoints that happened
    meanwhile), the restarted daemon still has the held samples, takes the older block when it
    comes and releases the held run in order: every forecast of the full series, unchanged."""
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        small_bundle,
        unique_topic,
        state={"snapshot_interval_s": 0.2},
        streams={"reorder_s": 60.0},
    )
    samples = series(80, 0)
    topic = f"{unique_topic}/sensors/r/data"
    watched = [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    collector = Collector(broker.host, broker.port, watched)
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)

    def send(ks: range) -> None:
        for k in ks:
            sender.send(topic, payload(*samples[k]), k)

    try:
        daemon.wait_for_log("seqcast-edge serving")
        send(range(0, 30))
        send(range(50, 60))  # 20 steps ahead: held, acknowledged, not yet stepped
        assert sender.wait_all_accepted(40, 10)
        assert collector.wait_for(lambda: len(collector.forecasts()) >= 30 - 6 + 1, 20)
        time.sleep(0.8)  # checkpoints while the run is held
        daemon.kill()
        daemon = DaemonProcess.start(cfg)
        daemon.wait_for_log("seqcast-edge serving")
        send(range(30, 50))  # the older block, late
        send(range(60, 80))
        assert sender.wait_all_accepted(80, 10)
        expected = 80 - 6 + 1
        collector.wait_for(lambda: len({d["ts"] for d in collector.forecasts()}) >= expected, 30)
        check_against_offline(collector.forecasts(), {"r": samples}, small_bundle)
        assert collector.wait_for(lambda: collector.counters().get("streams_held", 0) > 0, 5)
        counters = collector.counters()  # the restarted daemon's: it re-held the run at start
        assert counters.get("streams_dropped_late", 0) == 0, counters
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
        collector.close()
        sender.close()
