"""Benchmark 5: faults (see bench/README.md). Each scenario has its own mosquitto, daemon (core 0,
own state dir), QoS 1 persistent-session collector and publishers; every forecast is checked
against the uninterrupted reference (`bench.faults_report`)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench import bundles as B
from bench import faults_report as F
from bench.common import DAEMON_CORE, LOAD_CORE, PY, ROOT, log, pin_self, taskset
from bench.faults_report import markdown, plot  # noqa: F401 - bench.run reads them here
from bench.mqttraw import StatusWatcher
from bench.procs import ENV
from seqcast.edge.config import StreamsConfig
from seqcast.tools.localbroker import LocalMosquitto

SEED = 9
BASE = B.BundleSpec(48, "lstm", "float32")
ROOT_USER = ["user root"] if os.geteuid() == 0 else []  # else it drops to `mosquitto`: no saves
BROKER_CONF = ["persistence true", "autosave_interval 1", "max_inflight_messages 100"]  # 1 s saves
DURABLE = ["autosave_on_changes true"]  # broker scenario: a save after every change
GAP_S = StreamsConfig().max_gap * F.STEP  # a longer gap restarts a stream's warm-up
IGNORED = {"messages", "mqtt_received", "mqtt_acked", "mqtt_published", "queue", "streams"}


FULL = dict(streams=10, samples=2000, rate=500.0, faults=5,  # kill and broker: a steady replay
            big_messages=100, big_streams=10, big_samples=500, publishers=8, per_publisher=4000,
            bad_total=10_000, bad_good=120)  # fmt: skip
QUICK = dict(FULL, samples=150, rate=300.0, faults=2, big_messages=10, big_streams=5,
             per_publisher=250, bad_total=3000, bad_good=55)  # fmt: skip


def _client(prefix: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, f"{prefix}-{uuid.uuid4().hex[:8]}", False)
    c.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]
    c.max_inflight_messages_set(100)
    c.max_queued_messages_set(0)
    return c


def _close(c: paho.Client) -> None:
    c.disconnect()
    c.loop_stop()


class Collector:
    """QoS 1, persistent session, on `forecasts/+`: (arrival, topic, payload) of everything."""

    def __init__(self, port: int):
        self.messages: list[tuple[float, str, bytes]] = []
        subscribed = threading.Event()
        self.client = c = _client("faults-collector")
        c.on_connect = lambda c, u, f, rc, p: rc.is_failure or c.subscribe("forecasts/+", 1)
        c.on_subscribe = lambda *a: subscribed.set()
        c.on_message = lambda c, u, m: self.messages.append((time.monotonic(), m.topic, m.payload))
        c.connect("127.0.0.1", port)
        c.loop_start()
        if not subscribed.wait(10):
            _close(c)
            raise RuntimeError("collector could not subscribe")

    def wait_unique(self, n: int, timeout: float, idle: float) -> None:  # or `idle` s of silence
        keys: set[tuple[Any, Any]] = set()
        seen, deadline, quiet = 0, time.monotonic() + timeout, time.monotonic() + idle
        while len(keys) < n and time.monotonic() < min(deadline, quiet):
            new = self.messages[seen:]
            for _, _, body in new:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    doc = json.loads(body)
                    keys.add((doc["stream"], doc["ts"]))
            if new:
                seen, quiet = seen + len(new), time.monotonic() + idle
            time.sleep(0.1)


class Sender:
    """QoS 1, persistent session; `sent`: (key, time, message info). Paho would send a new message
    before it resends the unacknowledged ones (after CONNACK): after a reconnect, `send` waits."""

    def __init__(self, port: int):
        self.sent: list[tuple[Any, float, paho.MQTTMessageInfo]] = []
        self.acked: set[int] = set()  # PUBACKed mids (is_published() raises for a queued one)
        self.fresh = True  # connected since the last send
        self.client = c = _client("faults-pub")
        c.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)
        c.on_connect = lambda *a: setattr(self, "fresh", True)
        c.connect("127.0.0.1", port)
        c.loop_start()

    def send(self, topic: str, payload: bytes, key: Any) -> None:
        if self.fresh or not self.client.is_connected():
            self.fresh = False
            self.wait_accepted(300)
        self.sent.append((key, time.monotonic(), self.client.publish(topic, payload, qos=1)))

    def wait_accepted(self, timeout: float) -> int:
        """Until the broker acknowledged everything sent; how many it acknowledged."""
        i, deadline = 0, time.monotonic() + timeout
        while i < len(self.sent) and time.monotonic() < deadline:
            while i < len(self.sent) and self.sent[i][2].mid in self.acked:
                i += 1
            time.sleep(0.05)
        return i


class Daemon:
    """`seqcast-edge run` on core 0: defaults except broker, topics, state dir and the status
    interval; restarted with the same config and state dir after a SIGKILL."""

    def __init__(self, work: Path, name: str, port: int, bundle: Path, status_s: float):
        self.client_id, self.port = f"faults-{name}", port
        self.conf, self.log_path = work / f"{name}.toml", work / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.watcher: StatusWatcher | None = None
        self.runs: list[dict[str, Any]] = []  # the counters each run reported last
        self.conf.write_text(
            f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\nclient_id = "{self.client_id}"\n'
            f"[model]\npath = {json.dumps(str(bundle))}\n"
            f'[input]\ntopic = "{F.topic("{stream}")}"\n[output]\ntopic = "forecasts/{{stream}}"\n'
            f"[status]\ninterval_s = {status_s}\n"
            f"[state]\ndir = {json.dumps(str(work / f'state-{name}'))}\n"
        )

    def watch(self) -> StatusWatcher:
        if self.watcher is not None:
            self.watcher.close()
        self.watcher = StatusWatcher("127.0.0.1", self.port, f"seqcast/{self.client_id}/status")
        return self.watcher

    def start(self, timeout: float = 90.0) -> dict[str, Any]:
        watcher, wall = self.watcher or self.watch(), time.time()
        cmd = [*taskset(DAEMON_CORE), PY, "-m", "seqcast.edge.cli", "run", "-c", str(self.conf)]
        with self.log_path.open("ab") as logf:
            out = {"stdout": logf, "stderr": subprocess.STDOUT}
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, start_new_session=True, **out)
        got = watcher.wait(lambda s: s.get("state") == "online" and s.get("ts", 0) >= wall, timeout)
        if got is None or self.proc.poll() is not None:
            raise RuntimeError(f"daemon not online:\n{self.log_path.read_text()[-3000:]}")
        self.runs.append(got.get("counters", {}))
        return got

    def kill(self) -> None:
        self.runs[-1] = self.watcher.latest.get("counters") or self.runs[-1]  # type: ignore[union-attr]
        os.kill(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
        self.proc.wait(30)  # type: ignore[union-attr]
        self._reap()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(60)
        self.proc.kill()  # nothing once it has exited
        code = self.proc.wait()
        if self.watcher is not None:
            got = self.watcher.wait(lambda s: s.get("state") == "offline" and "counters" in s, 5)
            self.runs[-1] = (got or {}).get("counters") or self.runs[-1]
            self.watcher.close()
        self._reap()
        return code

    def _reap(self) -> None:  # what is left of the run's process group (a self-test child?)
        with contextlib.suppress(ProcessLookupError, PermissionError, AttributeError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]

    def counters(self) -> dict[str, int]:
        """Summed over the runs (each as it last reported); zeros left out."""
        return dict(sum((Counter(_diff(r, {})) for r in self.runs), Counter()))


class Rig:
    """One scenario's mosquitto, daemon, collector and publishers; all torn down on exit."""

    def __init__(self, name: str, work: Path, bundle: Path, status_s: float = 1.0, conf=()):
        self.name, self.work, self.bundle, self.status_s = name, work, bundle, status_s
        self.conf, self.stack, self.stopping = conf, contextlib.ExitStack(), threading.Event()
        self.feeders: list[threading.Thread] = []

    def __enter__(self) -> Rig:
        try:
            logf = f"log_dest file {self.work / f'mosquitto-{self.name}.log'}"
            self.broker = self.stack.enter_context(
                LocalMosquitto([*BROKER_CONF, *self.conf, *ROOT_USER, logf])
            )
            self.pin_broker()
            self.collector = Collector(self.broker.port)
            self.stack.callback(_close, self.collector.client)
            self.daemon = Daemon(self.work, self.name, self.broker.port, self.bundle, self.status_s)
            self.stack.callback(self.daemon.stop)
            self.daemon.start()
        except BaseException:
            self.stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.stack.close()

    def pin_broker(self) -> None:
        if self.broker.proc is not None and (c := pin_self(LOAD_CORE)) is not None:
            os.sched_setaffinity(self.broker.proc.pid, {c})

    def sender(self) -> Sender:
        s = Sender(self.broker.port)
        self.stack.callback(_close, s.client)
        return s

    def feed(self, work: list[tuple[Sender, list[tuple[str, bytes, Any]]]], rate: float) -> float:
        """One publishing thread per sender, all let go at once, each `rate` messages/s (0: flat
        out); returns the start time."""
        gate = threading.Barrier(len(work) + 1, timeout=60)
        t0 = 0.0

        def run(sender: Sender, msgs: list[tuple[str, bytes, Any]]) -> None:
            gate.wait()
            for i, m in enumerate(msgs):
                if self.stopping.is_set():
                    return
                if rate and (delay := t0 + i / rate - time.monotonic()) > 0:
                    time.sleep(delay)
                sender.send(*m)

        self.feeders = [threading.Thread(target=run, args=w, daemon=True) for w in work]
        for th in self.feeders:
            th.start()
        t0 = time.monotonic()  # read by the threads once past the gate
        gate.wait()
        return t0

    def finish(self, senders: list[Sender], ref: F.Reference, t0: float, **kw: Any) -> dict:
        """The broker took every input, the forecasts arrived (or stopped coming): stop the
        daemon (SIGTERM) and compare with the reference."""
        for th in self.feeders:
            th.join(600)
        sent = sum(len(s.sent) for s in senders)
        accepted = sum(s.wait_accepted(sent / 200 + 60) for s in senders)
        expected = sum(len(f) for f in ref.forecasts.values())
        self.collector.wait_unique(expected, timeout=expected / 300 + 120, idle=15)
        time.sleep(1.0)  # late duplicates
        code = self.daemon.stop()
        res = F.analyse(ref, list(self.collector.messages), **kw)
        res["seconds"] = round((res.pop("last_arrival") or time.monotonic()) - t0, 2)
        res.update(
            inputs=sent, accepted=accepted, daemon_exit=code, counters=self.daemon.counters()
        )
        log(f"faults: {self.name}: " + ", ".join(f"{k} {res[k]:,}" for k in F.COLUMNS))
        return res


def _singles(data: dict[str, list[F.Sample]]) -> list[tuple[str, bytes, Any]]:
    """Round-major single-sample messages, keyed (stream, ts)."""
    n = max(len(s) for s in data.values())
    rounds = ((s, data[s][r]) for r in range(n) for s in data if r < len(data[s]))
    return [(F.topic(s), F.payload(*smp), (s, smp[0])) for s, smp in rounds]


# -- scenarios ---------------------------------------------------------------------------------


def _fault(rig: Rig, t: float, sig: signal.Signals, daemon: bool) -> dict[str, Any]:
    """SIGKILL and restart the daemon (back: its `online`), or send `sig` to the broker and
    start it again (back: broker listening -> the daemon's `online`, its reconnect)."""
    if daemon:
        rig.daemon.kill()
        replayed = rig.daemon.start().get("counters", {}).get("state_journal_replayed")
        return {"back_s": round(time.monotonic() - t, 2), "detail": f"journal replayed {replayed}"}
    wall = time.time()
    rig.broker.proc.send_signal(sig)  # type: ignore[union-attr]
    rig.broker.proc.wait(30)  # type: ignore[union-attr]
    rig.broker.start()
    rig.pin_broker()
    up = time.monotonic()
    online = rig.daemon.watch().wait(lambda s: s.get("state") == "online" and s["ts"] > wall, 120)
    back = None if online is None else round(time.monotonic() - up, 2)
    return {"back_s": back, "detail": f"broker down {up - t:.2f} s"}


def replay(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    """A steady replay; at random (seeded) times daemon SIGKILLs, or broker SIGTERM / SIGKILL."""
    data = {f"s{i:02d}": F.series(i, z["samples"]) for i in range(z["streams"])}
    ref, msgs = F.reference(bundle, data), _singles(data)
    label, act = ("daemon", "SIGKILLs") if name == "kill" else ("broker", "restarts")
    span = len(msgs) / z["rate"]
    times = sorted(rng.uniform(min(2.0, span / 4), 0.9 * span) for _ in range(z["faults"]))

    def rebuild(gone: set[Any]) -> F.Reference:  # the reference without inputs the broker lost
        return F.reference(bundle, {s: [x for x in v if (s, x[0]) not in gone] for s, v in
                                    data.items()}, GAP_S)  # fmt: skip

    with Rig(name, work, bundle, conf=DURABLE if name == "broker" else ()) as rig:
        sender = rig.sender()
        t0, events, windows = rig.feed([(sender, msgs)], z["rate"]), [], []
        for j, at in enumerate(times):
            sig = signal.SIGKILL if name == "kill" or j % 2 else signal.SIGTERM
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            t = time.monotonic()
            ev = {"fault": f"{label} {sig.name}", "at_s": round(t - t0, 1)}
            events.append(ev | _fault(rig, t, sig, name == "kill"))
            if name == "broker" and sig == signal.SIGKILL:
                windows.append((t - 1.0, t))  # inputs it acknowledged just before may be lost
        at = {k: ts for k, ts, _ in sender.sent}
        res = rig.finish([sender], ref, t0, accepted_at=at, broker_windows=windows, rebuild=rebuild)
    what = f"{len(events)} {label} {act}, {len(msgs):,} samples at {z['rate']:g}/s"
    return {"name": name, "what": what, "faults": True, "events": events, **res}


def flood(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    """Flat out: big, 500-sample arrays; burst, single samples from several publishers."""
    if name == "big":
        per, n, k = z["big_messages"] // z["big_streams"], z["big_samples"], 1
        what = f"{z['big_messages']} messages of {n} samples, {z['big_streams']} streams"
        data = {f"b{i:02d}": F.series(i, per * n) for i in range(z["big_streams"])}
        mine = [[(F.topic(s), json.dumps([{"ts": t, "load": v[0], "temp": v[1]} for t, v in c])
                  .encode(), (s, m)) for m in range(per) for s in data
                 if (c := data[s][m * n : (m + 1) * n])]]  # fmt: skip
    else:
        k = z["publishers"]
        what = f"{k} publishers x {z['per_publisher']:,} single-sample messages"
        data = {f"u{i:02d}": F.series(i, z["per_publisher"] // 2) for i in range(2 * k)}
        mine = [_singles({s: data[s] for s in list(data)[2 * i : 2 * i + 2]}) for i in range(k)]
    ref = F.reference(bundle, data)
    with Rig(name, work, bundle) as rig:
        senders = [rig.sender() for _ in range(k)]
        res = rig.finish(senders, ref, rig.feed(list(zip(senders, mine, strict=True)), 0))
    return {"name": name, "what": what, "faults": False, **res}


def _handled(status: dict[str, Any]) -> int:  # input messages the daemon is done with
    c = status.get("counters", {})
    return sum(c.get(k, 0) for k in ("messages", "mqtt_unknown_topic", "mqtt_stream_id_too_long"))


def _diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()
            if k not in IGNORED and isinstance(v, int) and v != before.get(k, 0)}  # fmt: skip


def bad(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    corpus = F.corpus(z["bad_total"], z["bad_good"], rng.randrange(2**31))
    ref = F.reference(bundle, corpus["data"])
    counted: dict[str, dict[str, int]] = {}
    with Rig("bad", work, bundle, status_s=0.1) as rig:
        sender, w = rig.sender(), rig.daemon.watcher or rig.daemon.watch()
        n = _handled(w.latest) + 2 * len(corpus["probes"])
        for topic, body in (m for p in corpus["probes"] for m in p["prime"]):
            sender.send(topic, body, None)  # one fresh stream per kind, two good samples
        if w.wait(lambda s: _handled(s) >= n, 60) is None:
            raise RuntimeError("the probe streams were not primed")
        for p in corpus["probes"]:  # one message of each kind: what did the daemon count?
            time.sleep(0.12)  # the status interval: the daemon reports right after the message
            before = w.latest
            sender.send(*p["message"], p["kind"])
            b = _handled(before) + p["sent"]  # a message outside the filter never reaches it
            after = w.wait(lambda s, b=b: _handled(s) >= b, 10) or w.latest
            counted[p["kind"]] = _diff(after.get("counters", {}), before.get("counters", {}))
        base = dict(w.latest.get("counters", {}))
        msgs = [(topic, body, i) for i, (topic, body, _) in enumerate(corpus["messages"])]
        res = rig.finish([sender], ref, rig.feed([(sender, msgs)], 0))
    of = {k: s for s, k in corpus["stream_kind"].items()}
    kinds = [{"kind": k.name, "group": k.group, "messages": corpus["count"][k.name], "counted_as":
              counted.get(k.name, {}), "stream": res["per_stream"].get(of.get(k.name, ""))}
             for k in F.KINDS]  # fmt: skip
    counters = _diff(rig.daemon.runs[-1], base)
    res["bad_input"] = {"messages": len(msgs), "kinds": kinds, "corpus_counters": counters}
    what = f"{len(msgs):,} messages, {len(F.KINDS)} kinds of bad input between good samples"
    return {"name": "bad input", "what": what, "faults": False, **res}


def run(quick: bool, cache: Path) -> dict[str, Any]:
    bundle = B.ensure([BASE], cache)[BASE]
    pinned, z = pin_self(LOAD_CORE), QUICK if quick else FULL
    scenarios: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-faults-") as tmp:
        for k, name in enumerate(("kill", "broker", "big", "burst", "bad")):
            log(f"faults: {name} ...")
            scenario = replay if k < 2 else flood if k < 4 else bad
            scenarios.append(scenario(Path(tmp), bundle, z, random.Random(SEED + k), name))
    bad_input = scenarios[-1].pop("bad_input")
    return {"name": "faults", "orchestrator_core": pinned, "bundle": BASE.key, "seed": SEED,
            "sizes": z, "broker_config": [*BROKER_CONF, "max_queued_messages 0"],
            "scenarios": scenarios, "bad_input": bad_input,
            "targets": F.targets_of(scenarios)}  # fmt: skip
