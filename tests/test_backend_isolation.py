"""Finding 8: a backend that crashes the process during its self-test must not take the daemon
with it. Real parts only: a trained bundle, real LiteRT, and test backends (written to tmp_path,
shaped like `edge/model/backends/litert.py`) whose interpreter really segfaults, aborts, hangs
or computes wrong numbers. The crashing ones are shown to kill a process that tests in-process
(`isolate=False`), so the tests prove both the failure mode and the fix.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from seqcast.edge.model import backends, isolation
from seqcast.edge.model.backends import NoBackendError
from seqcast.edge.model.bundle import parse_bundle, read_bundle
from seqcast.edge.model.runtime import load_model

# A backend module as the registry expects one (`KEY`, `load_interpreter_class()`): LiteRT's
# interpreter with `invoke` or `get_tensor` replaced.
BACKEND_TEMPLATE = '''"""Test backend {key}: LiteRT's interpreter, {what}."""

import ctypes
import os
import time

from seqcast.edge.model.backends.base import InterpreterClass

KEY = "{key}"


def load_interpreter_class() -> InterpreterClass:
    from ai_edge_litert.interpreter import Interpreter

    class BrokenInterpreter(Interpreter):
{methods}
    return BrokenInterpreter
'''

SEGFAULT = (
    "def invoke(self):\n"
    "    os.write(2, b'native noise \\xff\\xfe\\n')  # not UTF-8, as native code may write\n"
    "    ctypes.string_at(0)  # reads address 0: a real SIGSEGV\n"
)
ABORT = "def invoke(self):\n    os.abort()\n"
HANG = "def invoke(self):\n    time.sleep(3600)\n"
WRONG = "def get_tensor(self, index):\n    return super().get_tensor(index) + 1.0\n"


def write_backend(directory: Path, key: str, methods: str, what: str) -> str:
    """Write a backend module into `directory`; returns its (unique) module name."""
    name = f"{key}_backend_{uuid.uuid4().hex[:8]}"
    body = "".join(f"        {line}\n" if line else "\n" for line in methods.splitlines())
    source = BACKEND_TEMPLATE.format(key=key, what=what, methods=body)
    (directory / f"{name}.py").write_text(source)
    return name


@pytest.fixture
def child_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on the children's PYTHONPATH (not on this process's sys.path)."""
    old = os.environ.get("PYTHONPATH")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *([old] if old else [])]))
    return tmp_path


def register_first(monkeypatch: pytest.MonkeyPatch, key: str, module: str) -> None:
    """Put `key` ahead of litert: the registry's order is the order of preference."""
    monkeypatch.setattr(backends, "REGISTRY", {key: module, **backends.REGISTRY})
    assert backends.backend_keys()[0] == key


CRASHES = [
    pytest.param(SEGFAULT, "SIGSEGV", id="segfault"),
    pytest.param(ABORT, "SIGABRT", id="abort"),
]


@pytest.mark.parametrize(("methods", "signame"), CRASHES)
def test_a_crashing_backend_is_reported_and_the_next_one_is_used(
    small_bundle, child_path, monkeypatch, caplog, methods, signame
):
    module = write_backend(child_path, "crashy", methods, f"dies with {signame} in invoke")
    register_first(monkeypatch, "crashy", module)
    caplog.set_level(logging.INFO, logger="seqcast.edge.model")

    bundle = read_bundle(small_bundle)
    model, report = load_model(bundle)

    assert model.backend == "litert" and report.passed
    assert report.backend == "litert"
    crash = [r for r in caplog.records if signame in r.getMessage()]
    assert crash and crash[0].levelno == logging.WARNING, caplog.text
    assert crash[0].getMessage() == (
        f"backend crashy cannot run {bundle.model_id}: crashed during its self-test ({signame})"
    )
    assert "Fatal Python error" in caplog.text  # the child's faulthandler report, for the log
    if signame == "SIGSEGV":  # undecodable bytes from native code are logged, not fatal
        assert "native noise \ufffd\ufffd" in caplog.text
    assert module not in sys.modules  # the crashing backend never entered this process

    # Asked for by name, the crash becomes the usual one-line "no backend" error.
    with pytest.raises(
        NoBackendError, match=rf"crashy: crashed during its self-test \({signame}\)"
    ):
        load_model(read_bundle(small_bundle), backend="crashy")


CALLER = """
import sys
from seqcast.edge.model import backends
from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import load_model

backends.REGISTRY = {"crashy": sys.argv[2], **backends.REGISTRY}
model, report = load_model(read_bundle(sys.argv[1]), isolate=sys.argv[3] == "on")
print("loaded on", model.backend, "passed" if report.passed else "FAILED")
"""


def test_without_isolation_the_same_crash_kills_the_process(small_bundle, child_path):
    """The failure mode is real: in-process, the segfault kills the caller (as it killed the
    daemon); with isolation on, the same caller ends up on litert."""
    module = write_backend(child_path, "crashy", SEGFAULT, "dies with SIGSEGV in invoke")

    def call(isolate: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CALLER, str(small_bundle), module, isolate],
            capture_output=True,
            encoding="utf-8",
            errors="replace",  # the crashing backend writes non-UTF-8 bytes first
            timeout=300,
        )

    off = call("off")
    assert off.returncode == -signal.SIGSEGV, (off.returncode, off.stderr[-2000:])
    assert "loaded on" not in off.stdout

    on = call("on")
    assert on.returncode == 0, on.stderr[-2000:]
    assert on.stdout.strip() == "loaded on litert passed"
    assert ": crashed during its self-test (SIGSEGV)" in on.stderr  # the warning, via lastResort


def test_a_backend_failing_its_selftest_in_the_child_is_reported(
    small_bundle, child_path, monkeypatch, caplog
):
    module = write_backend(child_path, "wrong", WRONG, "every output off by one")
    register_first(monkeypatch, "wrong", module)
    caplog.set_level(logging.INFO, logger="seqcast.edge.model")

    model, report = load_model(read_bundle(small_bundle))

    assert model.backend == "litert" and report.passed
    # The reason is the self-test's own, with the measured error: the child ran it (this
    # process cannot even import the module; it would say "not installed").
    assert "backend wrong cannot run" in caplog.text
    assert "self-test failed (max error window 1" in caplog.text
    assert "not installed" not in caplog.text
    assert module not in sys.modules

    with pytest.raises(NoBackendError, match=r"wrong: self-test failed \(max error window 1"):
        load_model(read_bundle(small_bundle), backend="wrong")


def test_a_hanging_backend_times_out_in_the_child(small_bundle, child_path):
    module = write_backend(child_path, "hang", HANG, "never returns from invoke")
    verdict = isolation.selftest_in_child(read_bundle(small_bundle), "hang", module, 1, 2.0)
    assert verdict == isolation.Verdict(False, "self-test did not finish within 2 s (child killed)")


def test_a_missing_backend_module_is_unavailable_not_a_crash(small_bundle, monkeypatch, caplog):
    register_first(monkeypatch, "ghost", "no_such_backend_module")
    caplog.set_level(logging.INFO, logger="seqcast.edge.model")
    model, _ = load_model(read_bundle(small_bundle))
    assert model.backend == "litert"
    assert "interpreter backend ghost unavailable: not installed" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_bundle_without_a_file_is_tested_in_process(
    small_bundle, child_path, monkeypatch, caplog
):
    """Nothing to hand to a child: the self-test runs here, as before isolation."""
    monkeypatch.syspath_prepend(str(child_path))
    module = write_backend(child_path, "wrong", WRONG, "every output off by one")
    register_first(monkeypatch, "wrong", module)
    caplog.set_level(logging.INFO, logger="seqcast.edge.model")
    bundle = parse_bundle(Path(small_bundle).read_bytes())
    assert bundle.path is None

    model, _ = load_model(bundle)

    assert model.backend == "litert"
    assert "backend wrong cannot run" in caplog.text
    assert "self-test failed (max error window 1" in caplog.text
    assert module in sys.modules  # imported and tested in this process
    del sys.modules[module]


def test_a_child_that_never_ran_falls_back_to_testing_in_process(
    small_bundle, child_path, monkeypatch, caplog
):
    """A broken child environment says nothing about the backend: no verdict, test here."""
    monkeypatch.syspath_prepend(str(child_path))
    module = write_backend(child_path, "wrong", WRONG, "every output off by one")
    register_first(monkeypatch, "wrong", module)
    monkeypatch.setattr(isolation, "CHILD_MODULE", "no_such_child_module")
    caplog.set_level(logging.INFO, logger="seqcast.edge.model")

    model, _ = load_model(read_bundle(small_bundle))

    assert model.backend == "litert"
    assert "cannot self-test wrong in a child (exited with status 1" in caplog.text
    assert "No module named no_such_child_module" in caplog.text
    assert "backend wrong cannot run" in caplog.text and "self-test failed" in caplog.text
    assert module in sys.modules  # the verdict came from this process
    del sys.modules[module]


def test_signal_names():
    assert isolation.signal_name(signal.SIGSEGV) == "SIGSEGV"
    assert isolation.signal_name(signal.SIGBUS) == "SIGBUS"
    assert isolation.signal_name(250) == "signal 250"
