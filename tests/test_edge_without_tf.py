"""The device side runs with TensorFlow blocked from import: inspect loads and self-tests."""

import subprocess
import sys
from pathlib import Path

import pytest

from seqcast.train.fit import FitOptions, fit
from tests.daemon_harness import BLOCKED_TF_ENTRY
from tests.synth import SMALL_FIT, write_csv

pytestmark = [pytest.mark.tflite]

BLOCKER = BLOCKED_TF_ENTRY


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("notf")
    csv = write_csv(tmp / "s.csv", n=600)
    r = fit(
        FitOptions(  # type: ignore[arg-type]
            **{**SMALL_FIT, "seq_len": 8, "horizon": 2},
            data=str(csv),
            out=str(tmp / "m.seqcast"),
        )
    )
    return r.bundle.path


def test_inspect_without_tensorflow(bundle):
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "inspect", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "self-test   PASS on litert" in proc.stdout
    assert "layer0_h[8]" in proc.stdout


def test_inspect_json_without_tensorflow(bundle):
    import json

    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "inspect", "--json", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["selftest_result"]["passed"] is True and doc["seq_len"] == 8


def test_the_blocker_really_blocks():
    assert "runpy.run_module('seqcast.edge.cli', run_name='__main__')" in BLOCKER
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCKER.replace(
                "runpy.run_module('seqcast.edge.cli', run_name='__main__')", "import tensorflow"
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0 and "blocked on the device" in proc.stderr


def test_corrupt_bundle_is_one_clear_line(bundle, tmp_path):
    data = bytearray(bundle.read_bytes())
    bad = tmp_path / "bad.seqcast"
    bad.write_bytes(bytes(data[: len(data) // 2]))
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "inspect", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2  # a bad bundle: one line, exit 2
    assert (
        proc.stderr.strip().splitlines()[-1]
        == f"seqcast-edge: error: {bad}: not a seqcast bundle (not a zip file)"
    )
