"""The README's command-line tables, generated from the argparse parsers themselves.

    python -m tests.cli_tables          # rewrite the tables in README.md and deploy/README.md
                                        # (`make readme`)

Each table sits between `<!-- cli:NAME -->` and `<!-- /cli:NAME -->`; `tests/test_cli.py` fails
when a table is not what the parsers say, so help and README cannot drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Callable
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
DEPLOY_README = README.parent / "deploy" / "README.md"
READMES = (README, DEPLOY_README)


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]  # type: ignore[no-any-return]
    raise KeyError(name)


def _row(action: argparse.Action) -> str | None:
    if action.help in (None, argparse.SUPPRESS) or isinstance(action, argparse._HelpAction):
        return None
    if action.option_strings:
        flags = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or (
                "|".join(map(str, action.choices)) if action.choices else action.dest.upper()
            )
            flags += f" `{metavar}`".replace("|", "\\|")
    else:
        flags = f"`{action.metavar or action.dest}`"
    meaning = str(action.help).replace("|", "\\|")
    return f"| {flags} | {meaning} |"


def options_table(parser: argparse.ArgumentParser, skip: tuple[str, ...] = ()) -> str:
    rows = ["| option | meaning |", "|---|---|"]
    for action in parser._actions:
        if any(s in skip for s in action.option_strings):
            continue
        row = _row(action)
        if row:
            rows.append(row)
    return "\n".join(rows)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def toml_keys_table() -> str:
    from seqcast.train.options import FitOptions

    rows = ["| key | default |", "|---|---|"]
    for f in dataclasses.fields(FitOptions):
        if f.name == "verbose":
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = "unset" if default is None else f"`{toml_value(default)}`"
        rows.append(f"| `{f.name.replace('_', '-')}` | {shown} |")
    return "\n".join(rows)


def tables() -> dict[str, Callable[[], str]]:
    from seqcast.edge.cli import build_parser as edge_parser
    from seqcast.train.cli import build_parser as train_parser

    train, edge = train_parser(), edge_parser()
    fit, sweep = _subparser(train, "fit"), _subparser(train, "sweep")
    auto = _subparser(train, "auto")
    fit_flags = {s for a in fit._actions for s in a.option_strings}
    auto_own = {s for g in auto._action_groups if g.title == "search" for s in
                (f for a in g._group_actions for f in a.option_strings)}  # fmt: skip
    out: dict[str, Callable[[], str]] = {
        "seqcast-train fit": lambda: options_table(fit, skip=("-v",)),
        "seqcast-train sweep": lambda: options_table(
            sweep, skip=tuple(fit_flags - {"--seq-lens", "--sweep-dir"})
        ),
        "seqcast-train auto": lambda: options_table(auto, skip=tuple(fit_flags - auto_own)),
        "train.toml": toml_keys_table,
    }
    for name in ("run", "check", "inspect", "replay", "demo"):
        command = _subparser(edge, name)
        out[f"seqcast-edge {name}"] = lambda c=command: options_table(c, skip=("-v",))
    out.update(_deploy_tables())
    return out


def _deploy_tables() -> dict[str, Callable[[], str]]:
    """`seqcast-deploy`'s commands, without the broker options (`seqcast-edge replay`'s table)."""
    from seqcast.deploy.cli import build_parser as deploy_parser
    from seqcast.tools.replay import add_broker_args

    broker = argparse.ArgumentParser(add_help=False)
    add_broker_args(broker)
    broker_flags = tuple(s for a in broker._actions for s in a.option_strings)
    deploy = deploy_parser()
    out: dict[str, Callable[[], str]] = {}
    for name in ("keygen", "sign", "push", "status"):
        command = _subparser(deploy, name)
        skip = broker_flags if name in ("push", "status") else ()  # keygen's --password-file
        out[f"seqcast-deploy {name}"] = lambda c=command, s=skip: options_table(c, s)
    return out


_BLOCK = re.compile(
    r"(<!-- cli:(?P<name>[^>]+?) -->\n)(?P<body>.*?)(<!-- /cli:(?P=name) -->)", re.S
)


def render(text: str) -> str:
    makers = tables()
    return _BLOCK.sub(lambda m: m.group(1) + makers[m.group("name")]() + "\n" + m.group(4), text)


def blocks(text: str) -> dict[str, str]:
    return {m.group("name"): m.group("body") for m in _BLOCK.finditer(text)}


if __name__ == "__main__":
    for readme in READMES:
        readme.write_text(render(readme.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"rewrote {len(blocks(readme.read_text(encoding='utf-8')))} tables in {readme}")
    sys.exit(0)
