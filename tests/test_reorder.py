"""Samples that overtake the ones before them by less than `max_gap` lose nothing (issue 9).

Stock paho, publishing QoS 1 flat out, sends a new message as soon as an in-flight slot frees,
ahead of the ones still queued: a stream's sample k + 1 reaches the daemon before sample k. Taken
at face value, k + 1 leaves a one-step hole that the aligner fills, and k then comes too late
(dropped as stale): one forecast lost, and the next ones computed from a made-up value. The
jump guard now holds every sample that leaves a hole until the hole closes (released at once)
or `streams.reorder_s` pass (a real hole: released and filled as before).
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.edge.config import StreamsConfig
from seqcast.edge.counters import Counters
from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import load_model
from seqcast.edge.mqtt import InboundMessage
from seqcast.edge.path.jumps import JumpGuard, step_hole
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.path.streams import StreamTable
from tests.daemon_harness import DaemonProcess, offline_forecasts, write_config
from tests.mqtt_clients import Collector, Sender
from tests.test_faults import BROKER_CONFIG, check_against_offline, payload, series

T0, STEP = 1.7e9, 1800.0


class Guarded:
    """A guard (holes tested as the unaligned pipeline does) in front of a stream table, on a
    clock the test moves; `out` records (stream, step, clock) for every sample let through."""

    def __init__(self, wait: float = 10.0, max_gap_steps: float = 4.0) -> None:
        self.now = 0.0
        self.counters = Counters()
        gap = max_gap_steps * STEP
        self.table = StreamTable(
            8, 4, 1, [], max_gap_s=gap, counters=self.counters.view("streams_")
        )
        self.guard = JumpGuard(
            self.table,
            gap,
            self.table.counters,
            reorder_s=wait,
            clock=lambda: self.now,
            hole=step_hole(STEP),
        )
        self.out: list[tuple[str, int, float]] = []

    def _take(self, released: list) -> None:
        for s, t, _ in released:
            if self.table.admit(self.table.lookup(s), t) is not None:
                self.out.append((s, round((t - T0) / STEP), self.now))

    def send(self, k: int, stream: str = "a", dt: float = 0.01) -> None:
        self._take(self.guard.filter([(stream, T0 + STEP * k, (1.0,))]))
        self.advance(dt)

    def advance(self, dt: float) -> None:
        self.now += dt
        self._take(self.guard.due())

    def steps(self, stream: str = "a") -> list[int]:
        return [k for s, k, _ in self.out if s == stream]


def test_a_sample_one_step_early_waits_for_the_one_it_overtook() -> None:
    g = Guarded()
    for k in (0, 1, 2, 4, 3, 5, 7, 6, 8):
        g.send(k)
    assert g.steps() == list(range(9))  # in time order, none late
    assert g.counters["streams_held"] == 2 and g.counters["streams_dropped_late"] == 0
    # released as soon as the hole closed, not at the end of the wait
    assert all(when < 1.0 for _, _, when in g.out)


def test_a_real_short_hole_is_released_when_the_wait_is_over() -> None:
    g = Guarded(wait=10.0)
    for k in (0, 1, 2, 4, 5):  # 3 never comes
        g.send(k)
    assert g.steps() == [0, 1, 2]  # 4 and 5 are held...
    g.advance(10.0)
    assert g.steps() == [0, 1, 2, 4, 5]  # ... until the wait is over, then taken in order
    assert g.counters["streams_dropped_outlier"] == 0


def test_an_older_block_slower_than_the_wait_is_still_waited_for() -> None:
    """Newer samples first, then the older block one sample per second: while the old timeline
    comes nearer, the wait starts again, so nothing is released before its predecessors."""
    g = Guarded(wait=4.0)  # 3 and 4 come 1 and 2 s after 11; then 5, within max_gap of 9
    for k in (0, 1, 2, 9, 10, 11, 3, 4, 5, 6, 7, 8, 12):
        g.send(k, dt=1.0)
    g.advance(10.0)
    assert g.steps() == list(range(13))
    assert g.counters["streams_dropped_late"] == 0


def test_a_short_hole_then_a_far_glitch() -> None:
    """A lone sample after a short hole is released when a far one comes (it is within reach of
    the stream); the far one is held, and dropped as the stream goes on without it."""
    g = Guarded()
    for k in (0, 1, 3, 300, 4, 5, 6):
        g.send(k)
    g.advance(10.0)
    assert g.steps() == [0, 1, 3, 4, 5, 6]
    assert g.counters["streams_dropped_outlier"] == 1


def test_other_streams_are_never_delayed_by_a_held_one() -> None:
    g = Guarded()
    g.send(0, "a")
    g.send(0, "b")
    g.send(2, "a")  # held: a's 1 is missing
    for k in range(1, 5):
        g.send(k, "b")
    assert g.steps("b") == [0, 1, 2, 3, 4] and g.steps("a") == [0]


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(5, 60),
    jitter=st.lists(st.floats(0, 3.5), min_size=60, max_size=60),
    lost=st.sets(st.integers(1, 58), max_size=4),
)
def test_local_reorders_and_lost_samples_come_out_in_order(n, jitter, lost) -> None:
    """Each sample delayed by up to 3.5 sending slots (so it overtakes at most 3 steps: less than
    max_gap), some never sent: what comes out is every sent step, once, in time order. (Step 0
    comes first: a stream's very first sample cannot know that an older one is on its way.)"""
    delay = [0.0, *jitter[1:]]
    arrival = sorted((k for k in range(n) if k not in lost), key=lambda k: k + delay[k])
    g = Guarded()
    for k in arrival:
        g.send(k)
    g.advance(10.0)
    assert g.steps() == sorted(arrival)
    assert g.counters["streams_dropped_late"] == 0 and g.counters["streams_dropped_outlier"] == 0


@settings(max_examples=300, deadline=None)
@given(
    a=st.integers(3, 30),
    skip=st.integers(6, 40),
    newer=st.integers(1, 30),
    tail=st.integers(0, 20),
    jitter=st.lists(st.floats(0, 3.5), min_size=200, max_size=200),
    dt=st.sampled_from([0.001, 0.05, 0.2]),
)
def test_a_newer_block_first_then_the_older_one_comes_out_in_order(
    a, skip, newer, tail, jitter, dt
) -> None:
    """What mosquitto does after a restart (a block of newer samples beyond max_gap first, then
    the older block), with local reorders inside every block on top: every step, in order, as
    long as the older block starts within `reorder_s` of the newer block's end."""
    b = a + skip
    blocks = [range(a), range(b, b + newer), range(a, b), range(b + newer, b + newer + tail)]
    delay = [0.0, *jitter[1:]]
    arrival = [k for ks in blocks for k in sorted(ks, key=lambda k: k + delay[k])]
    g = Guarded()
    for k in arrival:
        g.send(k, dt=dt)
    g.advance(10.0)
    g.advance(10.0)
    assert g.steps() == sorted(arrival)
    assert g.counters["streams_dropped_outlier"] == 0


# -- the real pipeline and interpreter -------------------------------------------------------------


def _messages(stream: str, ks: list[int], samples: list) -> list[InboundMessage]:
    return [InboundMessage(stream, f"in/{stream}", payload(*samples[k]), time.time()) for k in ks]


@pytest.mark.tflite
@pytest.mark.parametrize("align", ["mean", "off"])
def test_swapped_neighbours_give_the_forecasts_of_the_ordered_series(small_bundle, align) -> None:
    model, _ = load_model(read_bundle(small_bundle))
    samples = series(60, 0)
    swapped = list(range(60))
    for i in range(8, 58, 7):  # every 7th sample overtakes the one before it
        swapped[i - 1], swapped[i] = swapped[i], swapped[i - 1]

    def run(order: list[int]) -> tuple[list[tuple[str, bytes]], Counters]:
        p = Pipeline(model, streams=StreamsConfig(align=align), output_topic="out/{stream}")
        return p.handle(_messages("r", order, samples)), p.counters

    ordered, _ = run(list(range(60)))
    assert len(ordered) == 60 - model.bundle.manifest.min_history + 1
    got, counters = run(swapped)
    assert got == ordered
    assert counters["streams_dropped_stale"] == 0 and counters["streams_filled"] == 0


# -- the real daemon over a real broker ------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.tflite
@pytest.mark.slow
def test_out_of_order_publishes_over_a_broker_lose_nothing(
    tmp_path, broker, small_bundle, unique_topic
):
    """One stream's messages published with neighbours swapped (as paho does under load), then
    a real hole: every forecast equals the offline reference of the series, the one after the
    hole as the trainer would fill it."""
    cfg = write_config(
        tmp_path / "edge.toml", broker, small_bundle, unique_topic, streams={"reorder_s": 1.0}
    )
    samples = series(70, 0)
    order = [k for k in range(70) if k != 50]  # 50 is lost
    for i in range(5, 45, 6):
        order[i - 1], order[i] = order[i], order[i - 1]
    filled = list(samples)
    filled[50] = (
        samples[50][0],
        [(a + b) / 2 for a, b in zip(samples[49][1], samples[51][1], strict=True)],
    )
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    sender = Sender(broker.host, broker.port)
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        for k in order:
            sender.send(f"{unique_topic}/sensors/r/data", payload(*samples[k]), k)
        assert sender.wait_all_accepted(len(order), 10)
        expected = len(offline_forecasts(small_bundle, filled, "stream"))
        assert collector.wait_for(lambda: len(collector.forecasts()) >= expected, 20)
        check_against_offline(collector.forecasts(), {"r": filled}, small_bundle)
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
        collector.close()
        sender.close()


@pytest.mark.broker
@pytest.mark.tflite
@pytest.mark.slow
def test_a_stock_paho_flood_loses_nothing(tmp_path, make_broker, small_bundle, unique_topic):
    """Twenty streams published QoS 1 flat out by a stock paho client (default in-flight window,
    unbounded queue): the publisher's own reordering costs no forecast. (The broker queues as
    many messages as it takes for the collector: mosquitto's default drops past 1000.)"""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    broker = make_broker(BROKER_CONFIG)
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    data = {f"p{i}": series(150, i) for i in range(20)}
    collector = Collector(broker.host, broker.port, [f"{unique_topic}/forecasts/+"])
    daemon = DaemonProcess.start(cfg)
    flood = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"flood-{unique_topic[-8:]}")
    try:
        daemon.wait_for_log("seqcast-edge serving")
        flood.connect(broker.host, broker.port)
        flood.loop_start()
        infos = [
            flood.publish(f"{unique_topic}/sensors/{name}/data", payload(*samples[k]), qos=1)
            for k in range(150)
            for name, samples in data.items()
        ]
        for info in infos:
            info.wait_for_publish(30)
        per_stream = len(offline_forecasts(small_bundle, data["p0"], "stream"))
        expected = per_stream * len(data)
        collector.wait_for(lambda: len(collector.forecasts()) >= expected, 60)
        check_against_offline(collector.forecasts(), data, small_bundle)
        assert daemon.stop() == 0, daemon.log()
    finally:
        flood.loop_stop()
        flood.disconnect()
        daemon.kill()
        collector.close()
