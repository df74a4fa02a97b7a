"""A real mosquitto broker on a loopback port, for tests.

`Broker` writes its own `mosquitto.conf` into a temporary directory, starts `mosquitto -c CONF`,
and waits until the port accepts connections. `pub` and `sub`/`Subscriber` use the real
`mosquitto_pub`/`mosquitto_sub` command-line clients, so the code under test talks to a client it
does not share anything with. Payloads are handled as bytes end to end (`mosquitto_sub -F %x`).

    with Broker() as broker:
        with broker.subscriber("a/#") as sub:      # returns once the SUBACK arrived
            broker.pub("a/b", b"\\x00\\x01", qos=1)
            [(topic, payload)] = sub.collect(1, timeout=5)
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "MOSQUITTO",
    "MOSQUITTO_PASSWD",
    "MOSQUITTO_PUB",
    "MOSQUITTO_SUB",
    "Broker",
    "BrokerError",
    "Subscriber",
    "free_port",
    "mosquitto_available",
]


def _find(name: str, *fallbacks: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in fallbacks:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


MOSQUITTO = _find("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")
MOSQUITTO_PUB = _find("mosquitto_pub", "/usr/bin/mosquitto_pub")
MOSQUITTO_SUB = _find("mosquitto_sub", "/usr/bin/mosquitto_sub")
MOSQUITTO_PASSWD = _find("mosquitto_passwd", "/usr/bin/mosquitto_passwd")


def mosquitto_available() -> bool:
    """True when the broker and both command-line clients are installed."""
    return None not in (MOSQUITTO, MOSQUITTO_PUB, MOSQUITTO_SUB)


class BrokerError(RuntimeError):
    """The broker or one of the mosquitto command-line clients did not behave."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require(path: str | None, name: str) -> str:
    if path is None:
        raise BrokerError(f"{name} is not installed (apt-get install mosquitto mosquitto-clients)")
    return path


class Broker:
    """One mosquitto process on 127.0.0.1:`port`; `restart()` keeps the port and the config.

    `extra_config` lines are appended to the generated config, e.g. `["persistence true"]` or
    TLS `cafile`/`certfile`/`keyfile` lines (they apply to the single listener).
    `persistence_location` always points into the broker's temporary directory (`workdir`).
    `users` ({name: password}) writes a password file with `mosquitto_passwd`; combine it with
    `allow_anonymous=False` to make the broker refuse everyone else.
    """

    def __init__(
        self,
        extra_config: Sequence[str] = (),
        *,
        allow_anonymous: bool = True,
        users: Mapping[str, str] | None = None,
        port: int | None = None,
        start_timeout: float = 10.0,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port()
        self.start_timeout = start_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="seqcast-mosquitto-")
        self.workdir = Path(self._tmp.name)
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            f"persistence_location {self.workdir}/",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            lines.append("user root")  # otherwise mosquitto drops to `mosquitto` and loses workdir
        if users:
            lines.append(f"password_file {self._write_passwords(users)}")
        lines.extend(extra_config)
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _write_passwords(self, users: Mapping[str, str]) -> Path:
        path = self.workdir / "passwords"
        exe = _require(MOSQUITTO_PASSWD, "mosquitto_passwd")
        for i, (name, password) in enumerate(users.items()):
            create = ["-c"] if i == 0 else []
            done = subprocess.run(
                [exe, *create, "-b", str(path), name, password], capture_output=True, timeout=10
            )
            if done.returncode != 0:
                raise BrokerError(
                    f"mosquitto_passwd failed: {done.stderr.decode(errors='replace')}"
                )
        return path

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> Broker:
        if self.running:
            raise BrokerError(f"broker on port {self.port} is already running")
        exe = _require(MOSQUITTO, "mosquitto")
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [exe, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_listening()
        return self

    def _wait_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with code {self._proc.returncode} while starting on "
                    f"port {self.port}:\n{self.log()}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise BrokerError(
            f"mosquitto did not accept connections on {self.host}:{self.port} within "
            f"{self.start_timeout:g} s:\n{self.log()}"
        )

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM and wait (mosquitto then saves its persistence database)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL: the broker dies without saving anything."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, *, hard: bool = False) -> None:
        """Stop (or kill, when `hard`) and start again on the same port with the same config."""
        if hard:
            self.kill()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def log(self) -> str:
        """Everything mosquitto wrote to stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Broker({self.host}:{self.port}, running={self.running})"

    # -- command-line clients ----------------------------------------------------------------

    def _conn_args(self, username: str | None, password: str | None) -> list[str]:
        args = ["-h", self.host, "-p", str(self.port)]
        if username is not None:
            args += ["-u", username]
        if password is not None:
            args += ["-P", password]
        return args

    def pub(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 0,
        retain: bool = False,
        *,
        username: str | None = None,
        password: str | None = None,
        extra_args: Sequence[str] = (),
        timeout: float = 10.0,
    ) -> None:
        """Publish one message with the real `mosquitto_pub` (payload via stdin, binary-safe)."""
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
        args = [_require(MOSQUITTO_PUB, "mosquitto_pub"), *self._conn_args(username, password)]
        args += ["-t", topic, "-q", str(qos), *(["-r"] if retain else []), *extra_args]
        args += ["-s"] if data else ["-n"]
        done = subprocess.run(args, input=data, capture_output=True, timeout=timeout)
        if done.returncode != 0:
            raise BrokerError(
                f"mosquitto_pub to {topic!r} failed with code {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )

    def subscriber(self, topic: str, **kwargs: object) -> Subscriber:
        return Subscriber(self, topic, **kwargs)  # type: ignore[arg-type]

    def sub(self, topic: str, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        """Subscribe, collect up to `count` messages (retained ones included) within `timeout`."""
        with Subscriber(self, topic) as s:
            return s.collect(count, timeout)


class Subscriber:
    """`mosquitto_sub` running in the background, collecting (topic, payload) pairs.

    Entering waits for the SUBACK, so anything published afterwards is seen. `collect(n, timeout)`
    returns at most `n` messages, fewer if the timeout passes first; `retained` lists the retain
    flag of every message collected so far, in order.
    """

    _PREFIX = "MSG "

    def __init__(
        self,
        broker: Broker,
        topic: str,
        *,
        qos: int = 0,
        protocol: str | None = None,
        username: str | None = None,
        password: str | None = None,
        ready_timeout: float = 5.0,
    ) -> None:
        self.broker = broker
        self.topic = topic
        args = [_require(MOSQUITTO_SUB, "mosquitto_sub"), *broker._conn_args(username, password)]
        args += ["-t", topic, "-q", str(qos), "-d", "-F", self._PREFIX + "%r %t %x"]
        if protocol is not None:
            args += ["-V", {"3.1.1": "mqttv311", "5": "mqttv5"}.get(protocol, protocol)]
        # mosquitto_sub block-buffers a pipe; line buffering lets us see the SUBACK in time.
        stdbuf = shutil.which("stdbuf")
        self._args = [stdbuf, "-oL", *args] if stdbuf else args
        self._ready_timeout = ready_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._subscribed = threading.Event()
        self._reader: threading.Thread | None = None
        self._debug: list[str] = []
        self.retained: list[bool] = []

    def __enter__(self) -> Subscriber:
        self._proc = subprocess.Popen(
            self._args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._reader = threading.Thread(target=self._read, name="mosquitto_sub", daemon=True)
        self._reader.start()
        if not self._subscribed.wait(self._ready_timeout):
            self.close()
            raise BrokerError(
                f"mosquitto_sub on {self.topic!r} got no SUBACK within {self._ready_timeout:g} s:\n"
                + "\n".join(self._debug)
            )
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for raw in self._proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line.startswith(self._PREFIX):
                self._lines.put(line[len(self._PREFIX) :])
            else:
                self._debug.append(line)
                if "received SUBACK" in line:
                    self._subscribed.set()
        self._lines.put(None)

    def collect(self, n: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:  # mosquitto_sub exited
                self._lines.put(None)
                break
            retain, rest = line.split(" ", 1)
            topic, hexed = rest.rsplit(" ", 1)
            self.retained.append(retain == "1")
            out.append((topic, bytes.fromhex(hexed)))
        return out

    @property
    def debug_output(self) -> str:
        """mosquitto_sub's `-d` lines (CONNACK, SUBACK, errors) for failure messages."""
        return "\n".join(self._debug)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __exit__(self, *exc: object) -> None:
        self.close()
