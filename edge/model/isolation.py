"""Self-test a backend in a child process first, so a backend that crashes cannot take us down.

Why a child process: an interpreter backend is native code. When it faults in `invoke` (seen:
int8 bundles under tflite-runtime on 32-bit ARM die with SIGSEGV; SIGBUS, SIGILL and SIGABRT are
as possible) no `try`/`except` runs: the kernel ends the process. The daemon then dies before
the next backend is tried, and under systemd (`Restart=on-failure`, `check` in `ExecStartPre=`)
that is a restart loop. Catching the signal in-process is no way out: the fault happens inside C
code, Python's handlers only run between bytecodes, and the process state after a SIGSEGV cannot
be trusted. `os.fork()` without `exec` is unsafe in a process with threads (paho's network
thread, the interpreter's thread pool) and would inherit every backend already imported. A
fresh interpreter imports only numpy, the bundle reader and the one backend under test; if it
dies, only it dies, and its exit status says how (`returncode < 0`: killed by that signal).

Protocol (`python -m seqcast.edge.model.isolation BUNDLE MODULE NUM_THREADS`): the child reads
and verifies the bundle, imports backend module MODULE by name (so a backend outside the
registry works too, if it is importable: the child inherits the environment, PYTHONPATH
included), runs the same load + self-test as the daemon (`runtime.try_backend`) and prints one
JSON line on stdout: `{"sha256", "passed", "unavailable", "reason"}`; it first says it started
(on stderr), and whatever the backend itself prints to stdout goes to stderr instead. The parent
turns a signal death into `<key>: crashed during its self-test (SIGSEGV)`, a timeout or an exit
without a result into a failure too, and the next backend is tried. Only a backend that passed
in the child is then loaded (and self-tested again) in the daemon's own process.

When the child cannot decide, the daemon tests in-process as it did before, with a warning where
that is unexpected: a bundle parsed from bytes (no file to hand over), no child process could be
started or it never got to run (e.g. it cannot import seqcast), or the file changed on disk
between the two reads (the child tested other bytes than the daemon holds).

The price is one extra interpreter start, plus the imports and self-test, per backend tried.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the child imports nothing heavy before it says it started
    from seqcast.edge.model.bundle import Bundle

log = logging.getLogger(__name__)

CHILD_MODULE = "seqcast.edge.model.isolation"
# Longest wait for one backend's child (interpreter start, imports, load, self-test); a hung
# backend is killed then and counts as failed. Slow boards need a few seconds; `check` and `run`
# each trying a hung backend still fit systemd's default 90 s start timeout.
SELFTEST_TIMEOUT_S = 20.0
# The child's first line on stderr: without it, the child never ran (broken environment), which
# says nothing about the backend.
STARTED = "seqcast self-test child started"
_STDERR_LINES = 20


@dataclass(frozen=True)
class Verdict:
    """What the child found: passed, or the reason (without the `<key>: ` prefix) it did not."""

    passed: bool
    reason: str = ""
    unavailable: bool = False  # the backend's package does not import


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _text(out: str | bytes | None) -> str:
    if isinstance(out, bytes):
        return out.decode("utf-8", "replace")
    return out or ""


def _log_stderr(key: str, stderr: str | bytes | None) -> None:
    lines = _text(stderr).strip().splitlines()[-_STDERR_LINES:]
    if lines:
        log.info("self-test child of backend %s wrote:\n%s", key, "\n".join(lines))


def _result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        return doc if isinstance(doc, dict) else None
    return None


def selftest_in_child(
    bundle: Bundle, key: str, module: str, num_threads: int, timeout_s: float | None = None
) -> Verdict | None:
    """Load and self-test `bundle` on backend `key` (module `module`) in a fresh interpreter.

    Returns None when the child cannot decide (see the module docstring): test in-process then.
    """
    if bundle.path is None:
        log.debug("bundle %s has no file; self-testing %s in this process", bundle.model_id, key)
        return None
    timeout = SELFTEST_TIMEOUT_S if timeout_s is None else timeout_s
    cmd = [sys.executable, "-m", CHILD_MODULE, str(bundle.path), module, str(num_threads)]
    started = time.monotonic()
    try:  # native code may write any bytes: decode leniently, never fail on the child's output
        proc = subprocess.run(
            cmd, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired as e:
        _log_stderr(key, e.stderr)
        return Verdict(False, f"self-test did not finish within {timeout:g} s (child killed)")
    except OSError as e:
        log.warning("cannot start a child to self-test %s (%s); testing it in this process", key, e)
        return None
    if proc.returncode < 0:
        _log_stderr(key, proc.stderr)
        return Verdict(False, f"crashed during its self-test ({signal_name(-proc.returncode)})")
    result = _result(proc.stdout)
    if proc.returncode != 0 or result is None:
        _log_stderr(key, proc.stderr)
        last = _text(proc.stderr).strip().splitlines()[-1:]
        why = f"exited with status {proc.returncode}" + (f": {last[0].strip()}" if last else "")
        if STARTED not in proc.stderr.splitlines():
            log.warning("cannot self-test %s in a child (%s); testing it in this process", key, why)
            return None
        return Verdict(False, f"self-test child {why}")
    if result.get("sha256") != bundle.sha256:
        log.warning(
            "%s changed on disk during the isolated self-test; testing %s in this process",
            bundle.path,
            key,
        )
        return None
    log.debug("isolated self-test of %s took %.2f s", key, time.monotonic() - started)
    return Verdict(
        passed=result.get("passed") is True,
        reason=str(result.get("reason", "")),
        unavailable=result.get("unavailable") is True,
    )


def _child_result(path: str, module: str, num_threads: int) -> dict[str, Any]:
    from seqcast.edge.model.bundle import BundleError, read_bundle
    from seqcast.edge.model.runtime import try_backend

    try:
        bundle = read_bundle(path)
    except BundleError as e:  # replaced or removed since the parent read it: not our verdict
        return {"sha256": None, "passed": False, "unavailable": False, "reason": str(e)}
    try:
        a = try_backend(bundle, module, num_threads, module)
    except Exception as e:  # what would have escaped the daemon's own load is a failure here
        reason = f"unexpected {type(e).__name__} during the self-test: {e}"
        return {"sha256": bundle.sha256, "passed": False, "unavailable": False, "reason": reason}
    return {
        "sha256": bundle.sha256,
        "passed": a.model is not None,
        "unavailable": a.unavailable,
        "reason": a.reason,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or not args[2].isdigit():
        print(f"usage: python -m {CHILD_MODULE} BUNDLE MODULE NUM_THREADS", file=sys.stderr)
        return 2
    print(STARTED, file=sys.stderr, flush=True)
    faulthandler.enable()  # a crash leaves its Python traceback on stderr for the parent's log
    result_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # the backend's own output (Python or native) must not garble the result
    result = _child_result(args[0], args[1], int(args[2]))
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
