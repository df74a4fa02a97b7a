"""`seqcast-deploy keygen` and `sign`, and interoperation with the real `minisign` tool."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_fixtures import deploy_cli, deploy_main, password_file, tiny_bundle

from seqcast.edge.model.signature import load_public_keys, public_key_id, verify_release

MINISIGN = shutil.which("minisign") or "minisign"


@pytest.fixture
def minisign_tool() -> None:
    """The real `minisign`; as with mosquitto, a missing tool skips, except under CI."""
    if shutil.which(MINISIGN):
        return
    reason = "the minisign tool is not installed (apt-get install minisign; `make broker` does)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so the interop tests must not be skipped", pytrace=False)
    pytest.skip(reason)


needs_minisign = pytest.mark.usefixtures("minisign_tool")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("keys") / "k"
    done = deploy_cli("keygen", "--out", out)
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return tiny_bundle(tmp_path / "model.seqcast")


def one_line_error(done: subprocess.CompletedProcess[str], command: str) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"seqcast-deploy {command}: error: "), lines
    return lines[0]


def test_keygen_writes_a_private_key_and_a_public_key_and_never_overwrites(keys: Path) -> None:
    key, pub = keys / "seqcast.key", keys / "seqcast.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    [loaded] = load_public_keys([pub])
    assert public_key_id(loaded) in pub.read_text()
    before = key.read_bytes(), pub.read_bytes()
    line = one_line_error(deploy_cli("keygen", "--out", keys), "keygen")
    assert "exists" in line and str(key) in line
    assert (key.read_bytes(), pub.read_bytes()) == before


def test_sign_writes_the_release_into_the_trusted_comment(keys: Path, bundle: Path) -> None:
    done = deploy_cli(
        "sign", bundle, "--key", keys / "seqcast.key", "--version", "5", "--channel", "lab-2"
    )
    assert done.returncode == 0, done.stderr
    minisig = Path(f"{bundle}.minisig").read_bytes()
    assert minisig.count(b"\n") == 4 and minisig.endswith(b"\n")
    release = verify_release(bundle.read_bytes(), minisig, load_public_keys([keys / "seqcast.pub"]))
    assert (release.version, release.channel, release.file) == (5, "lab-2", "model.seqcast")
    assert "seqcast version:5 channel:lab-2 file:model.seqcast timestamp:" in (
        release.trusted_comment
    )


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--version", "0"], "version"),
        (["--version", "1", "--channel", "no spaces"], "channel"),
        (["--version", "1", "--channel", "a/b"], "channel"),
    ],
)
def test_sign_refuses_what_a_device_could_not_read(
    keys: Path, bundle: Path, args: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_error(
        deploy_main(capsys, "sign", bundle, "--key", keys / "seqcast.key", *args), "sign"
    )
    assert says in line
    assert not Path(f"{bundle}.minisig").exists()


def test_sign_refuses_a_file_that_is_not_a_bundle(
    keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = tmp_path / "fake.seqcast"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    line = one_line_error(
        deploy_main(capsys, "sign", fake, "--key", keys / "seqcast.key", "--version", "1"), "sign"
    )
    assert "not a usable bundle" in line and str(fake) in line
    assert not Path(f"{fake}.minisig").exists()


def test_a_password_protected_key(
    tmp_path: Path, bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = functools.partial(deploy_main, capsys)
    out = tmp_path / "locked"
    loose = password_file(tmp_path / "loose", "secret\n", mode=0o644)
    line = one_line_error(cli("keygen", "--out", out, "--password-file", loose), "keygen")
    assert "chmod 600" in line and not (out / "seqcast.key").exists()
    right = password_file(tmp_path / "right", "secret\n")
    wrong = password_file(tmp_path / "wrong", "guess\n")
    assert cli("keygen", "--out", out, "--password-file", right).returncode == 0
    key = out / "seqcast.key"
    sign = ("sign", bundle, "--key", key, "--version", "2")
    assert "is encrypted: give --password-file" in one_line_error(cli(*sign), "sign")
    assert "wrong password" in one_line_error(cli(*sign, "--password-file", wrong), "sign")
    assert cli(*sign, "--password-file", right).returncode == 0
    minisig = Path(f"{bundle}.minisig").read_bytes()
    keys = load_public_keys([out / "seqcast.pub"])
    assert verify_release(bundle.read_bytes(), minisig, keys).version == 2


@needs_minisign
def test_the_minisign_tool_verifies_what_sign_wrote_and_notices_tampering(
    keys: Path, bundle: Path
) -> None:
    assert (
        deploy_cli("sign", bundle, "--key", keys / "seqcast.key", "--version", "9").returncode == 0
    )
    verify = [MINISIGN, "-V", "-m", str(bundle), "-p", str(keys / "seqcast.pub")]
    done = subprocess.run(verify, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "Trusted comment: seqcast version:9 channel:stable file:model.seqcast" in done.stdout
    data = bytearray(bundle.read_bytes())
    data[len(data) // 2] ^= 1
    bundle.write_bytes(bytes(data))
    assert subprocess.run(verify, capture_output=True, timeout=30).returncode != 0


@needs_minisign
def test_a_bundle_signed_by_the_minisign_tool_verifies(tmp_path: Path, bundle: Path) -> None:
    key, pub = tmp_path / "tool.key", tmp_path / "tool.pub"
    gen = [MINISIGN, "-G", "-W", "-s", str(key), "-p", str(pub)]
    subprocess.run(gen, check=True, capture_output=True, timeout=30)
    comment = "seqcast version:12 channel:stable file:model.seqcast timestamp:1760000000"
    sign = [MINISIGN, "-S", "-s", str(key), "-m", str(bundle), "-t", comment]
    subprocess.run(sign, check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    [tool_key] = load_public_keys([pub])
    release = verify_release(
        bundle.read_bytes(), Path(f"{bundle}.minisig").read_bytes(), [tool_key]
    )
    assert (release.version, release.channel, release.timestamp) == (12, "stable", 1760000000)
    assert release.key_id == public_key_id(tool_key) and release.key_id in pub.read_text()
    # and our `sign` takes the tool's secret key (minisign -W: unencrypted)
    done = deploy_cli("sign", bundle, "--key", key, "--version", "13")
    assert done.returncode == 0, done.stderr
    minisig = Path(f"{bundle}.minisig").read_bytes()
    assert verify_release(bundle.read_bytes(), minisig, [tool_key]).version == 13
