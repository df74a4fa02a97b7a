"""`seqcast-train`: fit a forecaster and write a bundle, sweep sequence lengths, or search a small
grid within a time budget (auto)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import os
import sys
import tomllib
from pathlib import Path
from typing import Any

from seqcast.train.cli_args import add_auto_args, add_fit_args, csv_list
from seqcast.train.options import ArchitectureError, DataError, FitOptions

EXIT_BAD_INPUT = 2
EXIT_BEATEN = 3  # --require-beat: the bundle is written, but a baseline forecasts better


def options_from(args: argparse.Namespace) -> FitOptions:
    values: dict[str, Any] = {}
    if args.config:
        try:
            raw = tomllib.loads(args.config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise DataError(f"--config {args.config}: {e}") from None
        known = {f.name for f in dataclasses.fields(FitOptions)}
        for key, v in raw.items():
            name = key.replace("-", "_")
            if name not in known:
                raise DataError(f"--config {args.config}: unknown key {key!r}")
            values[name] = v
    for f in dataclasses.fields(FitOptions):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    for key in ("split", "units", "quantiles"):
        if key in values:
            values[key] = tuple(values[key])
    return FitOptions(**values)


def _cmd_fit(args: argparse.Namespace) -> int:
    from seqcast.train.prepare import prepare

    options = options_from(args)
    prepared = prepare(options)  # data and options checked before TensorFlow is imported
    print(data_line(prepared.series))
    from seqcast.train.evaluate import coverage_line
    from seqcast.train.fit import fit

    result = fit(options, prepared)
    m = result.metrics
    print(
        f"wrote {result.bundle.path} ({result.bundle.path.stat().st_size / 1024:.0f} KiB, "
        f"{result.bundle.model_id})"
    )
    if result.report_dir:
        print(f"report: {result.report_dir}/")
    intervals = coverage_line(m)
    if intervals:
        print(intervals)
    if args.require_beat and not m["verdict"]["beats"]:
        return EXIT_BEATEN
    return 0


def data_line(series: Any) -> str:
    """One line on how the table met its grid (a `train.data.Series`)."""
    from seqcast.train.timeaxis import describe, iso

    first, last = iso(float(series.times[0])), iso(float(series.times[-1]))
    return f"data: {describe(series.grid)}, {first} .. {last} UTC: {series.stats.describe()}"


def _cmd_sweep(args: argparse.Namespace) -> int:
    from seqcast.train.prepare import prepare

    options = options_from(args)
    if args.seq_lens:  # check data and options for the longest candidate before TensorFlow
        print(data_line(prepare(dataclasses.replace(options, seq_len=max(args.seq_lens))).series))
    from seqcast.train.sweep import sweep

    sweep(options, args.seq_lens, Path(args.sweep_dir))
    return 0


def _cmd_auto(args: argparse.Namespace) -> int:
    from seqcast.train.grid import Space, check_budget, plan_for

    options = options_from(args)
    check_budget(args.budget)
    space = Space(args.seq_lens, args.cells, args.grid_units)
    planned = plan_for(options, space)  # data, options and grid checked before TensorFlow
    print(data_line(planned[1].series))
    from seqcast.train.auto import auto

    auto(options, space, args.budget, args.candidates_dir, planned=planned)
    return 0


def add_verbose(parser: argparse.ArgumentParser, default: object) -> None:
    # dest "debug": FitOptions.verbose is Keras' progress setting, which -v must not touch
    parser.add_argument(
        "-v", "--verbose", dest="debug", action="store_true", default=default, help="debug logging"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcast-train", description=__doc__)
    add_verbose(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)
    fit_p = sub.add_parser("fit", help="train one forecaster and write a .seqcast bundle")
    add_fit_args(fit_p)
    fit_p.add_argument(
        "--require-beat",
        action="store_true",
        help=f"exit {EXIT_BEATEN} when the model does not beat the best baseline on test MAE "
        "(the bundle is still written)",
    )
    fit_p.set_defaults(func=_cmd_fit)
    sweep_p = sub.add_parser("sweep", help="train one model per sequence length and compare them")
    add_fit_args(sweep_p)
    sweep_p.add_argument(
        "--seq-lens",
        type=csv_list(int),
        required=True,
        metavar="N,N",
        help="candidates, e.g. 12,24,48,96",
    )
    sweep_p.add_argument(
        "--sweep-dir",
        default="sweep",
        metavar="DIR",
        help="where bundles, table and plot go (sweep/)",
    )
    sweep_p.set_defaults(func=_cmd_sweep)
    auto_p = sub.add_parser(
        "auto",
        help="try seq_len x cell x units within --budget minutes, write the best by validation",
        description="Train a small grid of candidates (cheapest first, within the budget), pick "
        "by validation MAE (the cheapest within 2%% of the best), write its bundle to --out. "
        "--seq-len, --cell and --units are the grid's: a --config value for them is ignored.",
    )
    add_fit_args(auto_p, grid=True)
    add_auto_args(auto_p)
    auto_p.set_defaults(func=_cmd_auto)
    for p in (fit_p, sweep_p, auto_p):  # -v works before or after the command
        add_verbose(p, default=argparse.SUPPRESS)
    return parser


TRAIN_PACKAGES = ("tensorflow", "keras", "pandas", "pyarrow", "matplotlib", "tsdata")


def missing_train_packages() -> list[str]:
    """The train extra's packages that are not importable here (found without importing them)."""
    return [name for name in TRAIN_PACKAGES if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if missing := missing_train_packages():
        print(
            "seqcast-train: error: the train extra is not installed "
            f"(missing: {', '.join(missing)});"
            " install it with: pip install 'seqcast[train]'",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("tensorflow").setLevel(logging.WARNING)  # "Assets written to ..." noise

    try:
        return int(args.func(args))
    except (DataError, ArchitectureError) as e:
        print(f"seqcast-train: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
