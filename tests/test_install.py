"""deploy/install.sh into a throw-away root (DESTDIR-style; no systemd running): the real wheel in a
real venv, a tree that `systemd-analyze verify` accepts and a config that `seqcast-edge check`
accepts; a re-run upgrades and keeps edge.toml; bad input is one line, exit 2, nothing replaced.

The root is filled once per test run (`installed_root` in conftest.py, also used by test_wheel).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.install_harness import (
    EDGE_TOML,
    INCOMING,
    MODEL,
    REPO,
    UNIT,
    VENV,
    Installed,
    checkable_config,
    clean_env,
    run_install,
    spied_calls,
    spy_dir,
)

pytestmark = [pytest.mark.slow]


def _require(tool: str) -> None:
    if shutil.which(tool, path=f"/usr/sbin:/usr/bin:{os.environ.get('PATH', '')}"):
        return
    reason = f"{tool} is not installed (apt-get install systemd; `make test` installs it)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the install tests must not be skipped")
    pytest.skip(reason)


def analyze_verify(root: Path) -> subprocess.CompletedProcess[str]:
    env = clean_env(SYSTEMD_PAGER="", SYSTEMD_COLORS="0", SYSTEMD_LOG_COLOR="0")
    cmd = ["systemd-analyze", "verify", "--man=no", f"--root={root}", "seqcast-edge.service"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def add_base_system(root: Path) -> None:
    """What any Debian root has and install.sh does not bring: systemd's targets and /bin/kill
    (the unit's ExecReload=). `verify --root` resolves every unit and command inside the root."""
    units = root / "usr/lib/systemd/system"
    units.mkdir(parents=True, exist_ok=True)
    for target in Path("/usr/lib/systemd/system").glob("*.target"):
        shutil.copy(target, units / target.name)
    (root / "usr/bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(Path("/bin/kill").resolve(), root / "usr/bin/kill")
    if not (root / "bin").exists():
        (root / "bin").symlink_to("usr/bin")


def test_the_tree_holds_venv_unit_config_and_bundle(
    installed_root: Installed,
) -> None:
    root = installed_root.root
    print(f"install.sh into a fresh root (venv included): {installed_root.seconds:.1f} s")
    edge = root / VENV / "bin/seqcast-edge"
    assert os.access(edge, os.X_OK)
    for name, target in [
        ("seqcast-edge.service", UNIT),
        ("seqcast-edge@.service", "usr/lib/systemd/system/seqcast-edge@.service"),
        ("seqcast-edge.sysusers.conf", "usr/lib/sysusers.d/seqcast-edge.conf"),
        ("seqcast-edge.tmpfiles.conf", "usr/lib/tmpfiles.d/seqcast-edge.conf"),
    ]:
        assert (root / target).read_bytes() == (REPO / "systemd" / name).read_bytes(), target
    config = tomllib.loads((root / EDGE_TOML).read_text())
    assert config["model"]["path"] == MODEL and config["model"]["watch"] is True
    assert stat.S_IMODE((root / EDGE_TOML).stat().st_mode) == 0o640
    incoming = (root / INCOMING).stat()
    assert stat.S_IMODE(incoming.st_mode) == 0o2770  # setgid: admins' files get the group
    assert (root / MODEL.lstrip("/")).read_bytes() == installed_root.bundle.read_bytes()
    assert sorted(p.name for p in (root / INCOMING).iterdir()) == ["model.seqcast"]
    # the wheel itself in the venv, not this checkout
    code = "import seqcast.edge.cli as m; print(m.__file__)"
    where = subprocess.run(
        [root / VENV / "bin/python", "-c", code], capture_output=True, text=True, env=clean_env()
    )
    assert where.stdout.startswith(str(root / VENV)), where.stdout + where.stderr


def test_with_a_root_it_calls_no_systemd_command_and_says_what_to_run(
    installed_root: Installed,
) -> None:
    assert spied_calls(installed_root.spies) == []
    out = installed_root.stdout
    assert "systemd-sysusers seqcast-edge.conf" in out
    assert "systemctl daemon-reload && systemctl enable --now seqcast-edge" in out


def test_systemd_analyze_verify_accepts_the_installed_unit(
    installed_root: Installed, tmp_path: Path
) -> None:
    _require("systemd-analyze")
    root = installed_root.root
    add_base_system(root)
    result = analyze_verify(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seqcast" not in result.stdout + result.stderr
    # Guard: verify does look in the root: without the venv's binary it fails, naming it.
    bare = tmp_path / "bare"
    add_base_system(bare)
    shutil.copy(root / UNIT, bare / UNIT)
    result = analyze_verify(bare)
    assert result.returncode != 0
    assert "/opt/seqcast/venv/bin/seqcast-edge is not executable" in result.stderr


def test_seqcast_edge_check_accepts_the_installed_config(
    installed_root: Installed, tmp_path: Path
) -> None:
    root = installed_root.root
    config = tmp_path / "edge.toml"
    config.write_text(checkable_config(root, tmp_path / "state"))
    edge = root / VENV / "bin/seqcast-edge"
    check = subprocess.run(
        [edge, "check", "-c", config], capture_output=True, text=True, timeout=120, env=clean_env()
    )
    assert check.returncode == 0, check.stderr
    assert "passes its self-test on litert" in check.stdout


def test_a_rerun_upgrades_and_keeps_the_config(
    installed_root: Installed,
) -> None:
    root, spies = installed_root.root, installed_root.spies
    config = root / EDGE_TOML
    edited = config.read_text().replace('level = "info"', 'level = "debug"  # edited by hand')
    config.write_text(edited)
    model = root / MODEL.lstrip("/")
    model.write_bytes(b"an older bundle")
    (code,) = (root / VENV).glob("lib/python*/site-packages/seqcast/edge/cli.py")
    code_stamp = code.stat().st_mtime_ns
    proc = run_install(
        "--wheel", *_wheel(root), "--bundle", installed_root.bundle, "--root", root, spies=spies
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"keeping {config}" in proc.stdout and "creating" not in proc.stdout
    assert config.read_text() == edited
    assert model.read_bytes() == installed_root.bundle.read_bytes()
    assert spied_calls(spies) == []
    # the same wheel again leaves the venv alone (test_wheel may be running from it meanwhile)
    assert code.stat().st_mtime_ns == code_stamp


def _wheel(root: Path) -> list[str]:
    """The wheel the session installed (pip records where it came from)."""
    import json

    (direct,) = (root / VENV).glob("lib/python*/site-packages/seqcast-*.dist-info/direct_url.json")
    return [json.loads(direct.read_text())["url"].removeprefix("file://")]


def test_a_bundle_that_fails_check_is_one_line_exit_2_and_replaces_nothing(
    installed_root: Installed, tmp_path: Path
) -> None:
    root = installed_root.root
    model = root / MODEL.lstrip("/")
    before = model.read_bytes()
    bad = tmp_path / "truncated.seqcast"
    bad.write_bytes(before[: len(before) // 2])
    proc = run_install(
        "--wheel", *_wheel(root), "--bundle", bad, "--root", root, spies=installed_root.spies
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("install.sh: error: seqcast-edge check failed for ")
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert model.read_bytes() == before
    assert sorted(p.name for p in (root / INCOMING).iterdir()) == ["model.seqcast"]


def test_config_replaces_edge_toml_and_keeps_the_old_one(
    installed_root: Installed, tmp_path: Path
) -> None:
    root = installed_root.root
    installed = root / EDGE_TOML
    before = installed.read_text()
    given = tmp_path / "fleet.toml"
    given.write_text(f'[mqtt]\nhost = "broker.example"\n[model]\npath = "{MODEL}"\n')
    proc = run_install(
        "--wheel", *_wheel(root), "--bundle", installed_root.bundle, "--config", given,
        "--root", root, spies=installed_root.spies,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert installed.read_text() == given.read_text()
    assert (root / f"{EDGE_TOML}.old").read_text() == before
    assert stat.S_IMODE(installed.stat().st_mode) == 0o640
    assert sorted(p.name for p in installed.parent.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize(
    ("missing", "message"),
    [("--bundle", "bundle not found: "), ("--wheel", "wheel not found: ")],
)
def test_a_missing_wheel_or_bundle_is_one_line_exit_2(
    tmp_path: Path, missing: str, message: str
) -> None:
    given = {"--wheel": tmp_path / "seqcast-0.1.0-py3-none-any.whl", "--bundle": tmp_path / "m"}
    for flag, path in given.items():
        if flag != missing:
            path.write_bytes(b"x")
    spies = spy_dir(tmp_path / "spies")
    args = [x for flag, path in given.items() for x in (flag, path)]
    proc = run_install(*args, "--root", tmp_path, spies=spies, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == f"install.sh: error: {message}{given[missing]}\n"
    assert proc.stdout == "" and not (tmp_path / "opt").exists()
