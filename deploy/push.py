"""`seqcast-deploy push`: publish a signed bundle to a channel, retained, so every device on the
channel gets it now or when it next connects.

Before anything is sent the bundle must pass the device's own bundle reader, its signature must
name the channel pushed to, and (with `--pub`) verify against the given public keys.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import minisign

from seqcast.deploy.keys import SIG_SUFFIX, DeployError, check_bundle, read_file
from seqcast.edge.model.signature import (
    CHANNEL_PATTERN,
    SignatureError,
    join_delivery,
    load_public_keys,
    parse_trusted_comment,
    verify_release,
)

DEFAULT_TOPIC = "seqcast/deploy/{channel}"
PUBACK_TIMEOUT_S = 120.0  # a large bundle on a slow uplink


@dataclass(frozen=True)
class Pushed:
    topic: str
    version: int
    channel: str
    size: int  # payload bytes: signature + bundle


def delivery_topic(template: str, channel: str) -> str:
    if not CHANNEL_PATTERN.fullmatch(channel):
        raise DeployError(f"--channel {channel!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    if template.count("{channel}") != 1 or any(c in template for c in "+#"):
        raise DeployError(f"--topic {template!r}: needs {{channel}} once and no wildcards")
    return template.replace("{channel}", channel)


def signed_payload(
    bundle: Path, sig: Path | None, channel: str, pub: list[Path]
) -> tuple[bytes, int]:
    """The delivery payload and the signed version, after the checks a device makes that can be
    made here, in its order: the signature (format; with `pub`, the keys), the channel, then the
    bundle reader."""
    sig = sig or bundle.with_name(bundle.name + SIG_SUFFIX)
    try:
        minisig = sig.read_bytes()
    except FileNotFoundError:
        raise DeployError(f"{sig}: no signature (run `seqcast-deploy sign` first)") from None
    except OSError as err:
        raise DeployError(f"{sig}: {err.strerror or err}") from None
    data = read_file(bundle)
    try:
        if pub:
            from seqcast.edge.config import ConfigError

            try:
                keys = load_public_keys(pub)
            except ConfigError as err:
                raise DeployError(f"--pub {err}") from None
            release = verify_release(data, minisig, keys)
            version, signed_channel = release.version, release.channel
        else:
            try:
                comment = minisign.Signature.from_bytes(minisig).trusted_comment
            except (minisign.ParseError, ValueError) as err:
                raise SignatureError("malformed", f"not a minisign signature ({err})") from None
            version, signed_channel, _, _ = parse_trusted_comment(str(comment))
        payload = join_delivery(minisig, data)
    except SignatureError as err:
        raise DeployError(f"{sig}: refused: {err}") from None
    if signed_channel != channel:
        raise DeployError(
            f"{sig}: signed for channel {signed_channel!r}, not {channel!r} "
            "(devices would refuse it)"
        )
    check_bundle(bundle, data)  # after the signature, in the device's order
    return payload, version


def push(args: argparse.Namespace) -> Pushed:
    from seqcast.tools.clients import Publisher
    from seqcast.tools.replay import ReplayError, connection_options

    topic = delivery_topic(args.topic, args.channel)
    payload, version = signed_payload(args.bundle, args.sig, args.channel, args.pub or [])
    try:
        options = connection_options(args)
    except ReplayError as err:
        raise DeployError(str(err)) from None
    pub = Publisher(args.host, args.port, client_id=args.client_id, **options)
    try:
        info = pub.publish(topic, payload, qos=1, retain=True)
        info.wait_for_publish(args.timeout)
        if not info.is_published():
            raise ConnectionError(
                f"{args.host}:{args.port} did not acknowledge the bundle within {args.timeout:g} s"
            )
    finally:
        pub.close(timeout=5.0)
    return Pushed(topic, version, args.channel, len(payload))


def add_push_args(p: argparse.ArgumentParser) -> None:
    from seqcast.tools.replay import add_broker_args

    p.add_argument("bundle", type=Path, help="the bundle (.seqcast) to deliver")
    p.add_argument(
        "--sig", type=Path, metavar="FILE", help="its signature (default: BUNDLE.minisig)"
    )
    p.add_argument("--channel", required=True, help="the channel: must be the one signed for")
    p.add_argument(
        "--pub",
        type=Path,
        action="append",
        metavar="FILE",
        help="refuse to push unless the signature verifies with this public key (repeatable)",
    )
    p.add_argument(
        "--topic",
        default=DEFAULT_TOPIC,
        help=f"delivery topic template, as the devices' [deploy] topic ({DEFAULT_TOPIC})",
    )
    p.add_argument("--client-id", help="MQTT client id (default: a random seqcast-pub-...)")
    p.add_argument(
        "--timeout",
        type=float,
        default=PUBACK_TIMEOUT_S,
        metavar="S",
        help=f"give up unless the broker acknowledges within S seconds ({PUBACK_TIMEOUT_S:g})",
    )
    add_broker_args(p)
