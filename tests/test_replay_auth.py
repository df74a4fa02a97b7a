"""`seqcast-edge replay` against a broker that wants a password, and over TLS.

A real mosquitto (`make_broker`) and a real `seqcast-edge replay` process: the right user name and
password file deliver the messages; a wrong password, a password file others may read, or a CA
that does not trust the broker end replay with exit code 2 and one error line, quickly.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.broker import Broker, Subscriber
from tests.tls import OPENSSL, Pki, make_pki, mosquitto_lines

pytestmark = [pytest.mark.broker]

USER, PASSWORD = "replayer", "pw-Rq7x!s3cret"
N = 5


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def auth_broker(make_broker: Callable[..., Broker]) -> Broker:
    """Plain TCP, no anonymous access, one user."""
    return make_broker(allow_anonymous=False, users={USER: PASSWORD})


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "series.csv"
    rows = "".join(f"2024-01-01T00:{i:02d}:00Z,{i}.5,{20 + i}\n" for i in range(N))
    path.write_text("time,load,temp\n" + rows)
    return path


def password_file(path: Path, text: str, mode: int = 0o600) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)  # whatever the umask
    return path


def replay(
    csv: Path, broker: Broker, topic: str, *args: str, timeout: float = 30
) -> tuple[subprocess.CompletedProcess[str], float]:
    cmd = [sys.executable, "-m", "seqcast.edge.cli", "replay", str(csv), "--rate", "0"]
    cmd += ["--host", broker.host, "--port", str(broker.port), "--topic", topic, *args]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - t0


def assert_sent(msgs: list[tuple[str, bytes]], topic: str) -> None:
    assert [t for t, _ in msgs] == [topic] * N
    assert [json.loads(p) for _, p in msgs] == [
        {"ts": 1704067200.0 + 60 * i, "load": i + 0.5, "temp": 20.0 + i} for i in range(N)
    ]


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed replay (exit 2), without its prefix."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    prefix = "seqcast-edge replay: error: "
    assert lines[0].startswith(prefix), lines[0]
    return lines[0][len(prefix) :]


class TlsSubscriber(Subscriber):
    """`Subscriber` with extra mosquitto_sub arguments (it has no `extra_args` of its own)."""

    def __init__(self, broker: Broker, topic: str, extra: list[str], **kwargs: Any) -> None:
        super().__init__(broker, topic, **kwargs)
        self._args = [*self._args, *extra]


# -- user name and password ----------------------------------------------------------------------


def test_replay_with_username_and_password_file(
    tmp_path: Path, auth_broker: Broker, csv_file: Path, unique_topic: str
) -> None:
    pw = password_file(tmp_path / "pw", PASSWORD + "\n")  # one trailing newline is stripped
    topic = f"{unique_topic}/meter-1/data"
    with auth_broker.subscriber(topic, qos=1, username=USER, password=PASSWORD) as sub:
        proc, _ = replay(
            csv_file, auth_broker, f"{unique_topic}/{{stream}}/data",
            "--username", USER, "--password-file", str(pw),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        msgs = sub.collect(N, timeout=10)
    assert_sent(msgs, topic)
    assert "seqcast-edge replay: error" not in proc.stderr


def test_replay_wrong_password_is_one_line_and_quick(
    tmp_path: Path, auth_broker: Broker, csv_file: Path, unique_topic: str
) -> None:
    pw = password_file(tmp_path / "pw", "not-the-password\n")
    proc, elapsed = replay(
        csv_file, auth_broker, f"{unique_topic}/{{stream}}/data",
        "--username", USER, "--password-file", str(pw),
    )  # fmt: skip
    line = error_line(proc)
    assert "not authorized" in line.lower(), line
    assert f"{auth_broker.host}:{auth_broker.port}" in line
    assert "not-the-password" not in proc.stderr + proc.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_replay_without_credentials_is_refused(
    auth_broker: Broker, csv_file: Path, unique_topic: str
) -> None:
    proc, elapsed = replay(csv_file, auth_broker, f"{unique_topic}/{{stream}}/data")
    line = error_line(proc)
    assert "not authorized" in line.lower() and "--username" in line, line
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_password_file_readable_by_others_is_refused_before_connecting(
    tmp_path: Path, make_broker: Callable[..., Broker], csv_file: Path, unique_topic: str
) -> None:
    """Against a port nobody listens on: had replay tried to connect, that would be the error."""
    gone = make_broker(allow_anonymous=False, users={USER: PASSWORD})
    gone.stop()
    pw = password_file(tmp_path / "pw", PASSWORD + "\n", mode=0o644)
    proc, _ = replay(
        csv_file, gone, f"{unique_topic}/{{stream}}/data",
        "--username", USER, "--password-file", str(pw),
    )  # fmt: skip
    line = error_line(proc)
    want = f"--password-file {pw}: group or others may access it (mode 0644); chmod 600 {pw}"
    assert line == want, line
    assert PASSWORD not in proc.stderr


def test_unreachable_broker_is_one_line(
    make_broker: Callable[..., Broker], csv_file: Path, unique_topic: str
) -> None:
    gone = make_broker()
    gone.stop()  # a port nobody listens on any more
    proc, elapsed = replay(csv_file, gone, f"{unique_topic}/{{stream}}/data")
    line = error_line(proc)
    assert f"cannot reach MQTT broker {gone.host}:{gone.port}: " in line, line
    assert "refused" in line.lower(), line
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_help_documents_every_option() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "seqcast.edge.cli", "replay", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    for text in ("broker host (localhost)", "broker port (1883)", "--password-file FILE"):
        assert text in " ".join(proc.stdout.split()), text
    for option in ("--tls", "--ca-file", "--cert-file", "--key-file", "--insecure"):
        assert option in proc.stdout
    assert "--password " not in proc.stdout  # no way to put the password on the command line


# -- TLS -----------------------------------------------------------------------------------------


def test_replay_over_tls_with_ca_file(
    make_broker: Callable[..., Broker], pki: Pki, csv_file: Path, unique_topic: str
) -> None:
    broker = make_broker(mosquitto_lines(pki, require_certificate=False))
    topic = f"{unique_topic}/meter-1/data"
    with TlsSubscriber(broker, topic, ["--cafile", str(pki.ca)], qos=1) as sub:
        proc, _ = replay(
            csv_file, broker, f"{unique_topic}/{{stream}}/data", "--ca-file", str(pki.ca)
        )
        assert proc.returncode == 0, proc.stderr
        msgs = sub.collect(N, timeout=10)
    assert_sent(msgs, topic)


def test_replay_over_tls_with_client_certificate_and_password(
    tmp_path: Path, make_broker: Callable[..., Broker], pki: Pki, csv_file: Path, unique_topic: str
) -> None:
    """What a device has: client certificate required, no anonymous access, one user."""
    broker = make_broker(mosquitto_lines(pki), allow_anonymous=False, users={USER: PASSWORD})
    pw = password_file(tmp_path / "pw", PASSWORD)
    topic = f"{unique_topic}/meter-1/data"
    tls = ["--cafile", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    with TlsSubscriber(broker, topic, tls, qos=1, username=USER, password=PASSWORD) as sub:
        proc, _ = replay(
            csv_file, broker, f"{unique_topic}/{{stream}}/data",
            "--ca-file", str(pki.ca), "--cert-file", str(pki.client_cert),
            "--key-file", str(pki.client_key), "--username", USER, "--password-file", str(pw),
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        msgs = sub.collect(N, timeout=10)
    assert_sent(msgs, topic)


def test_replay_over_tls_with_an_untrusted_ca_is_one_line(
    make_broker: Callable[..., Broker], pki: Pki, csv_file: Path, unique_topic: str
) -> None:
    broker = make_broker(mosquitto_lines(pki, require_certificate=False))
    proc, elapsed = replay(
        csv_file, broker, f"{unique_topic}/{{stream}}/data", "--ca-file", str(pki.evil_ca)
    )
    line = error_line(proc)
    assert line.startswith(f"TLS handshake with {broker.host}:{broker.port} failed: "), line
    assert "certificate verify failed" in line, line
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_missing_ca_file_is_named(
    tmp_path: Path, broker: Broker, csv_file: Path, unique_topic: str
) -> None:
    missing = tmp_path / "nope.pem"
    proc, _ = replay(csv_file, broker, f"{unique_topic}/{{stream}}/data", "--ca-file", str(missing))
    assert error_line(proc) == f"--ca-file {missing}: No such file or directory"


def test_replay_without_the_required_client_certificate_is_one_line(
    make_broker: Callable[..., Broker], pki: Pki, csv_file: Path, unique_topic: str
) -> None:
    """TLS 1.3: the broker rejects the missing certificate only after the handshake."""
    broker = make_broker(mosquitto_lines(pki))
    proc, elapsed = replay(
        csv_file, broker, f"{unique_topic}/{{stream}}/data", "--ca-file", str(pki.ca)
    )
    line = error_line(proc)
    assert line.startswith(f"TLS handshake with {broker.host}:{broker.port} failed: "), line
    assert "client certificate" in line, line
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_silent_broker_is_one_line_after_the_connect_timeout(csv_file: Path) -> None:
    """A port that accepts TCP but never answers MQTT: no hang, the wait is bounded."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads
        port = silent.getsockname()[1]
        cmd = [sys.executable, "-m", "seqcast.edge.cli", "replay", str(csv_file), "--rate", "0"]
        cmd += ["--host", "127.0.0.1", "--port", str(port), "--connect-timeout", "1"]
        t0 = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
        elapsed = time.monotonic() - t0
    assert error_line(proc) == f"MQTT broker 127.0.0.1:{port} sent no CONNACK within 1 s"
    assert elapsed < 10, f"took {elapsed:.1f} s"
