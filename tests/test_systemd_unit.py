"""systemd/: the unit (and its per-partition template) verifies cleanly, its sandbox scores <= 2.0,
sysusers/tmpfiles apply."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from seqcast.edge.config import StateConfig, dump_default_config, load_config, parse_config
from seqcast.edge.config.files import default_client_id

SYSTEMD = Path(__file__).resolve().parents[1] / "systemd"
UNIT = SYSTEMD / "seqcast-edge.service"
TEMPLATE = SYSTEMD / "seqcast-edge@.service"  # one instance per partition: seqcast-edge@3
PREFIX = "/opt/seqcast/venv/bin/seqcast-edge"
MAX_EXPOSURE = 2.0

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def directives(path: Path = UNIT) -> dict[str, list[str]]:
    """'Section.Key' -> every value assigned, in order (unit files repeat keys)."""
    out: dict[str, list[str]] = {}
    section = ""
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return out


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)


def test_unit_has_the_agreed_directives() -> None:
    d = directives()
    one = {k: v[-1] for k, v in d.items()}
    assert one["Service.Type"] == "notify" and one["Service.NotifyAccess"] == "main"
    assert d["Service.ExecStartPre"] == [f"{PREFIX} check -c /etc/seqcast/edge.toml"]
    assert d["Service.ExecStart"] == [f"{PREFIX} run -c /etc/seqcast/edge.toml"]
    assert one["Service.ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert one["Service.Restart"] == "on-failure" and one["Service.RestartSec"] == "5"
    assert one["Service.WatchdogSec"] == "30" and one["Service.TimeoutStopSec"] == "30"
    assert one["Service.User"] == one["Service.Group"] == "seqcast"
    assert one["Service.DynamicUser"] == "no"
    assert one["Service.StateDirectory"] == "seqcast"
    assert one["Service.StateDirectoryMode"] == "0700" and one["Service.UMask"] == "0077"
    assert one["Service.MemoryDenyWriteExecute"] == "yes"
    assert one["Service.RestrictAddressFamilies"] == "AF_INET AF_INET6 AF_UNIX"
    assert d["Service.SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert one["Service.CapabilityBoundingSet"] == "" and one["Service.AmbientCapabilities"] == ""
    # The broker is reached over IP: no network lockdown.
    assert "Service.IPAddressDeny" not in d and "Service.PrivateNetwork" not in d


def test_unit_agrees_with_config_defaults() -> None:
    one = {k: v[-1] for k, v in directives().items()}
    credential, _, source = one["Service.LoadCredential"].partition(":")
    assert (credential, source) == ("mqtt-password", "/etc/seqcast/mqtt-password")
    assert f'# password_file = "{credential}"' in dump_default_config()
    assert f"/var/lib/{one['Service.StateDirectory']}" == str(StateConfig().dir)
    # the status topic uses the client id; the unit does not set one, so each host gets its own
    cfg = parse_config({"model": {"path": "m.seqcast"}})
    assert cfg.mqtt.client_id == default_client_id() and cfg.mqtt.client_id != "seqcast-edge"


@needs_analyze
def test_unit_verifies_without_warnings(tmp_path: Path) -> None:
    # verify insists that ExecStart= binaries exist: point them at an executable that does.
    true = shutil.which("true") or "/bin/true"
    copy = tmp_path / UNIT.name
    copy.write_text(UNIT.read_text().replace(PREFIX, true))
    assert PREFIX not in copy.read_text()
    result = run("systemd-analyze", "verify", "--man=no", str(copy))
    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if UNIT.name in line or "seqcast" in line]
    assert result.returncode == 0, output
    assert about_unit == [], output


@needs_analyze
def test_verify_would_report_a_broken_unit(tmp_path: Path) -> None:
    """Guards the test above: warnings land in the output we inspect."""
    copy = tmp_path / UNIT.name
    text = UNIT.read_text().replace(PREFIX, shutil.which("true") or "/bin/true")
    copy.write_text(text.replace("UMask=0077", "UMask=0077\nProtectSytem=strict"))
    result = run("systemd-analyze", "verify", "--man=no", str(copy))
    assert "ProtectSytem" in result.stdout + result.stderr


@needs_analyze
def test_sandbox_exposure_is_at_most_two() -> None:
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT))
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert found, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles are not installed",
)
def test_sysusers_and_tmpfiles_apply_in_a_scratch_root(tmp_path: Path) -> None:
    for kind in ("sysusers", "tmpfiles"):
        target = tmp_path / "usr/lib" / f"{kind}.d" / "seqcast-edge.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(SYSTEMD / f"seqcast-edge.{kind}.conf", target)
    (tmp_path / "etc").mkdir()
    result = run("systemd-sysusers", f"--root={tmp_path}")
    assert result.returncode == 0, result.stderr
    passwd = (tmp_path / "etc/passwd").read_text().splitlines()
    user = next(line.split(":") for line in passwd if line.startswith("seqcast:"))
    assert user[5] == "/var/lib/seqcast" and user[6].endswith("nologin")
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").open()}
    admins = int(groups["seqcast-admin"][2])
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles needs root to chown in the scratch root")
    # an edge.toml written into an image (install.sh --root) by a user other than seqcast's group
    (tmp_path / "etc/seqcast").mkdir()
    (tmp_path / "etc/seqcast/edge.toml").write_text("")
    (tmp_path / "etc/seqcast/edge.toml").chmod(0o600)
    result = run("systemd-tmpfiles", f"--root={tmp_path}", "--create", "seqcast-edge.conf")
    assert result.returncode == 0, result.stderr
    uid, gid = int(user[2]), int(user[3])
    modes = {
        "etc/seqcast": (0o750, 0, gid),
        "etc/seqcast/edge.toml": (0o640, 0, gid),
        "etc/seqcast/mqtt-password": (0o600, 0, 0),
        "var/lib/seqcast": (0o700, uid, gid),
        "var/lib/seqcast-incoming": (0o2770, uid, admins),
    }
    for rel, expected in modes.items():
        st = (tmp_path / rel).stat()
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == expected, rel
    assert (tmp_path / "etc/seqcast/mqtt-password").read_bytes() == b""


# -- seqcast-edge@.service: one daemon per partition ----------------------------------------------

# what the template changes; every other directive (sandbox, user, state, credential) is the unit's
PER_PARTITION = {"Unit.Description", "Unit.Conflicts", "Service.ExecStartPre", "Service.ExecStart"}


def test_template_is_the_unit_with_the_partition_as_instance() -> None:
    unit, template = directives(UNIT), directives(TEMPLATE)
    same = {k: v for k, v in template.items() if k not in PER_PARTITION}
    assert same == {k: v for k, v in unit.items() if k not in PER_PARTITION}
    config = "-c /etc/seqcast/edge.toml --partition %i"
    assert template["Service.ExecStartPre"] == [f"{PREFIX} check {config}"]
    assert template["Service.ExecStart"] == [f"{PREFIX} run {config}"]
    assert template["Unit.Conflicts"] == [UNIT.name]  # never beside the unpartitioned daemon
    assert "%i" in template["Unit.Description"][0]


def test_template_state_is_per_partition(tmp_path: Path) -> None:
    """The unit's `--partition %i` makes the state `<StateDirectory>/partition-%i`."""
    one = {k: v[-1] for k, v in directives(TEMPLATE).items()}
    config = tmp_path / "edge.toml"
    config.write_text(
        '[model]\npath = "m.seqcast"\n[mqtt]\nclient_id = "seqcast-part-{partition}"\n'
        '[input]\ntopic = "part/{partition}/sensors/{stream}"\n'
    )
    cfg = load_config(config, partition="7")
    assert cfg.state.dir == Path("/var/lib") / one["Service.StateDirectory"] / "partition-7"
    assert (cfg.mqtt.client_id, cfg.input.topic) == ("seqcast-part-7", "part/7/sensors/{stream}")


def _template_in(tmp_path: Path) -> Path:
    """The template and the unit it conflicts with, their ExecStart= binaries made real."""
    true = shutil.which("true") or "/bin/true"
    for source in (UNIT, TEMPLATE):
        (tmp_path / source.name).write_text(source.read_text().replace(PREFIX, true))
    return tmp_path / TEMPLATE.name


@needs_analyze
def test_template_verifies_without_warnings(tmp_path: Path) -> None:
    template = _template_in(tmp_path)
    result = run("systemd-analyze", "verify", "--man=no", f"{template}:seqcast-edge@3.service")
    output = result.stdout + result.stderr
    about_unit = [line for line in output.splitlines() if "seqcast" in line]
    assert result.returncode == 0, output
    assert about_unit == [], output


@needs_analyze
def test_template_verify_would_report_a_broken_template(tmp_path: Path) -> None:
    template = _template_in(tmp_path)
    template.write_text(template.read_text().replace("UMask=0077", "UMask=0077\nProtectSytem=1"))
    result = run("systemd-analyze", "verify", "--man=no", f"{template}:seqcast-edge@3.service")
    assert "ProtectSytem" in result.stdout + result.stderr


@needs_analyze
def test_template_sandbox_exposure_is_at_most_two(tmp_path: Path) -> None:
    instance = tmp_path / "seqcast-edge@3.service"
    shutil.copy(TEMPLATE, instance)
    result = run("systemd-analyze", "security", "--offline=true", "--no-pager", str(instance))
    output = result.stdout + result.stderr
    found = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", output)
    assert found, output
    assert float(found.group(1)) <= MAX_EXPOSURE, output
