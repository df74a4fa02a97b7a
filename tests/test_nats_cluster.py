"""Three engine nodes (issue 14): kill one of them mid-replay and lose nothing.

deploy/nats/cluster/ runs three nats-server nodes on loopback (JetStream, MQTT streams on all
three, P = 4 here). Four workers (`seqcast-edge run --partition p`) are spread over the nodes,
each with the two other nodes as `[mqtt] fallback_brokers`; one QoS 1 publisher of 200 streams
(with the same fallbacks) and a collector on its own node. Node 1, which has two workers and the
publisher, is SIGKILLed half-way through the replay: its workers and the publisher go on at the
other nodes in the same sessions. Every forecast of one daemon on mosquitto must arrive, payload
for payload, each stream from its own partition, in order.

QoS 1 is at least once, so a message may come twice, and only after the kill: the publisher sends
again what the dead node never acknowledged (a worker drops a sample it already has: same ts,
counted streams_dropped_duplicate), a worker sends again a forecast the dead node never
acknowledged, and the collector's node redelivers (DUP flag) forecasts whose acknowledgement was
lost while the streams elected new leaders. Each repeat is the same forecast, byte for byte; the
first arrivals of a stream stay in order. The test counts and prints them.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon_harness import DaemonProcess, write_config
from tests.mqtt_clients import Collector, Sender
from tests.nats_server import NatsCluster, partition_of
from tests.test_partitioned import (  # noqa: F401 (single_daemon: the fixture)
    SAMPLES,
    STREAMS,
    P,
    against_single,
    by_stream,
    expected_count,
    nats_or_skip,
    single_daemon,
    start_worker,
    stream_samples,
)

pytestmark = [pytest.mark.broker, pytest.mark.nats, pytest.mark.tflite, pytest.mark.slow]

VICTIM = 0  # node-1: workers of partitions 0 and 3, and the publisher
NODE_OF = {0: 0, 1: 1, 2: 2, 3: 0}  # partition -> the node its worker starts on
COLLECTOR_NODE = 1
KILL_AFTER = 8  # rounds (one sample of every stream) handed to the publisher before the kill


@pytest.fixture
def cluster() -> Any:
    nats_or_skip()
    with NatsCluster(partitions=P) as nodes:
        yield nodes


def node_config(tmp: Path, cluster: NatsCluster, node: int, bundle: Path) -> Path:
    """The workers' config for one node: that node first, the two others as fallbacks."""
    others = [f"{n.host}:{n.port}" for i, n in enumerate(cluster.nodes) if i != node]
    return write_config(
        tmp / f"edge-node-{node + 1}.toml",
        cluster.nodes[node],  # type: ignore[arg-type]
        bundle,
        "w",
        mqtt={
            "client_id": "edge-part-{partition}",
            "fallback_brokers": others,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2.0,
        },
        input={"topic": "part/{partition}/sensors/{stream}"},
        output={"topic": "part/{partition}/forecasts/{stream}"},
        status={"topic": "status/{client_id}"},
        # the state copy in JetStream too, on all three nodes: it must ride out the kill
        state={
            "replicate": [cluster.nats_urls[node]]
            + [u for i, u in enumerate(cluster.nats_urls) if i != node],
            "replicas": 3,
            "snapshot_interval_s": 1.0,
        },
    )


def replay(sender: Sender, data: dict[str, list[bytes]], kill: threading.Event) -> int:
    """Every stream's samples in rounds, as `test_partitioned.replay`; after KILL_AFTER rounds it
    sets `kill` and waits until it is cleared (the node is dead), then goes on."""
    n = 0
    for k in range(SAMPLES):
        if k == KILL_AFTER:
            kill.set()
            while kill.is_set():
                time.sleep(0.01)
        for name in STREAMS:
            sender.send(f"sensors/{name}", data[name][k], (name, k))
            n += 1
        time.sleep(0.05)
    return n


def test_killing_one_of_three_nodes_loses_no_forecast(
    tmp_path: Path,
    cluster: NatsCluster,
    small_bundle: Path,
    single_daemon: dict[str, list],  # noqa: F811 (the fixture of test_partitioned.py)
) -> None:
    expected = expected_count(small_bundle)
    configs = [node_config(tmp_path, cluster, node, small_bundle) for node in range(3)]
    workers: list[DaemonProcess] = []
    collector_at = cluster.nodes[COLLECTOR_NODE]
    collector = Collector(collector_at.host, collector_at.port, ["part/+/forecasts/+"])
    statuses = Collector(collector_at.host, collector_at.port, ["status/+"])
    victim = cluster.nodes[VICTIM]
    others = [(n.host, n.port) for i, n in enumerate(cluster.nodes) if i != VICTIM]
    sender = Sender(victim.host, victim.port, fallbacks=others)
    try:
        for p in range(P):
            workers.append(start_worker(configs[NODE_OF[p]], p))
        started = time.monotonic()
        kill, sent, data = threading.Event(), [0], stream_samples()
        publisher = threading.Thread(
            target=lambda: sent.__setitem__(0, replay(sender, data, kill)), daemon=True
        )
        publisher.start()
        assert kill.wait(30)
        # the first round of forecasts is out, later ones (and their samples) are in flight
        assert collector.wait_for(lambda: len(collector.messages) >= len(STREAMS), 30)
        cluster.kill(VICTIM)  # SIGKILL: no goodbye to the workers, the publisher or the peers
        killed_at, before = time.monotonic(), len(collector.messages)
        kill.clear()
        publisher.join(60)
        assert not publisher.is_alive()
        all_accepted = sender.wait_all_accepted(sent[0], timeout=40)
        accepted = len(sender.accepted)
        assert all_accepted, f"publisher: {accepted}/{sent[0]} accepted\n{cluster.log()}"

        def distinct() -> int:
            with collector.lock:
                return len({(t, json.loads(p)["ts"]) for _, t, p in collector.messages})

        done = collector.wait_for(lambda: distinct() >= expected, 40)
        took = time.monotonic() - started
        logs = "\n".join(w.log() for w in workers)
        assert done, f"{distinct()}/{expected} forecasts\n{logs}\n{cluster.log()}"
        time.sleep(1.0)  # late repeats, if any, arrive now
        for w in workers:
            assert w.stop() == 0, w.log()
    finally:
        sender.close()
        collector.close()
        statuses.close()
        for w in workers:
            w.kill()
    # the failover really happened: the publisher and the victim's workers moved on
    assert sender.connections[0] == (victim.host, victim.port)
    assert len(sender.connections) >= 2 and (victim.host, victim.port) not in sender.connections[1:]
    moved = [p for p, node in NODE_OF.items() if node == VICTIM]
    for p in moved:
        log = workers[p].log()
        assert "cannot reach MQTT broker" in log or "lost connection" in log, log
        assert any(f"connected to MQTT broker {h}:{port}" in log for h, port in others), log
    # what arrived: each stream from its partition, every forecast of the single daemon, in order
    docs, served = by_stream(collector.messages)
    assert all(served[s] == {partition_of(s, P)} for s in STREAMS)
    lost, wrong, per_stream = against_single(docs, single_daemon)
    repeats = sum(per_stream.values())  # the same forecast once more (QoS 1: at least once)
    seen_at: set[tuple[str, float]] = set()
    repeated: list[tuple[float, bool]] = []  # (arrival, with the DUP flag) of every repeat
    for i, (at, topic, payload) in enumerate(collector.messages):
        key = (topic, json.loads(payload)["ts"])
        if key in seen_at:
            repeated.append((at, i in collector.redelivered))
        seen_at.add(key)
    assert len(repeated) == repeats
    last = {topic: json.loads(payload) for _, topic, payload in statuses.messages}
    assert sorted(last) == [f"status/edge-part-{p}" for p in range(P)]
    assert all(doc["state"] == "offline" for doc in last.values())  # each stopped cleanly
    dropped = sum(doc["counters"]["streams_dropped_duplicate"] for doc in last.values())
    print(
        f"node-{VICTIM + 1} killed {killed_at - started:.1f} s into the replay, after {before} of "
        f"{expected} forecasts; publisher connections {sender.connections}; {expected} forecasts "
        f"in {took:.1f} s; {repeats} repeated forecasts ({sum(d for _, d in repeated)} with DUP), "
        f"{dropped} repeated samples dropped by the workers, {lost} lost, {wrong} wrong"
    )
    assert (lost, wrong) == (0, 0)
    assert 0 < before < expected  # killed mid-replay, forecasts done and to do
    # repeats come from the failover, never before it: the subscriber's own node redelivers what
    # it had sent when the stream's replicas changed leader (DUP flag), or a worker published
    # again a forecast the dead node had stored without acknowledging it (no DUP flag)
    assert all(at > killed_at for at, _ in repeated), repeated[:3]
