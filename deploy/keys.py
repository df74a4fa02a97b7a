"""`seqcast-deploy keygen` and `sign`: a minisign key pair, and a bundle's `.minisig`.

The files are minisign's own formats, so `minisign -Vm BUNDLE -p seqcast.pub` checks what `sign`
wrote, and a device accepts a bundle signed with `minisign -S -t "seqcast version:..."`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import minisign

from seqcast.edge.model.bundle import BundleError, parse_bundle
from seqcast.edge.model.signature import public_key_id, trusted_comment

KEY_NAME = "seqcast.key"
PUB_NAME = "seqcast.pub"
SIG_SUFFIX = ".minisig"


class DeployError(ValueError):
    """A deploy command that cannot go on; the message is one line naming the file or option."""


def read_password_file(path: Path) -> str:
    """The key password from a file only its owner may read (one trailing newline stripped)."""
    from seqcast.edge.config import ConfigError, MqttConfig, read_password

    try:  # the daemon's reader: owner-only mode, size limit, UTF-8
        password = read_password(MqttConfig(username="-", password_file=path), environ={})
    except ConfigError as err:
        raise DeployError(str(err).replace("mqtt.password_file: ", "--password-file ", 1)) from None
    if not password:
        raise DeployError(f"--password-file {path}: empty")
    return password


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by the umask
    finally:
        os.close(fd)


def keygen(out_dir: Path, password: str | None = None) -> tuple[Path, Path, str]:
    """Write `out_dir/seqcast.key` (0600, scrypt-encrypted when a password is given) and
    `out_dir/seqcast.pub`; never overwrites. Returns both paths and the key id."""
    key_path, pub_path = out_dir / KEY_NAME, out_dir / PUB_NAME
    for path in (key_path, pub_path):
        if path.exists() or path.is_symlink():
            raise DeployError(f"{path} exists; not overwriting a key (move it away first)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as err:
        raise DeployError(f"--out {out_dir}: {err.strerror or err}") from None
    pair = minisign.KeyPair.generate()
    key_id = public_key_id(pair.public_key)
    secret = pair.secret_key
    secret.untrusted_comment = f"seqcast secret key {key_id}"
    if password is not None:
        secret.encrypt(password)
    pair.public_key.untrusted_comment = f"minisign public key {key_id}"
    try:
        _write_new(key_path, bytes(secret) + b"\n", 0o600)
        _write_new(pub_path, bytes(pair.public_key) + b"\n", 0o644)
    except OSError as err:
        raise DeployError(f"{out_dir}: cannot write the key pair: {err.strerror or err}") from None
    finally:
        secret.wipe()
    return key_path, pub_path, key_id


def load_secret_key(path: Path, password: str | None) -> minisign.SecretKey:
    try:
        secret = minisign.SecretKey.from_bytes(path.read_bytes())
    except OSError as err:
        raise DeployError(f"--key {path}: {err.strerror or err}") from None
    except (minisign.ParseError, ValueError) as err:
        raise DeployError(f"--key {path}: not a minisign secret key ({err})") from None
    if secret.is_encrypted():
        if password is None:
            raise DeployError(f"--key {path} is encrypted: give --password-file")
        try:
            secret.decrypt(password)
        except minisign.Error as err:
            raise DeployError(f"--key {path}: {err}") from None
    return secret


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise DeployError(f"{path}: {err.strerror or err}") from None


def check_bundle(path: Path, data: bytes) -> None:
    """Refuse bytes the device's own bundle reader would refuse."""
    try:
        parse_bundle(data, path)
    except BundleError as err:
        raise DeployError(f"{path}: not a usable bundle: {err}") from None


def sign_bundle(
    bundle: Path,
    key: Path,
    version: int,
    channel: str,
    password: str | None = None,
    now: float | None = None,
) -> Path:
    """Write `BUNDLE.minisig` (prehashed Ed25519, the release's trusted comment); its path."""
    try:
        comment = trusted_comment(
            version, channel, bundle.name, int(time.time() if now is None else now)
        )
    except ValueError as err:
        raise DeployError(f"cannot sign {bundle.name}: {err}") from None
    data = read_file(bundle)
    check_bundle(bundle, data)
    secret = load_secret_key(key, password)
    try:
        signature = secret.sign(
            data, trusted_comment=comment, untrusted_comment="signature from seqcast-deploy"
        )
    finally:
        secret.wipe()
    sig_path = bundle.with_name(bundle.name + SIG_SUFFIX)
    tmp = sig_path.with_name(f".{sig_path.name}.tmp")
    try:
        tmp.write_bytes(bytes(signature) + b"\n")
        tmp.replace(sig_path)
    except OSError as err:
        raise DeployError(f"{sig_path}: {err.strerror or err}") from None
    return sig_path
