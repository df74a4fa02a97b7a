"""`seqcast-edge`: the device side. Never imports TensorFlow."""

from __future__ import annotations

import argparse
import logging
import sys

EXIT_ERROR = 1
EXIT_USAGE = 2


def _cmd_inspect(args: argparse.Namespace) -> int:
    from edge.inspect_bundle import inspect

    text, passed = inspect(args.bundle, args.json, args.backend)
    print(text)
    return 0 if passed else EXIT_ERROR


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="print a bundle's manifest and run its self-test")
    p.add_argument("bundle", help="path to a .seqcast bundle")
    p.add_argument("--json", action="store_true", help="print the manifest and self-test result as JSON")
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "litert", "tflite_runtime", "tensorflow"],
        help="interpreter backend (auto: the first that loads and passes the self-test)",
    )
    p.set_defaults(func=_cmd_inspect)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcast-edge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_inspect(sub)
    from edge import commands

    commands.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else getattr(args, "log_level", logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    from edge.errors import USER_ERRORS

    try:
        return int(args.func(args))
    except USER_ERRORS as e:
        print(f"seqcast-edge: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
