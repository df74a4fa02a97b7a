"""The device install, as a user does it: `pip wheel .`, then `deploy/install.sh` puts the wheel
with only the edge extra in a fresh venv: one `seqcast` package, working `seqcast-edge` commands,
no TensorFlow, pandas or Keras, and the edge test suite passing there (`pytest -m "not train"`)."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
NEVER_ON_A_DEVICE = ("tensorflow", "tensorflow-cpu", "keras", "pandas", "tf-keras")


def run(
    *cmd: str | Path, cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"/usr/sbin:{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_the_wheel_holds_one_seqcast_package_and_no_tests_or_bench(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"seqcast", wheel.name.split("-py3")[0] + ".dist-info"}
    assert not (tops & {"edge", "train", "deploy", "tests", "bench"})
    assert "seqcast/__init__.py" not in names  # a namespace package
    assert {"seqcast/edge/cli.py", "seqcast/train/cli.py", "seqcast/tools/demo.py"} <= set(names)
    assert not any("backends/tensorflow" in n for n in names)


def test_edge_extra_installs_no_tensorflow_pandas_or_keras(edge_venv: Path) -> None:
    code = (
        "import importlib.metadata as m\n"
        "for d in m.distributions(): print(d.metadata['Name'].lower())"
    )
    installed = set(run(edge_venv / "python", "-c", code).stdout.split())
    assert {"seqcast", "numpy", "paho-mqtt", "ai-edge-litert"} <= installed
    assert installed.isdisjoint(NEVER_ON_A_DEVICE)


def test_edge_commands_work_from_the_wheel(
    edge_venv: Path, small_bundle: Path, tmp_path: Path
) -> None:
    assert run(edge_venv / "seqcast-edge", "--help").returncode == 0
    example = run(edge_venv / "seqcast-edge", "config")
    assert example.returncode == 0 and "[mqtt]" in example.stdout
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'[model]\npath = "{small_bundle}"\n[state]\ndir = "{tmp_path / "state"}"\n')
    check = run(edge_venv / "seqcast-edge", "check", "-c", cfg)
    assert check.returncode == 0, check.stderr
    assert "passes its self-test on litert" in check.stdout
    inspect = run(edge_venv / "seqcast-edge", "inspect", small_bundle)
    assert inspect.returncode == 0 and "self-test" in inspect.stdout


def test_train_command_without_the_train_extra_is_one_line_exit_2(edge_venv: Path) -> None:
    proc = run(edge_venv / "seqcast-train", "fit", "--example", "vic_elec")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "pip install 'seqcast[train]'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_edge_test_suite_passes_where_only_the_edge_extra_is_installed(
    edge_venv: Path,
) -> None:
    proc = run(
        edge_venv / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not train",
        "--ignore", "tests/test_wheel.py", "--ignore", "tests/test_install.py",
    )  # fmt: skip
    tail = proc.stdout[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in tail and " failed" not in tail
