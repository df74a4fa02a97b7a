"""Run the real daemon as its own process (TensorFlow blocked) and compute forecasts offline."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import load_model
from tests.broker import MOSQUITTO_PUB, Broker

# Starts `seqcast-edge` with tensorflow/keras/train unimportable; at exit proves none was loaded.
BLOCKED_TF_ENTRY = """
import sys, runpy
class Block:
    def find_spec(self, name, path=None, target=None):
        top = name.split('.')[0]
        if top in ('tensorflow', 'keras', 'tf_keras', 'pandas') or name.startswith('seqcast.train'):
            raise ImportError(f'blocked on the device: {name}')
sys.meta_path.insert(0, Block())
sys.argv = ['seqcast-edge'] + sys.argv[1:]
try:
    runpy.run_module('seqcast.edge.cli', run_name='__main__')
finally:
    leaked = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]
    if leaked:
        print('LEAKED TENSORFLOW', leaked, file=sys.stderr)
        sys.exit(99)
"""


def write_config(path: Path, broker: Broker, bundle: Path, prefix: str, **sections: dict) -> Path:
    base: dict[str, dict] = {
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "client_id": f"edge-{prefix.replace('/', '-')}",
        },
        "model": {"path": str(bundle)},
        "input": {"topic": f"{prefix}/sensors/{{stream}}/data"},
        "output": {"topic": f"{prefix}/forecasts/{{stream}}"},
        "status": {"topic": f"{prefix}/status", "interval_s": 0.5},
        "state": {"dir": str(path.parent / "state")},
    }
    for key, values in sections.items():
        base.setdefault(key, {}).update(values)
    lines = []
    for section, values in base.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class DaemonProcess:
    proc: subprocess.Popen[str]
    log_path: Path

    @classmethod
    def start(
        cls,
        config: Path,
        env: dict[str, str] | None = None,
        installed: Path | None = None,
        args: tuple[str, ...] = (),
        log_path: Path | None = None,
    ) -> DaemonProcess:
        """`installed`: the bin/ of a venv with seqcast installed: run its `seqcast-edge`,
        without PYTHONPATH (which would put this checkout first). `args` follow `run -c CONFIG`
        (e.g. `--partition 3`); `log_path` defaults to the config's name with `.log`."""
        log_path = log_path or config.with_suffix(".log")
        log = log_path.open("w")
        environ = {**os.environ, **(env or {})}
        command = [sys.executable, "-c", BLOCKED_TF_ENTRY]
        if installed is not None:
            environ.pop("PYTHONPATH", None)
            command = [str(installed / "seqcast-edge")]
        proc = subprocess.Popen(
            [*command, "run", "-c", str(config), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=environ,
        )
        return cls(proc, log_path)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout} s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def publish_lines(broker: Broker, topic: str, lines: list[bytes], qos: int = 1) -> None:
    """Many single-line messages through one real `mosquitto_pub -l` process, in order."""
    done = subprocess.run(
        [
            MOSQUITTO_PUB,
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-t",
            topic,
            "-q",
            str(qos),
            "-l",
        ],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def calendar_by_hand(names: list[str], times: list[float]) -> np.ndarray:
    """The bundle's calendar columns from datetime arithmetic (edge/calendar.py's definitions,
    computed independently): (N, 2C) float32."""
    cols = []
    for ts in times:
        d = datetime.fromtimestamp(float(ts), UTC)
        seconds = d.hour * 3600 + d.minute * 60 + d.second + d.microsecond / 1e6
        phase = {
            "hour_of_day": seconds / 86400,
            "day_of_week": (d.weekday() + seconds / 86400) / 7,
            "day_of_year": math.fmod(float(ts), 365.2425 * 86400) / (365.2425 * 86400),
            "month_of_year": (d.month - 1) / 12,
        }
        cols.append([f(2 * math.pi * phase[n]) for n in names for f in (math.sin, math.cos)])
    return np.asarray(cols, np.float32).reshape(len(times), 2 * len(names))


def offline_forecasts(
    bundle_path: Path, samples: list[tuple[float, list[float]]], mode: str
) -> list[tuple[float, list]]:
    """What the daemon should publish for one stream, computed by hand, one sample at a time."""
    model, _ = load_model(read_bundle(bundle_path))
    m = model.bundle.manifest
    sc = m.scaler
    x = ((np.array([v for _, v in samples]) - sc.feature_mean) / sc.feature_std).astype(np.float32)
    x = np.hstack([x, calendar_by_hand(m.calendar, [ts for ts, _ in samples])])  # (N, F + 2C)
    out = []
    mean, std = m.output_scaling()  # (C,): with quantiles, each column in its target's units
    states = model.zero_states(1)
    for t, (ts, _) in enumerate(samples):
        if mode == "stream":
            y, states = model.step(x[t : t + 1], states)
        elif t + 1 >= m.seq_len:
            y = model.window(x[None, t + 1 - m.seq_len : t + 1])
        if t + 1 >= m.min_history:
            values = y[0].astype(np.float64) * std + mean  # (H, C)
            values = values.astype(np.float32).astype(np.float64)  # published at float32 precision
            out.append(
                (ts, [[ts + (k + 1) * m.interval_s, *row] for k, row in enumerate(values.tolist())])
            )
    return out


def received(
    messages: list[tuple[str, bytes]], targets: list[str]
) -> dict[str, list[tuple[float, list]]]:
    """Forecast messages grouped by stream, in arrival order, as (ts, [[ts_k, value...]...]);
    values as the float32 they stand for (the contract: they read back as the model's float32)."""
    out: dict[str, list[tuple[float, list]]] = {}
    for _, payload in messages:
        doc = json.loads(payload)
        rows = [[f["ts"], *(float(np.float32(f[t])) for t in targets)] for f in doc["forecast"]]
        out.setdefault(doc["stream"], []).append((doc["ts"], rows))
    return out
