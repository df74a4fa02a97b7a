"""`[metrics] listen` and the status message, with a real mosquitto and the real daemon.

One daemon (module scope) serves /metrics on a free loopback port; the test sends it K bad
payloads (three reasons) then N good samples on one stream, scrapes /metrics with a plain HTTP
GET and parses it with prometheus-client's own parser: its counts must be what was sent. The
status subscriber is there before the daemon starts, so it sees the very first message.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from seqcast.edge.config import ConfigError, parse_config
from seqcast.edge.counters import BAD_REASONS, CATALOG, HISTOGRAMS, Histogram
from seqcast.edge.path.pipeline import Pipeline
from seqcast.edge.service.metrics import REASON_FAMILIES, UNLABELLED
from tests.broker import free_port
from tests.daemon_harness import BLOCKED_TF_ENTRY, DaemonProcess, publish_lines, write_config

pytestmark = [pytest.mark.broker, pytest.mark.tflite]

N_GOOD = 20
T0 = 1_700_000_000.0
BAD = {  # reason -> payloads
    "invalid_utf8": [b"\xff\xfe\xfd", b"\xc3\x28"],
    "invalid_json": [b"{not json", b'{"ts": 1', b"{]"],
    "out_of_range": [json.dumps({"ts": T0 - 1800, "load": 1e12, "temp": 1.0}).encode()],
}
N_BAD = sum(map(len, BAD.values()))


@dataclass
class Served:
    port: int
    metrics: dict[str, Any]  # family name -> Metric
    statuses: list[dict[str, Any]]  # every status message, in order, the first one first
    forecasts: list[dict[str, Any]]
    log: str


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert r.status == 200
        text = r.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    family = families[name]
    for s in family.samples:
        suffix = s.name.removeprefix(name)
        if suffix in ("", "_total", "_info") and s.labels == labels:
            return float(s.value)
    raise KeyError(f"{name} {labels}")


def sample(families: dict[str, Any], name: str, suffix: str) -> float:
    return float(next(s.value for s in families[name].samples if s.name == name + suffix))


@pytest.fixture(scope="module")
def served(small_bundle, broker, tmp_path_factory) -> Any:
    prefix = f"t/{uuid.uuid4().hex[:12]}"
    port = free_port()
    folder = tmp_path_factory.mktemp("metrics")
    listen = {"listen": f"127.0.0.1:{port}"}
    cfg = write_config(folder / "edge.toml", broker, small_bundle, prefix, metrics=listen)
    good = [
        json.dumps({"ts": T0 + 1800 * i, "load": 100.0 + i, "temp": 10.0}).encode()
        for i in range(N_GOOD)
    ]
    bad = [p for payloads in BAD.values() for p in payloads]
    with broker.subscriber(f"{prefix}/status", qos=1) as status_sub:
        daemon = DaemonProcess.start(cfg)
        try:
            daemon.wait_for_log("seqcast-edge serving")
            with broker.subscriber(f"{prefix}/forecasts/+", qos=1) as sub:
                # one topic, one publisher: the broker keeps the order, so the bad payloads are
                # handled before the last forecast exists
                publish_lines(broker, f"{prefix}/sensors/m/data", bad + good)
                forecasts = [json.loads(p) for _, p in sub.collect(N_GOOD - 5, timeout=30)]
            # settled: every input acknowledged (after its forecasts), nothing left to count
            everything = N_BAD + N_GOOD
            deadline = time.monotonic() + 15
            while value(families := scrape(port), "seqcast_mqtt_acked") < everything:
                assert time.monotonic() < deadline, "inputs not acknowledged"
                time.sleep(0.05)
            statuses = []  # then a status message of the settled daemon (interval 0.5 s)
            while not statuses or statuses[-1]["counters"]["mqtt_acked"] < everything:
                assert time.monotonic() < deadline, "no status with every input acknowledged"
                statuses += [json.loads(p) for _, p in status_sub.collect(1, timeout=2)]
            families = scrape(port)
            assert daemon.stop() == 0, daemon.log()
            yield Served(port, families, statuses, forecasts, daemon.log())
        finally:
            daemon.kill()


def test_metrics_counts_match_what_was_sent(served: Served) -> None:
    m = served.metrics
    assert len(served.forecasts) == N_GOOD - 5  # warm-up: the small bundle's min_history is 6
    assert value(m, "seqcast_messages") == N_BAD + N_GOOD
    assert value(m, "seqcast_samples") == N_GOOD
    assert value(m, "seqcast_forecasts") == N_GOOD - 5
    assert value(m, "seqcast_bad_payloads") == N_BAD
    for reason, payloads in BAD.items():
        assert value(m, "seqcast_bad_input", reason=reason) == len(payloads), reason
    assert value(m, "seqcast_streams") == 1
    assert value(m, "seqcast_streams_created") == 1
    assert value(m, "seqcast_mqtt_connects") == 1
    assert value(m, "seqcast_samples_dropped", reason="late") == 0
    assert value(m, "seqcast_stream_resets", reason="gap") == 0
    # deploy events are exposed even with deployment off (all zero)
    assert value(m, "seqcast_deploy_received") == 0
    assert value(m, "seqcast_deploy_rejected", reason="bad_signature") == 0


def test_every_status_counter_is_in_metrics_with_the_same_value(served: Served) -> None:
    m, counters = served.metrics, served.statuses[-1]["counters"]
    for name, count in counters.items():
        if name in ("queue", "streams", "clock_untrusted"):  # gauges: may move in between
            assert f"seqcast_{name}" in m, name
            continue
        prefix = next((p for p in REASON_FAMILIES if name.startswith(p)), None)
        if prefix is None or name in UNLABELLED:
            assert value(m, f"seqcast_{name}") == count, name
        else:
            metric = f"seqcast_{REASON_FAMILIES[prefix][0]}"
            assert value(m, metric, reason=name.removeprefix(prefix)) == count, name


def test_histograms_observe_every_invoke_and_batch(served: Served) -> None:
    m = served.metrics
    assert set(HISTOGRAMS) <= {n.removeprefix("seqcast_") for n in m}
    invokes = value(m, "seqcast_invokes")
    assert invokes >= 1
    assert sample(m, "seqcast_inference_seconds", "_count") == invokes
    assert 0 < sample(m, "seqcast_inference_seconds", "_sum") < 5
    # stream mode: each good sample is one row of one invoke
    assert sample(m, "seqcast_invoke_rows", "_sum") == N_GOOD
    assert sample(m, "seqcast_batch_messages", "_sum") == N_BAD + N_GOOD
    buckets = [s for s in m["seqcast_inference_seconds"].samples if s.name.endswith("_bucket")]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == invokes


def test_info_names_the_version_and_the_model_it_serves(served: Served) -> None:
    m = served.metrics
    (info,) = m["seqcast_info"].samples  # the text format has no info type: a gauge of 1
    assert info.name == "seqcast_info" and info.value == 1
    assert info.labels["model_id"] == served.forecasts[0]["model"]
    assert info.labels["backend"] == "litert" and info.labels["mode"] == "stream"
    assert info.labels["version"] == metadata.version("seqcast")
    assert info.labels["release"] == ""  # no deployment over MQTT
    assert value(m, "seqcast_uptime_seconds") > 0
    assert f"metrics on http://127.0.0.1:{served.port}/metrics" in served.log


def test_status_has_the_whole_schema_from_the_first_message_on(served: Served) -> None:
    first, last = served.statuses[0], served.statuses[-1]
    assert first["state"] == "online"
    assert first["counters"]["samples"] == 0 and last["counters"]["samples"] == N_GOOD
    for doc in (first, last):
        assert doc["version"] == metadata.version("seqcast")
        assert doc["model_id"] == served.forecasts[0]["model"]
        assert doc["backend"] == "litert" and doc["mode"] == "stream"
        assert doc["clock"]["trusted"] is True and isinstance(doc["clock"]["synchronised"], bool)
        assert ("quality" in doc) == hasattr(Pipeline, "quality_snapshot")
    assert 0 <= first["uptime_s"] < last["uptime_s"]
    assert first.keys() == last.keys()
    assert first["counters"].keys() == last["counters"].keys()
    assert set(CATALOG) | {"streams", "queue", "clock_untrusted"} <= set(first["counters"])
    # the status and /metrics read the same registry
    assert last["counters"]["bad_invalid_json"] == value(
        served.metrics, "seqcast_bad_input", reason="invalid_json"
    )


def test_a_port_in_use_fails_at_start_in_one_line(small_bundle, broker, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listen = {"listen": f"127.0.0.1:{port}"}
        cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, "t/busy", metrics=listen)
        proc = subprocess.run(
            [sys.executable, "-c", BLOCKED_TF_ENTRY, "run", "-c", str(cfg)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        f"seqcast-edge: error: metrics.listen: cannot serve on 127.0.0.1:{port}: "
        "Address already in use"
    ], proc.stderr


@pytest.mark.parametrize("listen", ["9108", "localhost", ":9108", "127.0.0.1:0", "h:99999"])
def test_a_bad_listen_address_is_a_config_error(listen: str) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.listen: must be \"host:port\""):
        parse_config({"model": {"path": "m"}, "metrics": {"listen": listen}})


def test_metrics_are_off_by_default() -> None:
    cfg = parse_config({"model": {"path": "m"}})
    assert cfg.metrics.listen == ""
    assert parse_config(
        {"model": {"path": "m"}, "metrics": {"listen": "[::1]:9"}}
    ).metrics.address == ("::1", 9)


def test_every_reason_the_decoders_raise_is_declared() -> None:
    """The status and /metrics have every `bad_<reason>` from the start: the list is complete."""
    folder = Path(__file__).resolve().parents[1] / "edge" / "path"
    source = "\n".join(p.read_text() for p in folder.glob("*.py"))
    raised = set(re.findall(r'PayloadError\(\s*"(\w+)"', source))
    assert len(raised) >= 10
    assert raised | {"out_of_range"} == set(BAD_REASONS)


def test_the_daemon_imports_prometheus_client_only_when_metrics_are_on() -> None:
    """prometheus-client takes about 0.5 s to import: a daemon without metrics never pays it."""
    code = "import sys, seqcast.edge.cli, seqcast.edge.service.daemon; print(sorted(sys.modules))"
    modules = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "'seqcast.edge.service.daemon'" in modules
    assert "prometheus_client" not in modules


def test_a_histogram_counts_a_value_equal_to_a_bound_in_that_bound() -> None:
    h = Histogram([0.5, 1.0])
    for v in (0.5, 0.7, 1.0, 3.0):
        h.observe(v)
    assert h.cumulative() == ([(0.5, 1), (1.0, 3), (float("inf"), 4)], 5.2)


QUALITY = {
    "a": {"mae": [1.0, 2.0], "persistence_mae": [2.0, 2.5], "n": 5, "drifting": False},
    "b": {"mae": [3.0, 4.0], "persistence_mae": [1.0, 1.5], "n": 9, "drifting": True},
    "c": {"mae": [0.0, 0.0], "persistence_mae": [0.0, 0.0], "n": 0, "drifting": False},
}


@pytest.fixture(scope="module")
def report(small_bundle, tmp_path_factory) -> Any:
    """A `StatusReport` over a real pipeline (the small bundle in the real interpreter)."""
    from seqcast.edge.counters import Counters
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.service.clockhold import ClockHold
    from seqcast.edge.service.status import StatusReport

    counters = Counters()
    model, _ = load_model(read_bundle(small_bundle))
    pipeline = Pipeline(model, counters=counters)
    synced = tmp_path_factory.mktemp("clock") / "synchronized"
    return StatusReport(pipeline, ClockHold(counters, synced, 86400.0))


@pytest.mark.parametrize(
    "snapshot",
    [{"streams": QUALITY, "summary": {"n": 14}}, {**QUALITY, "overall": {"n": 14}}],
    ids=["under-streams", "top-level"],
)
def test_live_quality_reaches_the_status_and_metrics(report, snapshot) -> None:
    """The contract with live forecast quality (issue 13): the pipeline's `quality_snapshot()`
    is read at publish and scrape time; per stream `mae`, `persistence_mae`, `n`, `drifting`."""
    from prometheus_client import CollectorRegistry, generate_latest

    from seqcast.edge.service.metrics import RegistryCollector
    from seqcast.edge.service.status import quality_summary

    report.pipeline.quality_snapshot = lambda: snapshot  # the live helper's object, as agreed
    # the status message reads the counts alone (tests/test_quality.py: they equal the summary's)
    report.pipeline.quality_counts = lambda: quality_summary(snapshot)
    try:
        assert report.fields()["quality"] == {"streams_scored": 2, "streams_drifting": 1}
        registry = CollectorRegistry()
        registry.register(RegistryCollector(report.pipeline.counters, report))
        text = generate_latest(registry).decode()
    finally:
        del report.pipeline.quality_snapshot, report.pipeline.quality_counts
    m = {f.name: f for f in text_string_to_metric_families(text)}
    assert value(m, "seqcast_quality_streams_scored") == 2
    assert [s.labels for s in m["seqcast_quality_drifting"].samples] == [{"stream": "b"}]
    mae = {
        (s.labels["step"], s.labels["method"]): s.value for s in m["seqcast_quality_mae"].samples
    }
    # the mean over the scored streams a and b (c has scored nothing yet)
    assert mae == {
        ("1", "model"): 2.0,
        ("2", "model"): 3.0,
        ("1", "persistence"): 1.5,
        ("2", "persistence"): 2.0,
    }


def test_an_address_not_on_this_host_is_one_line(report) -> None:
    from seqcast.edge.config import MetricsConfig
    from seqcast.edge.service.metrics import MetricsServer

    cfg = MetricsConfig(listen="192.0.2.1:9108")  # TEST-NET-1: never an address of this host
    with pytest.raises(ConfigError) as caught:
        MetricsServer(cfg, report.pipeline.counters, report)
    assert str(caught.value) == (
        "metrics.listen: cannot serve on 192.0.2.1:9108: Cannot assign requested address"
    )


def test_the_log_says_what_happened_since_its_last_summary(report, caplog) -> None:
    counters = report.pipeline.counters
    assert not report.log_summary(counters, 0)  # 0: never
    assert not report.log_summary(counters, 3600)  # not due yet
    with caplog.at_level(logging.INFO, logger="seqcast.edge.service.daemon"):
        assert report.log_summary(counters, 1e-9)  # due: everything since start
        counters.inc("samples", 7)
        counters.inc("forecasts", 5)
        counters.inc("streams_dropped_late", 2)
        counters.inc("mqtt_dropped_queue_full", 1)
        counters.inc("streams_resets_gap", 3)
        assert report.log_summary(counters, 1e-9)
    first, second = (r.getMessage() for r in caplog.records[-2:])
    assert "0 samples, 0 forecasts" in first
    assert "7 samples, 5 forecasts, 0 bad payloads, 3 dropped, 3 stream resets" in second
