"""Security end to end: TLS with a CA made in the test, client certificates, passwords, wildcards.

The broker is a real mosquitto with a TLS listener built from a throwaway PKI (`tests/tls.py`)
and a password file; the daemon is a real `seqcast-edge run` process. Failures must give one
clear error line, keep the process up and retry with backoff; the password must never show up
in a log line, on the command line or in the environment.

Covered elsewhere and not repeated here: the config rules that refuse wildcard topic templates
(tests/test_config.py), `TopicTemplate` refusing wildcards and wildcard stream names
(tests/test_topics.py), `check` refusing input.topic "sensors/#" (tests/test_daemon_service.py),
`read_password`'s file-mode rules and `$CREDENTIALS_DIRECTORY` lookup (tests/test_config.py), and
the refusal message with a fake paho client (tests/test_mqtt_link_fake.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mqtt_clients import make_mqtt_link
from seqcast.edge.mqtt.link import MqttLink
from tests.broker import MOSQUITTO_PUB, Broker, Subscriber, free_port
from tests.daemon_harness import (
    BLOCKED_TF_ENTRY,
    DaemonProcess,
    offline_forecasts,
    received,
    write_config,
)
from tests.synth import synthetic_frame
from tests.tls import OPENSSL, Pki, make_pki, mosquitto_lines

pytestmark = [pytest.mark.broker]

USER, PASSWORD = "edge", "s3cret-pw"
WRONG_PASSWORD = "not-the-pw-Zq81x"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if OPENSSL is None:
        pytest.skip("openssl is not installed")
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(make_broker: Callable[..., Broker], pki: Pki) -> Broker:
    """TLS only, client certificate required, no anonymous access, one user."""
    return make_broker(mosquitto_lines(pki), allow_anonymous=False, users={USER: PASSWORD})


def secret(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def edge_config(
    tmp_path: Path, broker: Broker, bundle: Path, prefix: str, pki: Pki, password_file: Path | str,
    *, ca: Path | None = None, cert: Path | None = None, key: Path | None = None,
) -> Path:  # fmt: skip
    """Password and TLS like a device would have them; fast retries; debug logging (so that
    paho's own packet log is searched for the password too)."""
    mqtt = {"username": USER, "password_file": str(password_file)}
    mqtt |= {"reconnect_min_s": 0.2, "reconnect_max_s": 1.0}
    tls = {"ca_file": str(ca or pki.ca), "cert_file": str(cert or pki.client_cert)}
    tls["key_file"] = str(key or pki.client_key)
    return write_config(
        tmp_path / "edge.toml", broker, bundle, prefix, mqtt=mqtt, log={"level": "debug"},
        **{"mqtt.tls": tls},
    )  # fmt: skip


def client_args(pki: Pki) -> list[str]:
    """mosquitto_pub/mosquitto_sub: TLS with the test CA and client certificate, and the user."""
    tls = ["--cafile", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    return [*tls, "-u", USER, "-P", PASSWORD]


class TlsSubscriber(Subscriber):
    """`Subscriber` with extra mosquitto_sub arguments (it has no `extra_args` of its own)."""

    def __init__(self, broker: Broker, topic: str, extra: list[str], **kwargs: Any) -> None:
        super().__init__(broker, topic, **kwargs)
        self._args = [*self._args, *extra]


def publish_lines_tls(broker: Broker, pki: Pki, topic: str, lines: list[bytes]) -> None:
    assert MOSQUITTO_PUB is not None
    args = [MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port), *client_args(pki)]
    done = subprocess.run(
        [*args, "-t", topic, "-q", "1", "-l"], input=b"\n".join(lines) + b"\n",
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def problems(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith(("ERROR", "WARNING", "CRITICAL"))]


def assert_secret_not_in_process(pid: int, password: str) -> None:
    """What `ps -ef`/`ps e` would show: the command line and the environment."""
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"run" in cmdline.split(b"\0")  # the daemon itself
    assert password.encode() not in cmdline
    assert password.encode() not in environ


def samples(n: int) -> list[tuple[float, list[float]]]:
    df = synthetic_frame(n, seed=7)
    ts = 1_700_000_000.0 + 1800.0 * np.arange(n)
    return [
        (float(t), [float(a), float(b)]) for t, a, b in zip(ts, df["load"], df["temp"], strict=True)
    ]


# -- the daemon over TLS -------------------------------------------------------------------------


@pytest.mark.tflite
def test_daemon_over_tls_with_client_certificate_and_password(
    tmp_path: Path, tls_broker: Broker, pki: Pki, small_bundle: Path, unique_topic: str
) -> None:
    pw_file = secret(tmp_path / "secrets" / "mqtt-password", PASSWORD + "\n")
    cfg = edge_config(tmp_path, tls_broker, small_bundle, unique_topic, pki, pw_file)
    data = samples(12)
    want = offline_forecasts(small_bundle, data, "stream")
    payloads = [json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode() for ts, v in data]
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving", timeout=30)
        topic = f"{unique_topic}/forecasts/+"
        with TlsSubscriber(tls_broker, topic, client_args(pki), qos=1) as sub:
            publish_lines_tls(tls_broker, pki, f"{unique_topic}/sensors/meter-1/data", payloads)
            messages = sub.collect(len(want), timeout=20)
        assert_secret_not_in_process(daemon.proc.pid, PASSWORD)
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
    log = daemon.log()
    assert f"connecting to 127.0.0.1:{tls_broker.port} with TLS" in log
    got = received(messages, ["load"])["meter-1"]
    assert [ts for ts, _ in got] == [ts for ts, _ in want] and len(want) == 12 - 6 + 1
    np.testing.assert_allclose([r for _, r in got], [r for _, r in want], rtol=1e-6, atol=1e-6)
    assert PASSWORD not in log and problems(log) == []


@pytest.mark.tflite
def test_password_from_systemd_credentials_directory(
    tmp_path: Path, tls_broker: Broker, pki: Pki, small_bundle: Path, unique_topic: str
) -> None:
    creds = tmp_path / "credentials"  # what LoadCredential=mqtt-password:... provides
    secret(creds / "mqtt-password", PASSWORD)
    cfg = edge_config(tmp_path, tls_broker, small_bundle, unique_topic, pki, "mqtt-password")
    daemon = DaemonProcess.start(cfg, env={"CREDENTIALS_DIRECTORY": str(creds)})
    try:
        daemon.wait_for_log("seqcast-edge serving", timeout=30)
        assert_secret_not_in_process(daemon.proc.pid, PASSWORD)
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
    log = daemon.log()
    assert f"connected to MQTT broker 127.0.0.1:{tls_broker.port}" in log
    assert PASSWORD not in log and problems(log) == []


# -- failures: one clear line, the process stays up, retries with backoff ------------------------


def run_failing(
    cfg: Path, broker: Broker, error: str, marker: str, min_marks: int
) -> tuple[DaemonProcess, list[str]]:
    """Start the daemon, wait for its error line and for `min_marks` lines containing `marker`
    in the broker's log (one per connection the broker saw), check it is still running, stop it.
    Returns the daemon and its warning/error lines from before the stop."""
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log(error, timeout=30)
        wait_until(
            lambda: broker.log().count(marker) >= min_marks, 10,
            f"{min_marks} x {marker!r} in the broker log:\n{broker.log()}",
        )  # fmt: skip
        assert daemon.proc.poll() is None, daemon.log()
        before_stop = problems(daemon.log())
        assert daemon.stop() == 0, daemon.log()
    finally:
        daemon.kill()
    return daemon, before_stop


@pytest.mark.tflite
def test_wrong_password_is_one_clear_error_then_retries(
    tmp_path: Path, tls_broker: Broker, pki: Pki, small_bundle: Path, unique_topic: str
) -> None:
    pw_file = secret(tmp_path / "mqtt-password", WRONG_PASSWORD)
    cfg = edge_config(tmp_path, tls_broker, small_bundle, unique_topic, pki, pw_file)
    error = (
        "ERROR seqcast.edge.mqtt.link: "
        f"MQTT broker 127.0.0.1:{tls_broker.port} refused the connection: "
        "Not authorized (check mqtt.username and mqtt.password_file; retrying with backoff)"
    )
    # mosquitto logs every refused CONNECT: two of them prove the daemon retried
    daemon, lines = run_failing(cfg, tls_broker, error, "disconnected, not authorised", 2)
    assert lines == [error]  # one line: later attempts are rate-limited
    log = daemon.log()
    assert "paho: Sending CONNECT" in log  # paho's packet log was on, and it too is clean
    assert WRONG_PASSWORD not in log and PASSWORD not in log
    assert WRONG_PASSWORD not in tls_broker.log()


@pytest.mark.tflite
@pytest.mark.parametrize(
    ("case", "error", "marker"),
    [
        # the daemon does not trust the broker: its CA file is the wrong one
        ("broker-untrusted", "certificate verify failed: ", "alert unknown ca"),
        # the broker does not trust the daemon's client certificate (under TLS 1.3 the broker
        # says so only after the handshake: paho sees a closed connection, the link probes)
        ("client-untrusted", "the broker rejected the client certificate: ", "verify failed"),
    ],
)
def test_untrusted_certificate_is_one_clear_error_then_retries(
    tmp_path: Path, tls_broker: Broker, pki: Pki, small_bundle: Path, unique_topic: str,
    case: str, error: str, marker: str,
) -> None:  # fmt: skip
    pw_file = secret(tmp_path / "mqtt-password", PASSWORD)
    files: dict[str, Any] = (
        {"ca": pki.evil_ca}
        if case == "broker-untrusted"
        else {"cert": pki.evil_client_cert, "key": pki.evil_client_key}
    )
    cfg = edge_config(tmp_path, tls_broker, small_bundle, unique_topic, pki, pw_file, **files)
    prefix = (
        f"ERROR seqcast.edge.mqtt.link: TLS handshake with 127.0.0.1:{tls_broker.port} failed: "
    )
    # each connection leaves one marker line in the broker log; a failed attempt makes at most
    # two connections (paho's, and the link's diagnostic probe), so 4 lines mean >= 2 attempts
    daemon, lines = run_failing(cfg, tls_broker, prefix + error, marker, 4)
    assert len(lines) == 1 and lines[0].startswith(prefix + error), lines
    assert lines[0].endswith(" (retrying with backoff)")
    assert PASSWORD not in daemon.log()


@pytest.fixture
def make_link() -> Iterator[Callable[..., MqttLink]]:
    links: list[MqttLink] = []

    def make(port: int, **tls: Any) -> MqttLink:
        links.append(
            make_mqtt_link(
                "a/{stream}",
                host="127.0.0.1",
                port=port,
                reconnect_min_s=0.2,
                reconnect_max_s=1,
                **tls,
            )
        )
        links[-1].start()
        return links[-1]

    yield make
    for link in links:
        link.stop(timeout=1)


def link_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "seqcast.edge.mqtt.link" and r.levelno >= 30
    ]


@pytest.mark.parametrize("tls", [False, True])
def test_unreachable_broker_names_the_reason(
    make_link: Callable[..., MqttLink], pki: Pki, caplog: pytest.LogCaptureFixture, tls: bool
) -> None:
    port = free_port()  # nothing listens there
    link = make_link(port, **({"tls_enabled": True, "tls_ca_file": str(pki.ca)} if tls else {}))
    wait_until(lambda: link.counters.connect_failures >= 2, 10, "two failed attempts")
    reason = f"cannot reach MQTT broker 127.0.0.1:{port}: [Errno 111] Connection refused"
    assert link.last_error == reason
    assert link_errors(caplog) == [reason + " (retrying with backoff)"]


def test_tls_client_on_a_plain_port_and_plain_client_on_a_tls_port(
    make_link: Callable[..., MqttLink], broker: Broker, tls_broker: Broker, pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    tls_to_plain = make_link(broker.port, tls_enabled=True, tls_ca_file=str(pki.ca))
    plain_to_tls = make_link(tls_broker.port)
    both = lambda: bool(tls_to_plain.last_error and plain_to_tls.last_error)  # noqa: E731
    wait_until(both, 10, "both failed")
    # mosquitto drops a ClientHello on a plain port (usually a reset); paho sees only a disconnect
    # when a plain client meets a TLS port
    assert str(tls_to_plain.last_error).startswith(
        f"TLS handshake with 127.0.0.1:{broker.port} failed: "
    )
    closed = f"MQTT broker 127.0.0.1:{tls_broker.port} closed the connection before CONNACK ("
    assert str(plain_to_tls.last_error).startswith(closed)
    assert str(plain_to_tls.last_error).endswith("; a TLS-only port?")
    assert not tls_to_plain.connected and not plain_to_tls.connected
    assert len(link_errors(caplog)) == 2


# -- wildcards can never reach a subscription ----------------------------------------------------


def _edge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_TF_ENTRY, *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("command", "section", "topic"),
    [
        ("check", "input", "#"),
        ("check", "input", "sensors/+/data"),
        ("run", "input", "sensors/#"),
        ("run", "output", "forecasts/+"),
    ],
)
def test_wildcard_topics_are_refused_before_connecting(
    tmp_path: Path, broker: Broker, command: str, section: str, topic: str
) -> None:
    sections = {section: {"topic": topic}}
    bundle = tmp_path / "never-read.seqcast"  # the config is refused before the model is read
    cfg = write_config(tmp_path / "edge.toml", broker, bundle, "t/wild", **sections)
    before = broker.log().count("New connection")
    proc = _edge(command, "-c", str(cfg))
    assert proc.returncode == 2  # a bad config: one line, exit 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{section}.topic: must not contain the MQTT wildcards '+' or '#'" in lines[0]
    assert broker.log().count("New connection") == before  # it never connected
