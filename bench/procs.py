"""Processes under test (the daemon, the relay floor) and the load tools, each pinned to a core."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import DAEMON_CORE, LOAD_CORE, PY, PYTHONPATH, ROOT, taskset
from bench.mqttraw import StatusWatcher

ENV = {**os.environ, "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "3"}


def daemon_config(
    path: Path,
    port: int,
    bundle: Path,
    client_id: str,
    *,
    qos_in: int = 1,
    qos_out: int = 1,
    max_streams: int = 10000,
    queue_size: int = 10000,
    backend: str = "litert",
    status_interval_s: float = 0.5,
    align: str = "mean",
    metrics_listen: str = "",
    quality: bool = True,
) -> Path:
    sections: dict[str, dict[str, Any]] = {
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client_id, "qos_in": qos_in},
        "model": {"path": str(bundle), "backend": backend, "watch": False},
        "input": {"topic": "sensors/{stream}/data"},
        "output": {"topic": "forecasts/{stream}", "qos": qos_out},
        "streams": {"max_streams": max_streams, "align": align},
        "status": {"interval_s": status_interval_s},
        "state": {
            "dir": str(path.parent / f"state-{client_id}"),
            "snapshot_interval_s": 0,
            "queue_size": queue_size,
        },
        "log": {"level": "warning"},
    }
    if metrics_listen:  # only then: a variant from before [metrics] refuses the unknown section
        sections["metrics"] = {"listen": metrics_listen}
    if not quality:  # only when off: an older checkout (bench/ab.py) has no [quality] section
        sections["quality"] = {"enabled": False}
    return write_toml(path, sections)


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """`sections` as a TOML file of flat tables (the values as JSON, which TOML reads alike)."""
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Running:
    kind: str  # daemon | relay
    proc: subprocess.Popen[bytes]
    log_path: Path
    start_s: float  # Popen -> online (daemon) or ready (relay)
    watcher: StatusWatcher | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def counters(self, fresh: bool = True) -> dict[str, Any]:
        if self.watcher is None:
            return {}
        doc = self.watcher.fresh() if fresh else self.watcher.latest
        return dict(doc.get("counters", {}))

    def wait_samples(self, n: int, timeout: float) -> bool:
        """Until the daemon's status counts `n` samples processed."""
        assert self.watcher is not None
        ok = self.watcher.wait(lambda s: s.get("counters", {}).get("samples", 0) >= n, timeout)
        return ok is not None

    def cpu_s(self) -> float:
        """CPU time (user + system, every thread) the process has used so far, in seconds."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def memory_kb(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key = line.split(":")[0]
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(line.split()[1])
        return out

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if self.watcher is not None:
            self.watcher.close()
        return code

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def package_view(root: Path, workdir: Path) -> Path:
    """A directory whose `seqcast/edge` and `seqcast/tools` are `root`'s `edge/` and `tools/`:
    put first on PYTHONPATH, it serves another checkout's code as `seqcast.*` (A/B runs)."""
    view = workdir / f"view-{abs(hash(str(root))):x}"
    (view / "seqcast").mkdir(parents=True, exist_ok=True)
    for part in ("edge", "tools"):
        link = view / "seqcast" / part
        if not link.exists():
            link.symlink_to(root / part, target_is_directory=True)
    return view


def start_daemon(
    port: int,
    bundle: Path,
    workdir: Path,
    timeout: float = 90.0,
    entry: list[str] | None = None,
    root: Path | None = None,
    **cfg: Any,
) -> Running:
    """`seqcast-edge run` (or `python ENTRY... run -c CONF`), pinned, until its status is online.

    `root`: run the `edge/` (and `tools/`) folders found there instead of this checkout's."""
    client_id = f"bench-{uuid.uuid4().hex[:8]}"
    conf = daemon_config(workdir / f"{client_id}.toml", port, bundle, client_id, **cfg)
    watcher = StatusWatcher("127.0.0.1", port, f"seqcast/{client_id}/status")
    log_path = workdir / f"{client_id}.log"
    with log_path.open("wb") as logf:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                *taskset(DAEMON_CORE),
                PY,
                *(entry or ["-m", "seqcast.edge.cli"]),
                "run",
                "-c",
                str(conf),
            ],
            cwd=root or ROOT,
            env={**ENV, "PYTHONPATH": str(package_view(root, workdir))} if root else ENV,
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
    run = Running("daemon", proc, log_path, 0.0, watcher)
    online = watcher.wait(lambda s: s.get("state") == "online" or proc.poll() is not None, timeout)
    run.start_s = time.monotonic() - t0
    if online is None or proc.poll() is not None:
        run.stop()
        raise RuntimeError(f"daemon did not come online within {timeout:.0f} s:\n{run.log_tail()}")
    return run


def start_relay(port: int, workdir: Path, qos: int = 0, timeout: float = 30.0) -> Running:
    client_id = f"bench-relay-{uuid.uuid4().hex[:8]}"
    log_path = workdir / f"{client_id}.log"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            *taskset(DAEMON_CORE),
            PY,
            "-m",
            "bench.relay",
            "--port",
            str(port),
            "--qos",
            str(qos),
            "--client-id",
            client_id,
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=log_path.open("wb"),
    )
    run = Running("relay", proc, log_path, 0.0)
    if not _wait_line(proc, "ready", timeout):
        run.stop()
        raise RuntimeError(f"relay not ready within {timeout:.0f} s:\n{run.log_tail()}")
    run.start_s = time.monotonic() - t0
    return run


def _wait_line(proc: subprocess.Popen[bytes], text: str, timeout: float) -> bool:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            return False
        line = proc.stdout.readline()
        if not line:
            return False
        if line.decode().strip() == text:
            return True
    return False


def tool(cmd: str, spec: dict[str, Any], timeout: float, pin: bool = True) -> dict[str, Any]:
    """Run `python -m bench.publisher CMD SPEC` on the load core (`pin` False: on any core, as
    this process may run); its JSON result."""
    done = subprocess.run(
        [*(taskset(LOAD_CORE) if pin else []), PY, "-m", "bench.publisher", cmd, json.dumps(spec)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.publisher {cmd} failed: {done.stderr.decode()[-2000:]}")
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


class Counter:
    """A counting subscriber process on the load core (`pin` False: not pinned), subscribed
    before this returns."""

    def __init__(
        self,
        port: int,
        expect: int,
        idle_s: float = 5.0,
        filt: str = "forecasts/+",
        pin: bool = True,
    ):
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "filter": filt,
            "expect": expect,
            "idle_s": idle_s,
        }
        self.proc = subprocess.Popen(
            [
                *(taskset(LOAD_CORE) if pin else []),
                PY,
                "-m",
                "bench.publisher",
                "count",
                json.dumps(spec),
            ],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        if not _wait_line(self.proc, "ready", 30.0):
            self.proc.kill()
            raise RuntimeError(f"counter not ready: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]

    def result(self, timeout: float) -> dict[str, Any]:
        out, err = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise RuntimeError(f"counter failed: {err.decode()[-2000:]}")
        return dict(json.loads(out.decode().strip().splitlines()[-1]))
