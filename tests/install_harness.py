"""Build the wheel and run `deploy/install.sh` into a throw-away root, as a user does on a device.

`systemctl`, `systemd-sysusers` and `systemd-tmpfiles` on the script's PATH are spies that record
every call and fail: with `--root` the script must call none of them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INSTALL_SH = REPO / "deploy" / "install.sh"
SPIED = ("systemctl", "systemd-sysusers", "systemd-tmpfiles")
# What the installed tree holds (contract: docs/ARCHITECTURE.md, deploy/README.md).
VENV = "opt/seqcast/venv"
EDGE_TOML = "etc/seqcast/edge.toml"
INCOMING = "var/lib/seqcast-incoming"
MODEL = f"/{INCOMING}/model.seqcast"
UNIT = "usr/lib/systemd/system/seqcast-edge.service"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH pointing at this checkout."""
    env = {**os.environ, "PATH": f"/usr/sbin:{os.environ.get('PATH', '')}", **extra}
    env.pop("PYTHONPATH", None)
    return env


def build_wheel(out: Path) -> Path:
    """`pip wheel . --no-deps`: the same setuptools build `make dist` runs through `build`."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-q", "-w", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=clean_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = out.glob("seqcast-*.whl")
    return wheel


def spy_dir(where: Path) -> Path:
    """A directory of spies named like the systemd commands; each call appends to `calls`."""
    where.mkdir(parents=True, exist_ok=True)
    for name in SPIED:
        spy = where / name
        spy.write_text(f'#!/bin/sh\necho "{name} $*" >> "{where}/calls"\nexit 1\n')
        spy.chmod(0o755)
    return where


def spied_calls(spies: Path) -> list[str]:
    calls = spies / "calls"
    return calls.read_text().splitlines() if calls.exists() else []


def run_install(
    *args: str | Path, spies: Path, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """`sh deploy/install.sh ARGS` with the venv made by this interpreter and the spies first on
    PATH."""
    env = clean_env(PATH=f"{spies}:/usr/sbin:{os.environ.get('PATH', '')}")
    cmd = ["sh", str(INSTALL_SH), "--python", sys.executable, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def checkable_config(root: Path, state_dir: Path) -> str:
    """The installed edge.toml with its model and state paths moved into `root` / `state_dir`:
    what `seqcast-edge check` sees once the tree is the device's /."""
    text = (root / EDGE_TOML).read_text()
    model_line = f'path = "{MODEL}"'
    state_line = 'dir = "/var/lib/seqcast"'
    assert text.count(model_line) == 1 and text.count(state_line) == 1, text
    text = text.replace(model_line, f'path = "{root}{MODEL}"')
    return text.replace(state_line, f'dir = "{state_dir}"')


@dataclass(frozen=True)
class Installed:
    """A root `install.sh --root` filled once per test run: the run's one venv with the wheel's
    edge extra is `root / VENV`; `bundle` is the bundle it installed."""

    root: Path
    stdout: str
    spies: Path
    bundle: Path
    seconds: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Installed:
        paths = {k: Path(data[k]) for k in ("root", "spies", "bundle")}
        return cls(stdout=data["stdout"], seconds=data["seconds"], **paths)


def install_into(folder: Path, wheel: Path, bundle: Path) -> dict[str, Any]:
    """Run install.sh into `folder / "root"`; the JSON form of `Installed` (shared by workers)."""
    root, kept = folder / "root", folder / "model.seqcast"
    root.mkdir()
    shutil.copy(bundle, kept)  # every worker compares with the bundle this root holds
    spies = spy_dir(folder / "spies")
    started = time.monotonic()
    proc = run_install("--wheel", wheel, "--bundle", kept, "--root", root, spies=spies)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    seconds = time.monotonic() - started
    return {"root": str(root), "stdout": proc.stdout, "spies": str(spies), "bundle": str(kept),
            "seconds": seconds}  # fmt: skip
