"""Issue 12's acceptance: a fleet of real daemons, installed from the wheel with only the edge
extra, takes signed releases over a real mosquitto.

Three `seqcast-edge` processes (from the `edge_venv` fixture: the venv
`deploy/install.sh` made from the wheel, no PYTHONPATH) serve v1 from their
`[model] path` and follow channel `stable`; a feeder publishes one sensor sample every 50 ms on
the input topic they share. The releases are made with the real `seqcast-deploy keygen`, `sign`
and `push` from the same venv; what the push command refuses to send (an unsigned bundle, a
tampered copy, a bundle signed for another channel) is published raw with `mosquitto_pub`, as a
rogue or mistaken publisher would. Every bundle is the small trained LSTM (`small_bundle`)
rewritten under another name, so each has its own model id and forecasts say which one served.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from seqcast.edge.model.bundle import Manifest, Scaler, read_bundle, write_bundle
from seqcast.edge.model.runtime import load_model
from seqcast.edge.model.signature import join_delivery
from tests.broker import Broker
from tests.daemon_harness import DaemonProcess, write_config
from tests.mqtt_clients import Collector, Sender

pytestmark = [pytest.mark.slow]

CHANNEL = "stable"
INTERVAL_S = 1800.0  # the synthetic series' grid (tests/synth.py)


def renamed(src: Path, out: Path, name: str, scaler: Scaler | None = None) -> Path:
    b = read_bundle(src)
    m = Manifest(**{**b.manifest.__dict__, "name": name, "scaler": scaler or b.manifest.scaler})
    return write_bundle(out, m, b.models).path or out


def overflowing(src: Path, out: Path) -> Path:
    """v3, a release that passes its self-test but gives non-finite outputs on live data.

    The self-test vectors are in the model's scaled units, so they check the graph, not the
    scaler that turns its outputs into the target's units. This bundle is v2's graph and
    vectors with a target standard deviation of 1e300 (finite and positive, so the bundle
    reader accepts it: a trainer bug, say): every unscaled forecast overflows float32 to inf
    and cannot be published. (Overflowing the *inputs* instead would not reach the model: the
    engine's range screen rejects such samples as bad input, `bad_out_of_range`.)"""
    m = read_bundle(src).manifest
    s = m.scaler
    broken = Scaler(s.feature_mean, s.feature_std, s.target_mean, [1e300] * len(s.target_std))
    return renamed(src, out, "fleet-v3-overflow", broken)


@pytest.fixture(scope="module")
def releases(small_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("releases")
    out = {
        "v1": renamed(small_bundle, tmp / "v1.seqcast", "fleet-v1"),
        "v2": renamed(small_bundle, tmp / "v2.seqcast", "fleet-v2"),
    }
    out["v3"] = overflowing(out["v2"], tmp / "v3.seqcast")
    _, report = load_model(read_bundle(out["v3"]), isolate=False)
    assert report.passed  # the self-test cannot see it
    return out


def deploy_cli(bin_dir: Path, *args: str | Path) -> str:
    """`seqcast-deploy ARGS` from the venv (no PYTHONPATH: the installed wheel's code runs)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(bin_dir / "seqcast-deploy"), *map(str, args)],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


class Fleet:
    """The daemons' configs and processes, the feeder and a collector of everything they say."""

    def __init__(self, broker: Broker, bin_dir: Path, tmp: Path, v1: Path, key: Path) -> None:
        self.broker, self.bin = broker, bin_dir
        self.prefix = f"fleet-{uuid.uuid4().hex[:8]}"
        self.deploy_topic = f"{self.prefix}/deploy/{{channel}}"
        self.configs: dict[str, Path] = {}
        self.daemons: dict[str, DaemonProcess] = {}
        self.v1, self.key, self.tmp = v1, key, tmp
        topics = ["seqcast/+/deploy", "seqcast/+/status", f"{self.prefix}/+/forecasts/+"]
        self.collector = Collector(broker.host, broker.port, topics)
        self.sender = Sender(broker.host, broker.port)
        self.sent = 0
        self._feeding = threading.Event()
        self._feeder = threading.Thread(target=self._feed, daemon=True)

    def config(self, name: str, **deploy: Any) -> Path:
        where = self.tmp / name
        where.mkdir(exist_ok=True)
        cid = f"{self.prefix}-{name}"
        return write_config(
            where / "edge.toml",
            self.broker,
            self.v1,
            self.prefix,
            mqtt={"client_id": cid},
            input={"topic": f"{self.prefix}/sensors/{{stream}}/data"},
            output={"topic": f"{self.prefix}/{name}/forecasts/{{stream}}"},
            status={"topic": "seqcast/{client_id}/status", "interval_s": 0.5},
            model={"isolate_selftest": False},
            deploy={
                "channel": CHANNEL,
                "public_key": str(self.key),
                "topic": self.deploy_topic,
                "probation_batches": 3,
                "probation_s": 1.0,
                **deploy,
            },
        )

    def start(self, name: str, **deploy: Any) -> DaemonProcess:
        if name not in self.configs:
            self.configs[name] = self.config(name, **deploy)
        self.daemons[name] = DaemonProcess.start(self.configs[name], installed=self.bin)
        return self.daemons[name]

    # -- what the collector saw ---------------------------------------------------------------
    def _docs(self, topic: str) -> list[tuple[float, dict[str, Any]]]:
        with self.collector.lock:
            found = [(t, p) for t, top, p in self.collector.messages if top == topic]
        return [(t, json.loads(p)) for t, p in found if p]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [d for _, d in self._docs(f"seqcast/{self.prefix}-{name}/deploy")]

    def counters(self, name: str) -> dict[str, int]:
        docs = self._docs(f"seqcast/{self.prefix}-{name}/status")
        return docs[-1][1]["counters"] if docs else {}

    def models_since(self, name: str, since: float) -> list[str]:
        """Model ids in the forecasts `name` published after monotonic time `since`."""
        with self.collector.lock:
            found = [
                p
                for t, top, p in self.collector.messages
                if t > since and top.startswith(f"{self.prefix}/{name}/forecasts/")
            ]
        return [json.loads(p)["model"] for p in found]

    def wait_event(self, name: str, event: str, timeout: float = 30.0, **fields: Any) -> dict:
        def found() -> dict[str, Any] | None:
            for e in self.events(name):
                if e["event"] == event and all(e.get(k) == v for k, v in fields.items()):
                    return e
            return None

        self.collector.wait_for(lambda: found() is not None or self._dead(name), timeout)
        e = found()
        assert e is not None, (
            f"{name}: no {event} {fields} in {self.events(name)}\n{self._log(name)}"
        )
        return e

    def wait_serving(self, name: str, model_id: str, timeout: float = 20.0) -> None:
        since = time.monotonic()
        ok = self.collector.wait_for(lambda: model_id in self.models_since(name, since), timeout)
        assert ok, f"{name}: no forecast by {model_id}: {set(self.models_since(name, since))}"

    def _dead(self, name: str) -> bool:
        return self.daemons[name].proc.poll() is not None

    def _log(self, name: str) -> str:
        return self.daemons[name].log()[-3000:]

    # -- input ----------------------------------------------------------------------------------
    def start_feeding(self) -> None:
        self._feeding.set()
        self._feeder.start()

    def _feed(self) -> None:
        """On-grid samples of stream `m1` (a daily cycle, as in training), one per 50 ms."""
        while self._feeding.is_set():
            k = self.sent
            ts = 944445 * INTERVAL_S + k * INTERVAL_S
            load = 100 + 30 * np.sin(2 * np.pi * k / 48)
            temp = 20 + 5 * np.sin(2 * np.pi * k / 48 - 1)
            doc = {"ts": ts, "load": round(float(load), 3), "temp": round(float(temp), 3)}
            self.sender.send(f"{self.prefix}/sensors/m1/data", json.dumps(doc).encode(), k)
            self.sent += 1
            time.sleep(0.05)

    def close(self) -> None:
        self._feeding.clear()
        if self._feeder.is_alive():
            self._feeder.join(5)
        for d in self.daemons.values():
            d.kill()
        self.sender.close()
        self.collector.close()


@pytest.fixture(scope="module")
def keys(edge_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`seqcast-deploy keygen`: the directory with seqcast.key and seqcast.pub."""
    where = tmp_path_factory.mktemp("keys")
    deploy_cli(edge_venv, "keygen", "--out", where / "k")
    return where / "k"


def signed(edge_venv: Path, bundle: Path, keys: Path, version: int, channel: str) -> bytes:
    """`seqcast-deploy sign`; the delivery payload a push of it would publish."""
    deploy_cli(edge_venv, "sign", bundle, "--key", keys / "seqcast.key",
               "--version", str(version), "--channel", channel)  # fmt: skip
    sig = bundle.with_name(bundle.name + ".minisig")
    return join_delivery(sig.read_bytes(), bundle.read_bytes())


@pytest.fixture
def fleet(
    broker: Broker, edge_venv: Path, releases: dict[str, Path], keys: Path, tmp_path: Path
) -> Iterator[Fleet]:
    f = Fleet(broker, edge_venv, tmp_path, releases["v1"], keys / "seqcast.pub")
    try:
        yield f
    finally:
        f.close()
        broker.pub(f.deploy_topic.replace("{channel}", CHANNEL), b"", qos=1, retain=True)


def test_a_fleet_takes_signed_releases_refuses_bad_ones_and_rolls_back_a_broken_one(
    fleet: Fleet, releases: dict[str, Path], keys: Path, edge_venv: Path, broker: Broker
) -> None:
    v1, v2 = (read_bundle(releases[v]).model_id for v in ("v1", "v2"))
    names = ("a", "b", "c")
    for name in names:
        fleet.start(name)
    for name in names:  # online: each says what it runs (a plain [model] path bundle: version 0)
        e = fleet.wait_event(name, "running")
        assert (e["version"], e["model_id"], e["channel"]) == (0, v1, CHANNEL)
    fleet.start_feeding()
    for name in names:
        fleet.wait_serving(name, v1)
    assert fleet.daemons["c"].stop() == 0  # c is offline during the push

    topic = fleet.deploy_topic.replace("{channel}", CHANNEL)
    signed(edge_venv, releases["v2"], keys, 2, CHANNEL)
    pushed = deploy_cli(edge_venv, "push", releases["v2"], "--host", broker.host,
                        "--port", str(broker.port), "--channel", CHANNEL,
                        "--topic", fleet.deploy_topic)  # fmt: skip
    assert "version 2" in pushed
    for name in ("a", "b"):
        for step in ("verifying", "probation", "committed"):
            fleet.wait_event(name, step, version=2)
        fleet.wait_serving(name, v2)
    assert fleet.events("a")[-1]["model_id"] == v2

    fleet.start("c")  # back online: the retained release is delivered on subscribe
    fleet.wait_event("c", "committed", version=2)
    fleet.wait_serving("c", v2)

    good = signed(edge_venv, releases["v2"], keys, 2, CHANNEL)
    bundle_at = good.index(b"PK\x03\x04")
    tampered = bytearray(good)
    tampered[bundle_at + len(tampered[bundle_at:]) // 2] ^= 0x01
    refused = {
        "bad_signature": bytes(tampered),
        "unsigned": releases["v3"].read_bytes(),
        "wrong_channel": signed(edge_venv, releases["v3"], keys, 5, "beta"),
        "downgrade": signed(edge_venv, releases["v1"], keys, 1, CHANNEL),
    }
    for reason, payload in refused.items():
        broker.pub(topic, payload, qos=1, retain=True)
        for name in names:
            fleet.wait_event(name, "rejected", reason=reason)
    since = time.monotonic()
    for name in names:
        fleet.wait_serving(name, v2)  # still v2, after every refusal
        assert set(fleet.models_since(name, since)) == {v2}
        ok = fleet.collector.wait_for(
            lambda n=name: all(fleet.counters(n).get(f"deploy_rejected_{r}") == 1 for r in refused),
            5,
        )
        assert ok, fleet.counters(name)
        assert fleet.counters(name)["bad_payloads"] == 0  # a release is never input

    v3 = read_bundle(releases["v3"]).model_id
    broker.pub(topic, signed(edge_venv, releases["v3"], keys, 3, CHANNEL), qos=1, retain=True)
    for name in names:
        fleet.wait_event(name, "probation", version=3)
        e = fleet.wait_event(name, "rolled_back", version=3)
        assert (e["reason"], e["model_id"]) == ("non_finite", v2)
    since = time.monotonic()
    for name in names:
        fleet.wait_serving(name, v2)
        assert v3 not in fleet.models_since(name, since)
        counted = fleet.collector.wait_for(
            lambda n=name: fleet.counters(n).get("deploy_rolled_back") == 1, 5
        )
        assert counted and fleet.counters(name)["deploy_committed"] == 1, fleet.counters(name)

    assert fleet.daemons["a"].stop() == 0  # the rolled-back release, still retained: a no-op
    fleet.start("a")
    fleet.wait_serving("a", v2)
    fleet.collector.wait_for(lambda: fleet.counters("a").get("deploy_unchanged", 0) >= 1, 10)
    c = fleet.counters("a")
    assert (c["deploy_unchanged"], c["deploy_installed"]) == (1, 0), c
    assert [e["event"] for e in fleet.events("a")][-1] == "running"

    for name in names:
        assert fleet.daemons[name].stop() == 0
    # what `seqcast-deploy status` makes of the retained status and deploy messages
    listing = deploy_cli(edge_venv, "status", "--host", broker.host, "--port", str(broker.port),
                         "--json")  # fmt: skip
    rows = {r["client_id"]: r for r in json.loads(listing)}
    expected = {"a": (2, "running", None), "b": (3, "rolled_back", "non_finite")}
    expected["c"] = expected["b"]
    for name, (version, event, reason) in expected.items():
        r = rows[f"{fleet.prefix}-{name}"]
        assert (r["state"], r["model_id"], r["version"], r["event"], r["reason"]) == (
            "offline", v2, version, event, reason,
        ), r  # fmt: skip


def test_a_release_that_crashes_on_probation_is_rolled_back_at_start(
    fleet: Fleet, releases: dict[str, Path], keys: Path, edge_venv: Path, broker: Broker
) -> None:
    """A release whose daemon dies (SIGKILL, as a backend crash would) while it is on probation:
    each start is counted in deploy/state.json; with crash_loop_starts = 2 the third start
    restores the previous bundle before loading anything."""
    v1, v2 = (read_bundle(releases[v]).model_id for v in ("v1", "v2"))
    d = fleet.start("d", probation_s=600.0, crash_loop_starts=2)  # never commits on its own
    fleet.wait_event("d", "running", version=0)
    topic = fleet.deploy_topic.replace("{channel}", CHANNEL)
    broker.pub(topic, signed(edge_venv, releases["v2"], keys, 2, CHANNEL), qos=1, retain=True)
    fleet.wait_event("d", "probation", version=2)
    state = fleet.configs["d"].parent / "state" / "deploy" / "state.json"
    assert json.loads(state.read_text())["starts"] == 1
    d.kill()
    d = fleet.start("d")  # start 2 of 2 on probation: v2 serves again
    d.wait_for_log(f"serving {v2}")
    assert json.loads(state.read_text())["starts"] == 2
    d.kill()
    d = fleet.start("d")  # start 3: a crash loop
    d.wait_for_log(f"serving {v1}")
    e = fleet.wait_event("d", "rolled_back", version=2)
    assert (e["reason"], e["model_id"]) == ("crash_loop", v1)
    saved = json.loads(state.read_text())
    assert (saved["phase"], saved["current"]["version"]) == ("committed", 0)
    assert [r["version"] for r in saved["refused"]] == [2]
    # v2 is still retained on the broker: delivered again on subscribe (and, when the kill came
    # before its acknowledgement, redelivered from the session too), and left alone
    ok = fleet.collector.wait_for(lambda: fleet.counters("d").get("deploy_unchanged", 0) >= 1, 10)
    assert ok, fleet.counters("d")
    c = fleet.counters("d")
    assert (c["deploy_rolled_back"], c["deploy_installed"]) == (1, 0), c
    assert fleet.events("d")[-1]["event"] == "rolled_back"
    assert d.stop() == 0
