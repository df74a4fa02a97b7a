"""Time you can trust (issue 9, finding 4): one wild timestamp must not silence a stream, a wrong
device clock must not destroy data, a clock stepped back must not make arrivals "late"."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from seqcast.edge.clock import ArrivalClock, ClockJudge
from seqcast.edge.counters import Counters
from seqcast.edge.path.jumps import JumpGuard
from seqcast.edge.path.streams import StreamTable
from tests.daemon_harness import DaemonProcess, write_config
from tests.mqtt_clients import Collector, Sender
from tests.test_faults import BROKER_CONFIG, check_against_offline, payload, series

DAY = 86400.0
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def guard_run(
    items: list[tuple[str, float]], max_gap_s: float = 7200.0, dt: float = 1.0, wait: float = 10.0
) -> tuple[list, Counters]:
    """Items arriving `dt` s apart through a guard that holds jumps for `wait` s, each through
    the table as the engine would take it; at the end, the wait runs out."""
    counters, now = Counters(), [0.0]
    table = StreamTable(8, 4, 1, [], max_gap_s=max_gap_s, counters=counters.view("streams_"))
    guard = JumpGuard(table, max_gap_s, table.counters, reorder_s=wait, clock=lambda: now[0])
    out = []

    def take(released: list) -> None:
        for s, t, _ in released:
            slot = table.lookup(s)
            table.admit(slot, t)
            out.append((s, t))

    for stream, ts in items:
        take(guard.filter([(stream, ts, (1.0,))]))
        now[0] += dt
        take(guard.due())
    now[0] += wait
    take(guard.due())
    return out, counters


T0 = 1.7e9


def steps(*ks: int, stream: str = "a") -> list[tuple[str, float]]:
    return [(stream, T0 + 1800 * k) for k in ks]


def test_one_sample_far_ahead_is_dropped_and_the_stream_goes_on() -> None:
    glitch = ("a", T0 + 20 * DAY)
    out, counters = guard_run([*steps(*range(5)), glitch, *steps(*range(5, 10))])
    assert out == steps(*range(10))  # the glitch never reached the stream; nothing was late
    assert counters["streams_held"] == 1 and counters["streams_dropped_outlier"] == 1
    assert counters["streams_dropped_late"] == 0


def test_a_lone_glitch_on_a_quiet_stream_waits_for_the_next_sample() -> None:
    """A stream reporting every 30 min: the wait runs out long before its next sample, which
    must still decide (a lone sample is never released by time alone)."""
    glitch = ("a", T0 + 20 * DAY)
    out, counters = guard_run([*steps(0, 1, 2), glitch, *steps(3, 4)], dt=1800.0)
    assert out == steps(0, 1, 2, 3, 4)
    assert counters["streams_dropped_outlier"] == 1


def test_a_real_outage_is_released_when_the_wait_is_over() -> None:
    before = steps(0, 1, 2)
    resumed = [("a", T0 + 3 * DAY + 1800 * k) for k in range(4)]
    out, counters = guard_run([*before, *resumed])
    assert out == before + resumed  # held, then released in order
    assert counters["streams_held"] == 4 and counters["streams_dropped_outlier"] == 0
    assert counters["streams_resets_gap"] == 1  # the engine restarts the stream for the gap


def test_a_slow_stream_resuming_after_an_outage_is_released_by_its_second_sample() -> None:
    before = steps(0, 1, 2)
    resumed = [("a", T0 + 3 * DAY + 1800 * k) for k in range(3)]
    out, _ = guard_run([*before, *resumed], dt=1800.0)
    assert out == before + resumed


def test_older_messages_delivered_after_a_newer_one_lose_nothing() -> None:
    """Around a broker restart, messages may arrive newest first: sample 10 before 3..9. The
    jump is held while the old timeline catches up, then released in order."""
    arrival = steps(0, 1, 2, 10, *range(3, 10), *range(11, 14))
    out, counters = guard_run(arrival)
    assert out == steps(*range(14))  # every sample, in time order
    assert counters["streams_dropped_outlier"] == 0 and counters["streams_dropped_late"] == 0


@pytest.mark.parametrize("tail", [True, False], ids=["stream-goes-on", "stream-ends"])
def test_a_long_run_of_newer_messages_before_the_older_block_loses_nothing(tail: bool) -> None:
    """What mosquitto 2.0.11 did after a SIGTERM restart in `make bench-faults`: 130 newer
    samples (well past max_gap) arrived first, the 225 older ones 2.6 s later."""
    arrival = steps(
        *range(50), *range(275, 405), *range(50, 275), *(range(405, 420) if tail else ())
    )
    out, counters = guard_run(arrival, dt=0.02)
    assert out == steps(*range(420 if tail else 405))
    assert counters["streams_dropped_late"] == 0 and counters["streams_dropped_outlier"] == 0
    assert counters["streams_resets_gap"] == 0


def test_a_sensor_that_glitches_again_and_again_never_moves_the_stream() -> None:
    items = []
    for k in range(12):
        items += steps(k)
        if k % 2:  # every other sample is followed by one 20 days ahead
            items.append(("a", T0 + 1800 * k + 20 * DAY))
    out, counters = guard_run(items)
    assert out == steps(*range(12))
    assert counters["streams_dropped_late"] == 0 and counters["streams_resets_gap"] == 0
    assert counters["streams_dropped_outlier"] >= 1


def test_other_streams_are_not_touched_by_a_glitch() -> None:
    items = [(s, T0 + 1800 * k) for k in range(4) for s in ("a", "b")]
    items.insert(5, ("a", T0 + 30 * DAY))
    out, _ = guard_run(items)
    assert [x for x in out if x[0] == "b"] == [x for x in items if x[0] == "b"]


def test_arrival_clock_never_runs_backwards(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ArrivalClock()
    first = clock.now()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600.0)  # the clock is stepped back 1 h
    later = [clock.now() for _ in range(100)]
    assert all(b >= a for a, b in zip([first, *later], later, strict=False))
    assert later[-1] >= first
    monkeypatch.setattr(time, "time", lambda: real() + DAY)  # NTP sets it forward a day
    assert clock.now() >= real() + DAY - 1.0  # a forward jump is followed


def test_clock_judge_blames_the_device_only_when_most_samples_look_future(tmp_path: Path) -> None:
    judge = ClockJudge(window=8, sync_file=tmp_path / "synced")
    for _ in range(7):
        judge.saw(future=False)
    judge.saw(future=True)  # one sensor's glitch
    assert not judge.device_clock_suspect()
    for _ in range(8):
        judge.saw(future=True)  # everything is "in the future": the device clock is behind
    assert judge.device_clock_suspect()
    (tmp_path / "synced").touch()  # systemd says the clock is synchronised: trust it
    assert not judge.device_clock_suspect()


# -- with the real daemon and a real broker --------------------------------------------------


@pytest.mark.broker
@pytest.mark.slow
def test_a_glitch_20_days_ahead_does_not_silence_the_stream(
    tmp_path, make_broker, small_bundle, unique_topic
):
    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    samples = series(60, 0)
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        topic = f"{unique_topic}/sensors/g/data"
        for k, (ts, v) in enumerate(samples):
            sender.send(topic, payload(ts, v), k)
            if k == 30:
                sender.send(topic, payload(ts + 20 * DAY, v), "glitch")
        assert sender.wait_all_accepted(61, 20)
        expected = 60 - 6 + 1
        collector.wait_for(lambda: len({d["ts"] for d in collector.forecasts()}) >= expected, 30)
        check_against_offline(collector.forecasts(), {"g": samples}, small_bundle)
        assert all(d["ts"] != samples[30][0] + 20 * DAY for d in collector.forecasts())
    finally:
        daemon.kill()
        collector.close()
        sender.close()


@pytest.mark.broker
@pytest.mark.slow
@pytest.mark.skipif(
    not Path(FAKETIME_LIB).exists() and not os.environ.get("CI"),
    reason="libfaketime is not installed (apt-get install faketime)",
)
def test_a_device_clock_two_days_behind_holds_input_instead_of_destroying_it(
    tmp_path, make_broker, small_bundle, unique_topic
):
    """The daemon runs with its clock two days behind (no RTC, no NTP yet): every sample is "in
    the future". They must be held unacknowledged, not counted as bad and lost; after a restart
    with the right clock the broker delivers them again and every forecast is made."""
    assert shutil.which("faketime"), "libfaketime is required for this test"
    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        small_bundle,
        unique_topic,
        input={"clock_synced_file": str(tmp_path / "never-synced")},
    )
    samples = series(40, 3)
    now = samples[0][0] + 1800 * ((time.time() - samples[0][0]) // 1800)  # on the model's grid
    samples = [(now - 1800 * (40 - k), v) for k, (_, v) in enumerate(samples)]  # recent
    collector = Collector(
        broker.host, broker.port, [f"{unique_topic}/forecasts/+", f"{unique_topic}/status"]
    )
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg, {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": "-2d"})
    try:
        daemon.wait_for_log("seqcast-edge serving")
        for k, (ts, v) in enumerate(samples):
            sender.send(f"{unique_topic}/sensors/c/data", payload(ts, v), k)
        assert sender.wait_all_accepted(40, 20)
        daemon.wait_for_log("device clock looks wrong")
        assert collector.wait_for(lambda: collector.counters().get("clock_untrusted") == 1, 10)
        time.sleep(2.0)
        counters = collector.counters()
        assert counters.get("mqtt_held_for_clock", 0) >= 1
        assert counters.get("bad_future_timestamp", 0) == 0 and counters["mqtt_acked"] == 0
        assert collector.forecasts() == []
        # libfaketime makes timed waits unreliable at shutdown: end it the hard way, which also
        # shows nothing held depends on a clean exit (the broker still has every message)
        daemon.kill()
        daemon = DaemonProcess.start(cfg)  # rebooted with NTP: the clock is right
        expected = 40 - 6 + 1
        collector.wait_for(lambda: len({d["ts"] for d in collector.forecasts()}) >= expected, 30)
        check_against_offline(collector.forecasts(), {"c": samples}, small_bundle)
    finally:
        daemon.kill()
        collector.close()
        sender.close()


@pytest.mark.broker
def test_asking_for_redelivery_brings_unacknowledged_messages_back(broker, unique_topic):
    """What the daemon does once the clock is trusted again: drop the connection, keep the
    session; the broker delivers every QoS 1 message it has not had acknowledged again."""
    from tests.mqtt_clients import make_mqtt_link

    link = make_mqtt_link(
        unique_topic + "/{stream}", host=broker.host, port=broker.port, reconnect_min_s=0.1,
        reconnect_max_s=0.5,
    )  # fmt: skip
    link.start()
    try:
        assert link.wait_subscribed(5), link.last_error
        for i in range(3):
            broker.pub(f"{unique_topic}/s{i}", str(i), qos=1)
        first = [link.inbox.get(timeout=5) for _ in range(3)]  # taken, never acknowledged
        link.ask_redelivery()
        again = [link.inbox.get(timeout=10) for _ in range(3)]
        assert [m.payload for m in again] == [m.payload for m in first]
        assert all(m.dup for m in again)
    finally:
        link.stop(timeout=1)
