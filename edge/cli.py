"""`seqcast-edge`: the device side. Never imports TensorFlow.

Device commands: run, check, inspect, config. The simulator tools (replay, demo) live in
`seqcast.tools` and are listed here too; `demo` needs the train extra and says so.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

EXIT_ERROR = 1  # the command ran and failed (a bundle's self-test in `inspect`)
EXIT_USAGE = 2  # bad config, bundle, state directory or arguments: one line says what and where


def _cmd_run(args: argparse.Namespace) -> int:
    from seqcast.edge.config import load_config
    from seqcast.edge.service.daemon import Daemon

    cfg = load_config(args.config, args.partition)
    if not args.verbose:  # the command line wins over the config file
        logging.getLogger().setLevel(cfg.log.level.upper())
    daemon = Daemon(cfg)
    daemon.install_signal_handlers()
    return daemon.run()


def _cmd_check(args: argparse.Namespace) -> int:
    from seqcast.edge.config import load_config, read_password
    from seqcast.edge.mqtt.diagnose import check_tls
    from seqcast.edge.path.pipeline import resolve_mode
    from seqcast.edge.service.daemon import load
    from seqcast.edge.service.statedir import prepare_state_dir

    cfg = load_config(args.config, args.partition)
    read_password(cfg.mqtt)  # reads the password and TLS files: fails here, not at 3 a.m.
    check_tls(cfg.mqtt)
    # writable, not full, private; the lock is the daemon's alone (check runs beside it)
    prepare_state_dir(cfg.state.dir)
    if cfg.deploy.enabled:
        from seqcast.edge.model.signature import load_public_keys

        load_public_keys(cfg.deploy.public_key)  # the release keys: readable and well-formed
    model = load(cfg)
    try:
        mode = resolve_mode(cfg.model.mode, model)
    except ValueError as e:
        print(f"seqcast-edge: error: {args.config}: {e}", file=sys.stderr)
        return EXIT_USAGE
    m = model.bundle.manifest
    print(
        f"ok: {args.config} is valid; {model.bundle.model_id} passes its self-test on "
        f"{model.backend} ({mode} mode, seq_len {m.seq_len}, horizon {m.horizon})"
    )
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from seqcast.edge.config import dump_default_config

    print(dump_default_config(), end="")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from seqcast.edge.model.inspect import inspect

    text, passed = inspect(args.bundle, args.json, args.backend)
    print(text)
    return 0 if passed else EXIT_ERROR


def _partition_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--partition",
        metavar="P",
        help="serve partition P: overrides [input] partition, fills {partition} in the topics and "
        "the client id, keeps the state in <state.dir>/partition-P (what seqcast-edge@P runs)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcast-edge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the daemon (what systemd starts)")
    p.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="the config (edge.toml)"
    )
    _partition_arg(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="validate the config and the bundle (self-test), then exit")
    p.add_argument(
        "-c", "--config", required=True, type=Path, metavar="FILE", help="the config (edge.toml)"
    )
    _partition_arg(p)
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("inspect", help="print a bundle's manifest and run its self-test")
    p.add_argument("bundle", help="path to a .seqcast bundle")
    p.add_argument(
        "--json", action="store_true", help="print the manifest and self-test result as JSON"
    )
    p.add_argument(
        "--backend",
        default="auto",
        choices=["auto", "litert", "tflite_runtime"],
        help="interpreter backend (auto: the first that loads and passes the self-test)",
    )
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("config", help="print a commented config with every key and its default")
    p.set_defaults(func=_cmd_config)

    from seqcast.tools.cli import register_tools

    register_tools(sub)
    for command in sub.choices.values():  # -v works before or after the command
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    fmt = "%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=level, stream=sys.stderr, format=fmt)
    from seqcast.edge.errors import USER_ERRORS

    try:
        return int(args.func(args))
    except USER_ERRORS as e:
        print(f"seqcast-edge: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
