"""A throwaway PKI for TLS tests, made with the `openssl` command line (EC prime256v1: fast).

    pki = make_pki(tmp_path)
    pki.ca, pki.server_cert, pki.server_key    # the broker's side (SAN IP:127.0.0.1, DNS:localhost)
    pki.client_cert, pki.client_key            # a client certificate signed by the same CA
    pki.evil_ca                                # an unrelated CA ...
    pki.evil_client_cert, pki.evil_client_key  # ... and a client certificate it signed

`mosquitto_lines(pki)` gives the listener lines for `Broker(extra_config=...)`.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OPENSSL", "Pki", "make_pki", "mosquitto_lines"]

OPENSSL = shutil.which("openssl")


@dataclass(frozen=True)
class Pki:
    dir: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    evil_ca: Path
    evil_client_cert: Path
    evil_client_key: Path


def _openssl(*args: str | Path, cwd: Path) -> None:
    if OPENSSL is None:
        raise RuntimeError("openssl is not installed")
    done = subprocess.run(
        [OPENSSL, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{done.stderr}")


def _key(path: Path) -> Path:
    _openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path, cwd=path.parent)
    path.chmod(0o600)
    return path


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key, cert = _key(d / f"{name}.key"), d / f"{name}.pem"
    _openssl(
        "req", "-x509", "-new", "-key", key, "-sha256", "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", cert, cwd=d,
    )  # fmt: skip
    return cert, key


def _leaf(d: Path, name: str, ca: Path, ca_key: Path, ext: list[str]) -> tuple[Path, Path]:
    key, csr, cert = _key(d / f"{name}.key"), d / f"{name}.csr", d / f"{name}.pem"
    extfile = d / f"{name}.ext"
    base = [
        "basicConstraints=CA:FALSE",
        "keyUsage=critical,digitalSignature",
        "subjectKeyIdentifier=hash",
        "authorityKeyIdentifier=keyid",
    ]
    extfile.write_text("\n".join([*base, *ext]) + "\n")
    _openssl("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr, cwd=d)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-sha256", "-days", "2", "-extfile", extfile, "-out", cert, cwd=d,
    )  # fmt: skip
    return cert, key


def make_pki(directory: Path) -> Pki:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate signed
    by it; a second, unrelated CA and a client certificate signed by that. About 0.2 s."""
    d = Path(directory).resolve()
    d.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(d, "test-ca")
    server = ["subjectAltName=IP:127.0.0.1,DNS:localhost", "extendedKeyUsage=serverAuth"]
    server_cert, server_key = _leaf(d, "server", ca, ca_key, server)
    client = ["extendedKeyUsage=clientAuth"]
    client_cert, client_key = _leaf(d, "client", ca, ca_key, client)
    evil_ca, evil_ca_key = _ca(d, "evil-ca")
    evil_cert, evil_key = _leaf(d, "evil-client", evil_ca, evil_ca_key, client)
    return Pki(
        d,
        ca,
        ca_key,
        server_cert,
        server_key,
        client_cert,
        client_key,
        evil_ca,
        evil_cert,
        evil_key,
    )


def mosquitto_lines(pki: Pki, *, require_certificate: bool = True) -> list[str]:
    """Config lines that turn the `Broker` helper's single listener into a TLS listener.

    mosquitto 2 reads `tls_version` as the *lowest* version allowed, so clients still get TLS 1.3,
    where a client certificate the broker rejects reaches the client only after the handshake.
    """
    lines = [
        f"cafile {pki.ca}",
        f"certfile {pki.server_cert}",
        f"keyfile {pki.server_key}",
        "tls_version tlsv1.2",
    ]
    if require_certificate:
        lines += ["require_certificate true", "use_identity_as_username false"]
    return lines
