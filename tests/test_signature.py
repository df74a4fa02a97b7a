"""Signed releases (edge/model/signature.py): what verifies, and why everything else is refused."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import minisign
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqcast.edge.config import ConfigError
from seqcast.edge.model.signature import (
    SignatureError,
    join_delivery,
    load_public_keys,
    parse_trusted_comment,
    public_key_id,
    split_delivery,
    trusted_comment,
    verify_release,
)

BUNDLE = os.urandom(3000)
PAIR = minisign.KeyPair.generate()
OTHER = minisign.KeyPair.generate()
COMMENT = trusted_comment(7, "field-a", "model.seqcast", 1_760_000_000)


def sign(data: bytes, comment: str = COMMENT, pair: minisign.KeyPair = PAIR) -> bytes:
    """A .minisig file's bytes, as the minisign tool writes them (four lines, final newline)."""
    return bytes(pair.secret_key.sign(data, trusted_comment=comment)) + b"\n"


MINISIG = sign(BUNDLE)


def reason_of(bundle: bytes, minisig: bytes, keys: list[minisign.PublicKey]) -> str:
    with pytest.raises(SignatureError) as caught:
        verify_release(bundle, minisig, keys)
    return caught.value.reason


def test_a_good_release_verifies_and_says_what_it_is() -> None:
    release = verify_release(BUNDLE, MINISIG, [OTHER.public_key, PAIR.public_key])
    assert (release.version, release.channel, release.file, release.timestamp) == (
        7,
        "field-a",
        "model.seqcast",
        1_760_000_000,
    )
    assert release.trusted_comment == COMMENT
    assert release.key_id == public_key_id(PAIR.public_key)
    assert base64.b64decode(MINISIG.splitlines()[1])[:2] == b"ED"  # prehashed, minisign's default


@given(st.integers(min_value=0, max_value=len(BUNDLE) - 1), st.integers(1, 255))
@settings(max_examples=40, deadline=None)
def test_one_flipped_byte_in_the_bundle_is_a_bad_signature(at: int, xor: int) -> None:
    tampered = bytearray(BUNDLE)
    tampered[at] ^= xor
    assert reason_of(bytes(tampered), MINISIG, [PAIR.public_key]) == "bad_signature"


def test_a_truncated_or_extended_bundle_is_a_bad_signature() -> None:
    assert reason_of(BUNDLE[:-1], MINISIG, [PAIR.public_key]) == "bad_signature"
    assert reason_of(BUNDLE + b"\0", MINISIG, [PAIR.public_key]) == "bad_signature"


@given(st.data())
@settings(max_examples=40, deadline=None)
def test_an_edited_trusted_comment_is_a_bad_signature(data: st.DataObject) -> None:
    lines = MINISIG.split(b"\n")
    comment = bytearray(lines[2])
    at = data.draw(st.integers(len(b"trusted comment: "), len(comment) - 1))
    replacement = data.draw(st.sampled_from(b"0123456789abcXYZ:_-."))
    if comment[at] == replacement:
        replacement = ord("9") if replacement != ord("9") else ord("8")
    comment[at] = replacement
    lines[2] = bytes(comment)
    reason = reason_of(BUNDLE, b"\n".join(lines), [PAIR.public_key])
    assert reason == "bad_signature"


def test_the_version_cannot_be_raised_by_editing_the_comment() -> None:
    forged = MINISIG.replace(b"version:7 ", b"version:8 ")
    assert forged != MINISIG
    assert reason_of(BUNDLE, forged, [PAIR.public_key]) == "bad_signature"


def test_a_key_that_is_not_trusted_is_an_unknown_key() -> None:
    assert reason_of(BUNDLE, sign(BUNDLE, pair=OTHER), [PAIR.public_key]) == "unknown_key"
    assert reason_of(BUNDLE, MINISIG, []) == "unknown_key"


def test_a_forged_key_id_does_not_help() -> None:
    """Another key's signature relabelled with the trusted key's id still fails the maths."""
    theirs = sign(BUNDLE, pair=OTHER).split(b"\n")
    ours = MINISIG.split(b"\n")
    raw = bytearray(base64.b64decode(theirs[1]))
    raw[2:10] = base64.b64decode(ours[1])[2:10]
    theirs[1] = base64.b64encode(bytes(raw))
    assert reason_of(BUNDLE, b"\n".join(theirs), [PAIR.public_key]) == "bad_signature"


def test_no_signature_is_unsigned() -> None:
    assert reason_of(BUNDLE, b"", [PAIR.public_key]) == "unsigned"
    with pytest.raises(SignatureError) as caught:
        split_delivery(BUNDLE)
    assert caught.value.reason == "unsigned"
    with pytest.raises(SignatureError) as caught:
        split_delivery(b"PK\x03\x04" + BUNDLE)  # a bare zip
    assert caught.value.reason == "unsigned"


@pytest.mark.parametrize(
    "garbage",
    [
        b"untrusted comment: x\n",
        b"untrusted comment: x\nnot base64!\ntrusted comment: y\nzzz\n",
        b"\x00\xff" * 40,
        MINISIG.replace(b"trusted comment: ", b"trusted: "),
        b"\n".join(MINISIG.split(b"\n")[:3]) + b"\n",
    ],
)
def test_garbage_is_malformed(garbage: bytes) -> None:
    assert reason_of(BUNDLE, garbage, [PAIR.public_key]) == "malformed"


def test_a_validly_signed_comment_that_is_not_ours_is_malformed() -> None:
    minisig = sign(BUNDLE, comment="timestamp:1760000000\tfile:model.seqcast")
    assert reason_of(BUNDLE, minisig, [PAIR.public_key]) == "malformed"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "seqcast",
        "other version:1 channel:a file:f timestamp:1",
        "seqcast version:0 channel:a file:f timestamp:1",
        "seqcast version:-1 channel:a file:f timestamp:1",
        "seqcast version:01 channel:a file:f timestamp:1",
        "seqcast version:1 channel: file:f timestamp:1",
        "seqcast version:1 channel:a/b file:f timestamp:1",
        f"seqcast version:1 channel:{'c' * 65} file:f timestamp:1",
        "seqcast version:1 channel:a file:f",
        "seqcast version:1 version:2 channel:a file:f timestamp:1",
        "seqcast version:1 channel:a file:f timestamp:1.5",
        "seqcast version:1  channel:a file:f timestamp:1",
        "seqcast version:1 channel:a file:f timestamp:1 junk",
    ],
)
def test_bad_trusted_comments_are_malformed(text: str) -> None:
    with pytest.raises(SignatureError) as caught:
        parse_trusted_comment(text)
    assert caught.value.reason == "malformed"


def test_trusted_comment_refuses_what_it_cannot_carry() -> None:
    assert (
        trusted_comment(1, "a", "b.seqcast", 0)
        == "seqcast version:1 channel:a file:b.seqcast timestamp:0"
    )
    for bad in [(0, "a", "f", 1), (1, "a b", "f", 1), (1, "a", "my model", 1), (1, "a", "f", -1)]:
        with pytest.raises(ValueError):
            trusted_comment(*bad)


channels = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
files = st.from_regex(r"[!-~]{1,40}", fullmatch=True)


@given(st.integers(1, 10**17), channels, files, st.integers(0, 10**12))
def test_trusted_comments_round_trip(version: int, channel: str, file: str, stamp: int) -> None:
    assert parse_trusted_comment(trusted_comment(version, channel, file, stamp)) == (
        version,
        channel,
        file,
        stamp,
    )


@given(st.binary(min_size=1, max_size=500))
@settings(max_examples=50)
def test_delivery_round_trips_any_bundle(bundle: bytes) -> None:
    minisig = sign(bundle)
    assert split_delivery(join_delivery(minisig, bundle)) == (minisig, bundle)
    # py-minisign's bytes() lack the final newline; the payload still has exactly four lines
    assert split_delivery(join_delivery(minisig.rstrip(b"\n"), bundle)) == (minisig, bundle)
    assert verify_release(
        *reversed(split_delivery(join_delivery(minisig, bundle))), [PAIR.public_key]
    )


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_split_delivery_never_fails_other_than_with_a_reason(payload: bytes) -> None:
    try:
        minisig, bundle = split_delivery(payload)
    except SignatureError as err:
        assert err.reason in ("unsigned", "malformed")
    else:
        assert minisig.count(b"\n") == 4 and minisig + bundle == payload and bundle


@given(st.binary(max_size=300))
@settings(max_examples=200)
def test_verify_release_never_fails_other_than_with_a_reason(minisig: bytes) -> None:
    with pytest.raises(SignatureError) as caught:
        verify_release(BUNDLE, b"untrusted comment: " + minisig, [PAIR.public_key])
    assert caught.value.reason in ("malformed", "unknown_key", "bad_signature")


def test_join_delivery_refuses_what_is_not_a_signature() -> None:
    for bad in [b"", BUNDLE, MINISIG + b"extra line\n", MINISIG.split(b"\n", 1)[1]]:
        with pytest.raises(SignatureError) as caught:
            join_delivery(bad, BUNDLE)
        assert caught.value.reason == "malformed"


def test_a_signature_without_a_bundle_is_malformed() -> None:
    with pytest.raises(SignatureError) as caught:
        split_delivery(MINISIG)
    assert caught.value.reason == "malformed"


def test_public_keys_load_and_bad_files_name_themselves(tmp_path: Path) -> None:
    good = tmp_path / "seqcast.pub"
    good.write_bytes(bytes(PAIR.public_key) + b"\n")
    other = tmp_path / "other.pub"
    other.write_bytes(bytes(OTHER.public_key) + b"\n")
    keys = load_public_keys([good, str(other)])
    assert [public_key_id(k) for k in keys] == [
        public_key_id(PAIR.public_key),
        public_key_id(OTHER.public_key),
    ]
    garbage = tmp_path / "garbage.pub"
    garbage.write_text("hello\n")
    for path in (tmp_path / "missing.pub", garbage, tmp_path):
        with pytest.raises(ConfigError) as caught:
            load_public_keys([good, path])
        assert str(path) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(ConfigError):
        load_public_keys([])


def test_the_error_carries_its_reason() -> None:
    assert (SignatureError("unsigned").reason, str(SignatureError("unsigned"))) == ("unsigned",) * 2
    assert str(SignatureError("malformed", "short")) == "malformed: short"
    with pytest.raises(ValueError):
        SignatureError("tampered")


@given(st.binary(min_size=8, max_size=8))
@settings(max_examples=60, deadline=None)
def test_key_ids_print_as_the_minisign_tool_prints_them(key_id: bytes) -> None:
    # minisign: printf("%" PRIX64, le64(key_id)); a key whose top byte is 0 has a shorter id
    raw = b"Ed" + key_id + bytes(32)
    key = minisign.PublicKey.from_base64(base64.b64encode(raw).decode())
    assert public_key_id(key) == (key_id[::-1].hex().upper().lstrip("0") or "0")


def test_a_key_id_with_a_leading_zero_byte_drops_the_zeros() -> None:
    raw = b"Ed" + bytes.fromhex("e2f7fbde3a954a04") + bytes(32)
    key = minisign.PublicKey.from_base64(base64.b64encode(raw).decode())
    assert public_key_id(key) == "44A953ADEFBF7E2"
