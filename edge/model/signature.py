"""Signed model releases: a minisign signature over a bundle's bytes, checked before any unzipping.

The signature is a standard minisign file (four lines), so the `minisign` tool makes and checks it.
Its *trusted comment* (covered by the signature) names the release:
`seqcast version:<N> channel:<C> file:<basename> timestamp:<unix seconds>`.
Over MQTT a release travels as one payload: the `.minisig` bytes immediately followed by the bundle.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import minisign

from seqcast.edge.config import ConfigError

COMMENT_TAG = "seqcast"
CHANNEL_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_VERSION_PATTERN = re.compile(r"[1-9][0-9]{0,17}")
_TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,18}")
_FILE_PATTERN = re.compile(r"[!-~]{1,255}")  # printable ASCII without space: one token
_FIELDS = ("version", "channel", "file", "timestamp")
_CHECKS = {
    "version": (_VERSION_PATTERN, "a positive integer"),
    "channel": (CHANNEL_PATTERN, "1-64 of A-Z a-z 0-9 _ . -"),
    "file": (_FILE_PATTERN, "a file name without spaces"),
    "timestamp": (_TIMESTAMP_PATTERN, "unix seconds"),
}
_UNTRUSTED_PREFIX = b"untrusted comment:"
_SIG_LINES = 4
_ALG_LEN = 2
_KEY_ID_LEN = 8

REASONS = ("unsigned", "malformed", "bad_signature", "unknown_key")


class SignatureError(Exception):
    """A release that must not be installed; `reason` is one of REASONS (a counter/event label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown signature error reason {reason!r}")
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class SignedRelease:
    """What a verified signature vouches for."""

    version: int
    channel: str
    key_id: str  # as minisign prints it (16 upper-case hex digits)
    file: str
    timestamp: int
    trusted_comment: str


def _key_id_text(key_id: bytes) -> str:
    # minisign prints the 8 key-id bytes as one little-endian 64-bit number.
    return key_id[::-1].hex().upper()


def public_key_id(key: minisign.PublicKey) -> str:
    """The key id minisign prints for a public key."""
    raw = base64.b64decode(key.to_base64())
    return _key_id_text(raw[_ALG_LEN : _ALG_LEN + _KEY_ID_LEN])


def load_public_keys(paths: Sequence[str | Path]) -> list[minisign.PublicKey]:
    """Read minisign public key files; a missing or unreadable one is a ConfigError naming it."""
    if not paths:
        raise ConfigError("deploy: no public key file given")
    keys: list[minisign.PublicKey] = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise ConfigError(f"{path}: cannot read public key: {err.strerror or err}") from None
        try:
            keys.append(minisign.PublicKey.from_bytes(data))
        except (minisign.ParseError, ValueError) as err:
            raise ConfigError(f"{path}: not a minisign public key ({err})") from None
    return keys


def trusted_comment(version: int, channel: str, file: str, timestamp: int) -> str:
    """The trusted comment for a release; ValueError naming the field that cannot be carried."""
    for name, value in zip(_FIELDS, (version, channel, file, timestamp), strict=True):
        pattern, what = _CHECKS[name]
        if not pattern.fullmatch(str(value)):
            raise ValueError(f"{name} {str(value)[:80]!r} is not {what}")
    return f"{COMMENT_TAG} version:{version} channel:{channel} file:{file} timestamp:{timestamp}"


def _malformed(detail: str) -> SignatureError:
    return SignatureError("malformed", detail)


def parse_trusted_comment(text: str) -> tuple[int, str, str, int]:
    """(version, channel, file, timestamp) from a trusted comment; SignatureError("malformed")."""
    tokens = text.split(" ")
    if not tokens or tokens[0] != COMMENT_TAG:
        raise _malformed(f"trusted comment does not start with {COMMENT_TAG!r}: {text[:80]!r}")
    fields: dict[str, str] = {}
    for token in tokens[1:]:
        key, sep, value = token.partition(":")
        if not sep or not key:
            raise _malformed(f"trusted comment token is not key:value: {token[:80]!r}")
        if key in fields:
            raise _malformed(f"trusted comment repeats {key!r}")
        fields[key] = value  # unknown keys are signed too: tolerated for later additions
    missing = [name for name in _FIELDS if name not in fields]
    if missing:
        raise _malformed(f"trusted comment lacks {', '.join(missing)}")
    for name in _FIELDS:
        pattern, what = _CHECKS[name]
        if not pattern.fullmatch(fields[name]):
            raise _malformed(f"trusted comment {name} {fields[name][:80]!r} is not {what}")
    return int(fields["version"]), fields["channel"], fields["file"], int(fields["timestamp"])


def _sig_end(data: bytes) -> int:
    """Index just past the 4th newline, or -1."""
    end = -1
    for _ in range(_SIG_LINES):
        end = data.find(b"\n", end + 1)
        if end < 0:
            return -1
    return end + 1


def join_delivery(minisig: bytes, bundle: bytes) -> bytes:
    """The MQTT payload: the four signature lines (each ending in newline), then the bundle."""
    if not minisig.endswith(b"\n"):
        minisig += b"\n"  # py-minisign's bytes(Signature) has no final newline; the tool's file has
    if not minisig.startswith(_UNTRUSTED_PREFIX) or _sig_end(minisig) != len(minisig):
        raise _malformed("a minisign signature is exactly four lines")
    return minisig + bundle


def split_delivery(payload: bytes) -> tuple[bytes, bytes]:
    """(minisig, bundle) from a delivery payload."""
    if not payload.startswith(_UNTRUSTED_PREFIX):
        raise SignatureError("unsigned", "the payload does not start with a minisign signature")
    end = _sig_end(payload)
    if end < 0:
        raise _malformed("the payload's signature is shorter than four lines")
    if end == len(payload):
        raise _malformed("the payload carries a signature but no bundle")
    return payload[:end], payload[end:]


def _signature_key_id(minisig: bytes) -> bytes:
    lines = minisig.split(b"\n")
    try:
        raw = base64.b64decode(lines[1].strip(), validate=True)
    except (IndexError, ValueError, binascii.Error):
        raise _malformed("the signature line is not base64") from None
    return raw[_ALG_LEN : _ALG_LEN + _KEY_ID_LEN]


def verify_release(
    bundle: bytes, minisig: bytes, keys: Sequence[minisign.PublicKey]
) -> SignedRelease:
    """Check `minisig` over the raw bundle bytes with one of `keys`; returns what it vouches for."""
    if not minisig.strip():
        raise SignatureError("unsigned", "no signature")
    try:
        signature = minisign.Signature.from_bytes(minisig)
    except (minisign.ParseError, ValueError) as err:
        raise _malformed(f"not a minisign signature ({err})") from None
    key_id = _key_id_text(_signature_key_id(minisig))
    key = next((k for k in keys if public_key_id(k) == key_id), None)
    if key is None:
        raise SignatureError("unknown_key", f"signed by key {key_id}, which is not trusted")
    try:
        key.verify(bundle, signature)
    except minisign.VerifyError:
        raise SignatureError(
            "bad_signature", f"the signature by key {key_id} does not match"
        ) from None
    comment = str(signature.trusted_comment)
    version, channel, file, timestamp = parse_trusted_comment(comment)
    return SignedRelease(version, channel, key_id, file, timestamp, comment)
