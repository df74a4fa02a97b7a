"""Helpers for the `seqcast-deploy` tests: a tiny bundle the device's reader accepts, and the CLI.

The bundle's model bytes are not a real model: keygen, sign, push and status never run one (the
device's self-test is the fleet tests' business), but they do read the bundle with the device's
own reader, which checks the manifest and every file's sha256.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqcast.edge.model.bundle import Manifest, Scaler, write_bundle

Done = subprocess.CompletedProcess[str]


def tiny_bundle(path: Path, name: str = "tiny") -> Path:
    manifest = Manifest(
        name=name,
        created="2026-01-01T00:00:00Z",
        features=["load"],
        targets=["load"],
        seq_len=4,
        horizon=2,
        interval_s=60.0,
        scaler=Scaler([0.0], [1.0], [0.0], [1.0]),
        architecture={},
        quantization="float32",
        state=[],
        min_history=4,
        mask_value=None,
    )
    write_bundle(path, manifest, {"window.tflite": os.urandom(2048)})
    return path


def deploy_cli(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`seqcast-deploy ARGS` in a child process (`python -m`, as the editable install has no
    entry point for it until reinstalled)."""
    return subprocess.run(
        [sys.executable, "-m", "seqcast.deploy.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deploy_main(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Done:
    """`seqcast-deploy ARGS` in this process (quicker than a child: for the many refusals)."""
    from seqcast.deploy.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(map(str, args)), code, out, err)


def password_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path
