"""`seqcast-deploy`: keygen, sign, push, status. Errors are one line on stderr, exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from seqcast.deploy.keys import DeployError

PROG = "seqcast-deploy"


def _cmd_keygen(args: argparse.Namespace) -> int:
    from seqcast.deploy.keys import keygen, read_password_file

    password = read_password_file(args.password_file) if args.password_file else None
    key, pub, key_id = keygen(args.out, password)
    print(f"key {key_id}: secret {key} (keep it off the devices), public {pub}")
    return 0


def _cmd_sign(args: argparse.Namespace) -> int:
    from seqcast.deploy.keys import read_password_file, sign_bundle

    password = read_password_file(args.password_file) if args.password_file else None
    sig = sign_bundle(args.bundle, args.key, args.version, args.channel, password)
    print(f"signed {args.bundle.name} version {args.version} channel {args.channel}: {sig}")
    return 0


def _cmd_push(args: argparse.Namespace) -> int:
    from seqcast.deploy.push import push

    if args.timeout <= 0:
        raise DeployError(f"--timeout must be > 0, got {args.timeout:g}")
    done = push(args)
    print(
        f"pushed {args.bundle.name} version {done.version} to {done.topic} on "
        f"{args.host}:{args.port} ({done.size} bytes, retained, acknowledged)"
    )
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from seqcast.deploy.status import as_json, collect, render

    if args.settle <= 0:
        raise DeployError(f"--settle must be > 0, got {args.settle:g}")
    rows = collect(args).rows()
    print(as_json(rows) if args.json else render(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from seqcast.deploy.push import add_push_args
    from seqcast.deploy.status import add_status_args

    parser = argparse.ArgumentParser(
        prog=PROG, description="Sign model bundles and deliver them to devices over MQTT."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("keygen", help="make a signing key pair: DIR/seqcast.key and seqcast.pub")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="where to write them")
    p.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="encrypt the secret key with the password in FILE (chmod 600); default: unencrypted",
    )
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("sign", help="write BUNDLE.minisig naming the version and channel")
    p.add_argument("bundle", type=Path, help="the bundle (.seqcast) to sign")
    p.add_argument("--key", type=Path, required=True, metavar="FILE", help="the secret key")
    p.add_argument(
        "--version", type=int, required=True, metavar="N", help="release number (positive)"
    )
    p.add_argument("--channel", default="stable", help="the devices' [deploy] channel (stable)")
    p.add_argument(
        "--password-file", type=Path, metavar="FILE", help="the key's password, if encrypted"
    )
    p.set_defaults(func=_cmd_sign)

    p = sub.add_parser("push", help="publish a signed bundle, retained, to a channel's topic")
    add_push_args(p)
    p.set_defaults(func=_cmd_push)

    p = sub.add_parser("status", help="list devices: state, model id, version, last deploy event")
    add_status_args(p)
    p.set_defaults(func=_cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (DeployError, ConnectionError) as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
