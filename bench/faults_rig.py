"""The fault benchmark's rig (see bench/faults.py): a scenario's own mosquitto, the daemon under
test, a QoS 1 collector of every forecast and QoS 1 publishers, all torn down on exit."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench import faults_report as F
from bench.common import DAEMON_CORE, LOAD_CORE, PY, ROOT, log, pin_self, taskset
from bench.faults_md import COLUMNS
from bench.mqttraw import StatusWatcher
from bench.procs import ENV
from seqcast.tools.localbroker import LocalMosquitto

ROOT_USER = ["user root"] if os.geteuid() == 0 else []  # else it drops to `mosquitto`: no saves
BROKER_CONF = ["persistence true", "autosave_interval 1", "max_inflight_messages 100"]  # 1 s saves
IGNORED = {"messages", "mqtt_received", "mqtt_acked", "mqtt_published", "queue", "streams"}


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
        self.longest_wait = 0.0  # seconds, waiting after a reconnect
        self.client = c = _client("faults-pub")
        c.on_publish = lambda c, u, mid, rc, p: self.acked.add(mid)
        c.on_connect = lambda *a: setattr(self, "fresh", True)
        c.connect("127.0.0.1", port)
        c.loop_start()

    def send(self, topic: str, payload: bytes, key: Any) -> None:
        if self.fresh or not self.client.is_connected():
            self.fresh, t = False, time.monotonic()
            self.wait_accepted(300)
            self.longest_wait = max(self.longest_wait, time.monotonic() - t)
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
        return dict(sum((Counter(diff(r, {})) for r in self.runs), Counter()))


class Rig:
    """One scenario's mosquitto, daemon, collector and publishers; all torn down on exit."""

    def __init__(self, name: str, work: Path, bundle: Path, status_s: float = 1.0, conf=(),
                 data_dir: Path | None = None):  # fmt: skip
        self.name, self.work, self.bundle, self.status_s = name, work, bundle, status_s
        self.data_dir = data_dir  # the broker's database goes here (None: the system temp dir)
        self.conf, self.stack, self.stopping = conf, contextlib.ExitStack(), threading.Event()
        self.feeders: list[threading.Thread] = []

    def __enter__(self) -> Rig:
        try:
            logf = f"log_dest file {self.work / f'mosquitto-{self.name}.log'}"
            self.broker = self.stack.enter_context(
                LocalMosquitto([*BROKER_CONF, *self.conf, *ROOT_USER, logf], data_dir=self.data_dir)
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
        waited = max(s.longest_wait for s in senders)
        res.update(inputs=sent, accepted=accepted, daemon_exit=code, longest_puback_wait_s=round(
            waited, 2), counters=self.daemon.counters())  # fmt: skip
        log(f"faults: {self.name}: " + ", ".join(f"{k} {res[k]:,}" for k in COLUMNS))
        return res


def diff(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items()
            if k not in IGNORED and isinstance(v, int) and v != before.get(k, 0)}  # fmt: skip
