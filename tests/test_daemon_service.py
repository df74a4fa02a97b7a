"""The daemon as a service: sd_notify, `check`, `replay`, `demo`, and exact batching."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import load_model
from seqcast.edge.path.engine import Engine, Forecast, Scaling
from seqcast.edge.path.streams import StreamTable
from tests.daemon_harness import (
    BLOCKED_TF_ENTRY,
    DaemonProcess,
    offline_forecasts,
    received,
    write_config,
)

pytestmark = [pytest.mark.tflite]


def _edge(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKED_TF_ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.broker
def test_sd_notify_ready_watchdog_stopping(tmp_path, broker, small_bundle, unique_topic):
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, unique_topic)
    daemon = DaemonProcess.start(
        cfg, env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "300000"}
    )
    got: list[tuple[float, str]] = []

    def drain(until: float) -> None:
        while time.monotonic() < until:
            with contextlib.suppress(TimeoutError):
                got.append((time.monotonic(), sock.recv(4096).decode()))

    def ready_at() -> float | None:
        return next((t for t, msg in got if "READY=1" in msg.split("\n")), None)

    try:
        deadline = time.monotonic() + 20.0
        while ready_at() is None and time.monotonic() < deadline:
            drain(time.monotonic() + 0.2)
        ready = ready_at()
        assert ready is not None, got
        drain(ready + 1.5)  # idle: no input arrives
        # READY comes after the subscription: the retained "online" status already exists
        assert json.loads(broker.sub(f"{unique_topic}/status", 1)[0][1])["state"] == "online"
        dogs = [t for t, msg in got if msg == "WATCHDOG=1" and t > ready]
        assert len(dogs) >= 5, got  # every 0.15 s (half of WATCHDOG_USEC)
        # an idle daemon must not wait for input past its ping: systemd kills it after 0.3 s
        gaps = [b - a for a, b in zip([ready, *dogs], dogs, strict=False)]
        assert max(gaps) < 0.3, gaps
        assert daemon.proc.poll() is None
        daemon.proc.send_signal(15)
        drain(time.monotonic() + 1.5)
        assert any("STOPPING=1" in msg for _, msg in got)
        assert daemon.proc.wait(10) == 0
    finally:
        daemon.kill()
        sock.close()


def test_check_accepts_a_good_config_and_bundle(tmp_path, broker, small_bundle):
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, "t/check")
    proc = _edge("check", "-c", str(cfg))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ") and "passes its self-test on litert" in proc.stdout


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("mqtt", {"port": 70000}, "mqtt.port: must be 1..65535, got 70000"),
        ("mqtt", {"prot": 1}, "mqtt.prot: unknown key"),
        ("input", {"topic": "sensors/#"}, "input.topic"),
        ("model", {"mode": "stream", "path": "/nonexistent.seqcast"}, "cannot read bundle"),
        ("state", {"replicate": ["nats-1:4222"]}, 'state.replicate: must be "nats://host:port"'),
    ],
)
def test_check_rejects_bad_config_with_one_line(
    tmp_path, broker, small_bundle, section, values, message
):
    cfg = write_config(tmp_path / "edge.toml", broker, small_bundle, "t/check", **{section: values})
    proc = _edge("check", "-c", str(cfg))
    assert proc.returncode == 2  # a bad config or bundle: one line, exit 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr


def test_check_rejects_a_corrupt_bundle(tmp_path, broker, small_bundle):
    bad = tmp_path / "bad.seqcast"
    import zipfile

    with zipfile.ZipFile(small_bundle) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "step.tflite":
                data = data[:-10] + b"0123456789"  # same length, different bytes
            dst.writestr(item, data)
    cfg = write_config(tmp_path / "edge.toml", broker, bad, "t/check")
    proc = _edge("check", "-c", str(cfg))
    assert proc.returncode == 2  # a bad config or bundle: one line, exit 2
    assert (
        proc.stderr.strip()
        == f"seqcast-edge: error: {bad}: step.tflite: sha256 does not match manifest.files "
        "(file corrupted?)"
    )


@pytest.mark.broker
def test_replay_publishes_a_csv_per_stream_column(tmp_path, broker, unique_topic):
    csv = tmp_path / "multi.csv"
    csv.write_text(
        "time,meter,load,temp\n"
        + "".join(f"2024-01-01T00:{i:02d}:00Z,{'ab'[i % 2]},{i}.5,{20 + i}\n" for i in range(10))
    )
    with broker.subscriber(f"{unique_topic}/+/data", qos=1) as sub:
        proc = _edge(
            "replay",
            str(csv),
            "--stream-col",
            "meter",
            "--rate",
            "0",
            "--port",
            str(broker.port),
            "--host",
            broker.host,
            "--topic",
            f"{unique_topic}/{{stream}}/data",
        )
        assert proc.returncode == 0, proc.stderr
        msgs = sub.collect(10, timeout=10)
    assert [t for t, _ in msgs] == [f"{unique_topic}/{'ab'[i % 2]}/data" for i in range(10)]
    first = json.loads(msgs[0][1])
    assert first == {"ts": 1704067200.0, "load": 0.5, "temp": 20.0}


def test_replay_bad_file_is_one_line(tmp_path):
    proc = _edge("replay", str(tmp_path / "missing.csv"), "--port", "1")
    assert proc.returncode == 2 and "missing.csv" in proc.stderr.strip().splitlines()[-1]


def test_batched_equals_one_at_a_time_through_the_interpreter(small_bundle):
    """Exact equality, not a tolerance: rows never interact in the interpreter."""
    model, _ = load_model(read_bundle(small_bundle))
    m = model.bundle.manifest
    sc = m.scaler
    scaling = Scaling(
        *(np.asarray(v) for v in (sc.feature_mean, sc.feature_std, sc.target_mean, sc.target_std))
    )
    rng = np.random.default_rng(0)
    items = [
        (f"s{s}", 1000.0 + 60 * t, tuple(rng.normal([100, 20], [20, 3]).tolist()))
        for t in range(20)
        for s in rng.permutation(37)
    ]
    for mode in ("stream", "window"):

        def engine(mode: str = mode) -> Engine:
            table = StreamTable(64, m.seq_len, m.input_width, [tuple(s.shape) for s in m.state])
            return Engine(
                model, table, scaling, mode, m.min_history, m.mask_value, calendar=m.calendar
            )

        one = engine()
        ref = [f for it in items for f in one.process([it])]
        many = engine()
        got = [f for i in range(0, len(items), 50) for f in many.process(items[i : i + 50])]
        assert many.invokes < one.invokes / 5  # it really batched

        def key(fs: list[Forecast]) -> dict[str, list[tuple[float, bytes]]]:
            return {
                s: [(f.ts, f.values.tobytes()) for f in fs if f.stream == s]
                for s in {f.stream for f in fs}
            }

        assert key(got) == key(ref), mode
        assert len(ref) == 37 * (20 - m.min_history + 1)


@pytest.mark.broker
@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, vic_bundle):
    bundle, _ = vic_bundle
    plot = tmp_path / "demo.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqcast.edge.cli",
            "demo",
            "--bundle",
            str(bundle),
            "--days",
            "2",
            "--rate",
            "0",
            "--plot",
            str(plot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"received (\d+) of \1 forecasts", proc.stdout), proc.stdout  # none missing
    assert "daemon stopped on SIGTERM with exit code 0" in proc.stdout
    line = next(ln for ln in proc.stdout.splitlines() if "MAE of received forecasts" in ln)
    mae, naive = (
        float(v)
        for v in re.findall(r"MAE of received forecasts ([\d.]+) vs persistence ([\d.]+)", line)[0]
    )
    assert mae < naive
    assert plot.stat().st_size > 10_000


def test_daemon_log_names_the_bundle_problem(tmp_path, broker):
    cfg = write_config(tmp_path / "edge.toml", broker, tmp_path / "nope.seqcast", "t/x")
    daemon = DaemonProcess.start(cfg)
    assert daemon.proc.wait(60) == 2  # a bad bundle: one line, exit 2
    assert (
        daemon.log().strip().splitlines()[-1]
        == f"seqcast-edge: error: {tmp_path / 'nope.seqcast'}: cannot read bundle "
        "(No such file or directory)"
    )


def test_offline_reference_is_itself_sane(small_bundle):
    """Guard for the other tests: the offline reference produces warm forecasts that vary."""
    samples = [(1000.0 + 1800 * i, [100.0 + 10 * np.sin(i), 20.0]) for i in range(12)]
    out = offline_forecasts(small_bundle, samples, "stream")
    assert len(out) == 12 - 6 + 1
    assert len({round(r[0][1], 6) for _, r in out}) > 3
    assert received(
        [
            (
                "t",
                json.dumps(
                    {"stream": "a", "ts": 1.0, "forecast": [{"ts": 2.0, "load": 3.0}]}
                ).encode(),
            )
        ],
        ["load"],
    ) == {"a": [(1.0, [[2.0, 3.0]])]}
