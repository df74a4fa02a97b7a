"""Sub-commands beyond `inspect`: run, check, config, replay, demo."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def _cmd_run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.daemon import Daemon

    cfg = load_config(args.config)
    logging.getLogger().setLevel(cfg.log.level.upper())
    daemon = Daemon(cfg)
    daemon.install_signal_handlers()
    return daemon.run()


def _cmd_check(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.daemon import check_tls, load, mqtt_settings
    from edge.pipeline import resolve_mode

    cfg = load_config(args.config)
    check_tls(mqtt_settings(cfg))  # reads the password and TLS files: fails here, not at 3 a.m.
    model = load(cfg)
    try:
        mode = resolve_mode(cfg.model.mode, model)
    except ValueError as e:
        print(f"seqcast-edge: error: {args.config}: {e}", file=sys.stderr)
        return 1
    print(
        f"ok: {args.config} is valid; {model.bundle.model_id} passes its self-test on {model.backend} "
        f"({mode} mode, seq_len {model.bundle.manifest.seq_len}, horizon {model.bundle.manifest.horizon})"
    )
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    from edge.config import dump_default_config

    print(dump_default_config(), end="")
    return 0


def _cmd_replay(args: argparse.Namespace) -> int:
    from edge.replay import replay_main

    return replay_main(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from edge.demo import demo_main

    return demo_main(args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the daemon (what systemd starts)")
    p.add_argument("-c", "--config", required=True, type=Path, help="edge.toml")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check", help="validate the config and the bundle (self-test), then exit")
    p.add_argument("-c", "--config", required=True, type=Path, help="edge.toml")
    p.set_defaults(func=_cmd_check)

    p = sub.add_parser("config", help="print a commented config with every key and its default")
    p.set_defaults(func=_cmd_config)

    from edge.replay import add_replay_args

    p = sub.add_parser("replay", help="publish a CSV file as sensor messages (a simulator)")
    add_replay_args(p)
    p.set_defaults(func=_cmd_replay)

    from edge.demo import add_demo_args

    p = sub.add_parser("demo", help="train or reuse the vic_elec bundle, start a broker, replay meters, show forecasts")
    add_demo_args(p)
    p.set_defaults(func=_cmd_demo)
