"""Nothing lost in the field (issue 9): load, SIGKILL with the default snapshot interval, byte
bounds. Real mosquitto, the real daemon as its own process, real SIGKILLs; every forecast is
checked against the offline reference (tests/test_faults.py, `check_against_offline`)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.daemon_harness import DaemonProcess, write_config
from tests.mqtt_clients import Collector, Sender
from tests.test_faults import BROKER_CONFIG, check_against_offline, payload, series

pytestmark = [pytest.mark.broker, pytest.mark.tflite, pytest.mark.slow]
MIN_HISTORY = 6  # the small bundle's


def _unique(collector: Collector) -> int:
    return len({(d["stream"], d["ts"]) for d in collector.forecasts()})


def test_large_qos1_messages_lose_no_forecast(tmp_path, make_broker, small_bundle, unique_topic):
    """40 QoS 1 messages of 500 samples each in one burst: 20,000 forecasts, more than the MQTT
    client's old 10,000-message queue; every one must arrive, none dropped as overflow."""
    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    streams = {f"big{i}": series(1000, i) for i in range(20)}
    collector = Collector(
        broker.host, broker.port, [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    )
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        for half in (slice(0, 500), slice(500, 1000)):
            for name, samples in streams.items():
                body = [{"ts": ts, "load": v[0], "temp": v[1]} for ts, v in samples[half]]
                sender.send(f"{unique_topic}/sensors/{name}/data", json.dumps(body).encode(), name)
        assert sender.wait_all_accepted(40, 30)
        expected = 20 * (1000 - MIN_HISTORY + 1)
        collector.wait_for(lambda: _unique(collector) >= expected, 120)
        check_against_offline(collector.forecasts(), streams, small_bundle)
        assert daemon.stop() == 0, daemon.log()
        assert collector.counters()["mqtt_outbox_overflow"] == 0
    finally:
        daemon.kill()
        collector.close()
        sender.close()


def test_publisher_burst_with_unlimited_broker_inflight_loses_nothing(
    tmp_path, make_broker, small_bundle, unique_topic
):
    """8 publishers burst single-sample QoS 1 messages at a broker that sends without an
    in-flight limit, into a small inbox: nothing may be dropped and acknowledged."""
    broker = make_broker([*BROKER_CONFIG[:2], "max_inflight_messages 0"])
    cfg = write_config(
        tmp_path / "edge.toml", broker, small_bundle, unique_topic, state={"queue_size": 100}
    )
    streams = {f"p{i}": series(250, i) for i in range(16)}
    collector = Collector(
        broker.host, broker.port, [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    )
    senders = [Sender(broker.host, broker.port) for _ in range(8)]
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")

        def burst(sender: Sender, names: list[str]) -> None:
            for k in range(250):
                for name in names:
                    ts, v = streams[name][k]
                    sender.send(f"{unique_topic}/sensors/{name}/data", payload(ts, v), (name, ts))

        names = sorted(streams)
        threads = [
            threading.Thread(target=burst, args=(s, names[2 * i : 2 * i + 2]))
            for i, s in enumerate(senders)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for s in senders:
            assert s.wait_all_accepted(500, 60)
        expected = 16 * (250 - MIN_HISTORY + 1)
        collector.wait_for(lambda: _unique(collector) >= expected, 120)
        check_against_offline(collector.forecasts(), streams, small_bundle)
        assert daemon.stop() == 0, daemon.log()
        counters = collector.counters()
        assert counters["mqtt_dropped_queue_full"] == 0
        assert counters["mqtt_outbox_overflow"] == 0
    finally:
        daemon.kill()
        collector.close()
        for s in senders:
            s.close()


def test_sigkill_with_the_default_snapshot_interval_loses_and_corrupts_nothing(
    tmp_path, make_broker, small_bundle, unique_topic
):
    """SIGKILL mid-replay (QoS 1 in and out, snapshot every 300 s: no snapshot since the start):
    after the restart every forecast is there and equals the uninterrupted reference."""
    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        small_bundle,
        unique_topic,
        state={"snapshot_interval_s": 300},
    )
    streams = {f"k{i}": series(200, i) for i in range(5)}
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    stop_sending = threading.Event()

    def send_all() -> None:
        for k in range(200):
            for name, samples in streams.items():
                ts, v = samples[k]
                sender.send(f"{unique_topic}/sensors/{name}/data", payload(ts, v), (name, ts))
            time.sleep(0.004)

    try:
        daemon.wait_for_log("seqcast-edge serving")
        feeder = threading.Thread(target=send_all)
        feeder.start()
        assert collector.wait_for(lambda: _unique(collector) >= 5 * 60, 30)
        daemon.kill()  # SIGKILL mid-replay: no snapshot was ever taken
        daemon = DaemonProcess.start(cfg)
        daemon.wait_for_log("seqcast-edge serving")
        feeder.join()
        assert sender.wait_all_accepted(1000, 30)
        expected = 5 * (200 - MIN_HISTORY + 1)
        collector.wait_for(lambda: _unique(collector) >= expected, 60)
        dups = check_against_offline(collector.forecasts(), streams, small_bundle)
        print(f"duplicates after SIGKILL (QoS 1 allows them): {dups}")
        assert "replayed" in daemon.log()
        assert daemon.stop() == 0, daemon.log()
    finally:
        stop_sending.set()
        daemon.kill()
        collector.close()
        sender.close()


def test_long_stream_ids_are_rejected_and_counted(tmp_path, broker, small_bundle, unique_topic):
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    collector = Collector(
        broker.host, broker.port, [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    )
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        long_id, ok_id = "x" * 129, "y" * 128
        for ts, v in series(10, 0):
            for name in (long_id, ok_id):
                sender.send(f"{unique_topic}/sensors/{name}/data", payload(ts, v), (name, ts))
        assert sender.wait_all_accepted(20, 10)
        assert collector.wait_for(lambda: _unique(collector) >= 10 - MIN_HISTORY + 1, 20)
        # a status message is every 0.5 s: wait for one taken after all ten
        too_long = lambda: collector.counters().get("mqtt_stream_id_too_long")  # noqa: E731
        assert collector.wait_for(lambda: too_long() == 10, 10), too_long()
        assert {d["stream"] for d in collector.forecasts()} == {ok_id}
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        collector.close()
        sender.close()
