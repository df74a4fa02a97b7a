"""The simulator commands `seqcast-edge` lists beside the device commands: replay and demo."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_replay(args: argparse.Namespace) -> int:
    from seqcast.tools.replay import replay_main

    return replay_main(args)


def _cmd_demo(args: argparse.Namespace) -> int:
    from seqcast.tools.demo import demo_main

    return demo_main(args)


def register_tools(sub: Any) -> None:
    """Add `replay` and `demo` to an argparse sub-parser set."""
    from seqcast.tools.demo import add_demo_args
    from seqcast.tools.replay import add_replay_args

    p = sub.add_parser("replay", help="publish a CSV file as sensor messages (a simulator)")
    add_replay_args(p)
    p.set_defaults(func=_cmd_replay)

    p = sub.add_parser(
        "demo",
        help="train or reuse the vic_elec bundle, start a broker, replay meters, show forecasts",
    )
    add_demo_args(p)
    p.set_defaults(func=_cmd_demo)
