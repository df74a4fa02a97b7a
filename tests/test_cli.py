"""The commands a user meets first: fast and quiet, one convention for -v, help == README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_tables import DEPLOY_README, README, blocks, render

# Runs `seqcast-train ARGS` in a fresh interpreter; reports the exit code and whether TensorFlow
# (or Keras) was imported on the way.
PROBE = """
import sys
from seqcast.train.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'})
print('IMPORTED', ','.join(heavy) or '-', 'EXIT', code)
"""


def train_probe(*args: str) -> tuple[str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    return proc.stdout, proc.stderr


def test_train_help_does_not_import_tensorflow() -> None:
    out, _ = train_probe("--help")
    assert "usage: seqcast-train" in out
    assert out.strip().endswith("IMPORTED - EXIT 0")
    out, _ = train_probe("fit", "--help")
    assert "--seq-len" in out and out.strip().endswith("IMPORTED - EXIT 0")


@pytest.mark.train
def test_a_data_error_is_one_line_without_tensorflow(tmp_path: Path) -> None:
    csv = tmp_path / "dup.csv"
    rows = ["time,load"] + [f"2024-01-01T{h:02d}:00:00Z,{h}" for h in range(24)]
    rows.insert(5, "2024-01-01T03:00:00Z,3")  # a duplicate timestamp
    csv.write_text("\n".join(rows) + "\n")
    out, err = train_probe("fit", "--data", str(csv), "--features", "load", "--targets", "load")
    assert out.strip().endswith("IMPORTED - EXIT 2")
    assert err.count("\n") == 1 and err.startswith("seqcast-train: error: ")
    assert "duplicate" in err


@pytest.mark.parametrize(
    "argv",
    [["-v", "fit", "--example", "vic_elec"], ["fit", "--example", "vic_elec", "-v"]],
)
def test_train_verbose_before_or_after_the_command(argv: list[str]) -> None:
    from seqcast.train.cli import build_parser, options_from

    args = build_parser().parse_args(argv)
    assert args.debug is True
    assert options_from(args).verbose is None  # -v is logging, not Keras' progress setting


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [
        (["run", "-c", "x.toml"], False),
        (["-v", "run", "-c", "x.toml"], True),
        (["run", "-c", "x.toml", "-v"], True),
        (["check", "--verbose", "-c", "x.toml"], True),
    ],
)
def test_edge_verbose_before_or_after_the_command(argv: list[str], verbose: bool) -> None:
    from seqcast.edge.cli import build_parser

    assert build_parser().parse_args(argv).verbose is verbose


@pytest.mark.broker
def test_edge_run_verbose_wins_over_the_config_level(
    tmp_path: Path, broker: object, small_bundle: Path, unique_topic: str
) -> None:
    from tests.daemon_harness import write_config

    cfg = write_config(
        tmp_path / "edge.toml", broker, small_bundle, unique_topic, log={"level": "error"}
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqcast.edge.cli", "run", "-c", str(cfg), "-v"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        lines = []
        for line in proc.stderr:  # INFO lines only appear when -v beat `level = "error"`
            lines.append(line)
            if "subscribed to" in line:
                break
        assert any(line.startswith("INFO ") for line in lines), lines
    finally:
        proc.terminate()
        proc.wait(20)


def test_readme_option_tables_are_what_the_parsers_define() -> None:
    text = README.read_text(encoding="utf-8")
    names = set(blocks(text))
    assert {
        "seqcast-train fit",
        "seqcast-train sweep",
        "seqcast-train auto",
        "train.toml",
        "seqcast-edge replay",
    } <= names
    stale = [n for n, body in blocks(render(text)).items() if blocks(text)[n] != body]
    assert stale == [], f"README tables out of date: {stale}; run `make readme`"


def test_deploy_readme_option_tables_are_what_the_parser_defines() -> None:
    text = DEPLOY_README.read_text(encoding="utf-8")
    commands = ("keygen", "sign", "push", "status")
    assert {f"seqcast-deploy {c}" for c in commands} <= set(blocks(text))
    stale = [n for n, body in blocks(render(text)).items() if blocks(text)[n] != body]
    assert stale == [], f"deploy/README.md tables out of date: {stale}; run `make readme`"


def test_every_fit_option_has_help_and_appears_in_the_readme() -> None:
    from seqcast.train.cli import build_parser

    text = README.read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices)
    for command in ("fit", "sweep", "auto"):
        for action in sub.choices[command]._actions:  # type: ignore[index]
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert action.help, flag
                    assert f"`{flag}`" in text, flag
