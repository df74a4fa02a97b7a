"""`seqcast-train`: fit a forecaster and write a bundle, or sweep sequence lengths."""

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

from seqcast.train.options import ArchitectureError, DataError, FitOptions

EXIT_BAD_INPUT = 2


def _csv(cast: Any) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            return [cast(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def _add_fit_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with any of these options (flags win)",
    )
    g.add_argument("--data", metavar="FILE", help="CSV or Parquet table, one row per time step")
    g.add_argument(
        "--example",
        choices=["vic_elec"],
        help="built-in data: Victoria half-hourly electricity demand",
    )
    g.add_argument(
        "--time-col",
        metavar="COL",
        help="timestamp column: ISO 8601 (read as UTC when it has no offset) or Unix seconds "
        "(default: time)",
    )
    g.add_argument(
        "--features",
        type=_csv(str),
        metavar="A,B",
        help="input columns, in order (e.g. Demand,Temperature)",
    )
    g.add_argument("--targets", type=_csv(str), metavar="A", help="columns to forecast")
    g.add_argument(
        "--split",
        type=_csv(float),
        metavar="TRAIN,VAL,TEST",
        help="chronological train,val,test fractions (0.7,0.15,0.15)",
    )
    g.add_argument(
        "--interval",
        metavar="ALIAS",
        help="the time grid as a pandas offset alias: 30min, 1h, D, W-MON (fixed), MS/ME, QS/QE, "
        "YS/YE (month, quarter, year starts/ends); default: inferred from the timestamps",
    )
    g.add_argument(
        "--sort",
        action="store_true",
        default=None,
        help="sort rows by time instead of refusing unsorted data",
    )
    g.add_argument(
        "--duplicates",
        choices=["error", "first", "last", "mean"],
        help="rows with the same timestamp: refuse them, keep the first or last, or average "
        "them (error)",
    )
    g.add_argument(
        "--max-fill",
        type=int,
        metavar="N",
        help="interpolate holes of at most this many missing steps; a longer hole splits the "
        "series into segments that no training window crosses (3)",
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--seq-len", type=int, metavar="N", help="time steps the model sees per example (48)"
    )
    g.add_argument("--horizon", type=int, metavar="N", help="steps forecast after each sample (4)")
    g.add_argument(
        "--mode",
        choices=["stream", "window"],
        help="stream: window + step models (default); window: window model only",
    )
    g.add_argument("--cell", choices=["lstm", "gru"], help="recurrent cell (lstm)")
    g.add_argument(
        "--units", type=_csv(int), metavar="U,U", help="units per stacked layer, e.g. 64,32 (64)"
    )
    g.add_argument("--dropout", type=float, metavar="P", help="input dropout (0)")
    g.add_argument("--recurrent-dropout", type=float, metavar="P", help="recurrent dropout (0)")
    g.add_argument(
        "--conv1d",
        action="store_true",
        default=None,
        help="Conv1D + MaxPooling1D front end (window mode only)",
    )
    g.add_argument(
        "--bidirectional",
        action="store_true",
        default=None,
        help="bidirectional layers (window mode only)",
    )
    g.add_argument(
        "--calendar",
        metavar="auto|none|LIST",
        help="calendar inputs computed from each step's time, as sin/cos pairs: hour_of_day, "
        "day_of_week, day_of_year, month_of_year; auto picks by interval and span (auto)",
    )
    g.add_argument(
        "--min-history",
        type=int,
        metavar="N",
        help="forecast from this many samples on (masked, left-padded windows)",
    )
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs",
        type=int,
        metavar="N",
        help="most epochs, a safety net: training stops when validation loss has not "
        "improved for --patience epochs (200)",
    )
    g.add_argument("--batch-size", type=int, metavar="N", help="examples per training batch (32)")
    g.add_argument(
        "--patience",
        type=int,
        metavar="N",
        help="epochs without a better validation loss before training stops; the learning "
        "rate halves after a third of them (6)",
    )
    g.add_argument("--learning-rate", type=float, metavar="LR", help="Adam learning rate (0.003)")
    g.add_argument(
        "--train-len",
        type=int,
        metavar="N",
        help="streaming training sequence length (4 x seq-len)",
    )
    g.add_argument("--seed", type=int, metavar="N", help="random seed (0)")
    g = p.add_argument_group("output")
    g.add_argument(
        "--quantize",
        choices=["float32", "float16", "dynamic", "int8"],
        help="TFLite precision (float32)",
    )
    g.add_argument(
        "--quantiles",
        type=_csv(float),
        metavar="Q,Q",
        help="prediction intervals: quantile heads (pinball loss) whose forecasts are published "
        "as <target>_p10, <target>_p90 ... next to each point forecast, e.g. 0.1,0.9 (none)",
    )
    g.add_argument(
        "--season",
        type=int,
        metavar="N",
        help="seasonal-naive period in steps (one day, or one week for daily data)",
    )
    g.add_argument("--name", metavar="NAME", help="model name in the manifest (default: file stem)")
    g.add_argument(
        "--out",
        metavar="FILE",
        help="bundle path (model.seqcast); the report goes to <stem>.report/",
    )
    g.add_argument(
        "--no-report",
        dest="report",
        action="store_false",
        default=None,
        help="skip the PNG/JSON report",
    )


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
    best = "stream" if "stream" in m else "window"
    verdict = "beats" if m[best]["mae"] < m["seasonal_naive"]["mae"] else "does NOT beat"
    print(
        f"test MAE: {best} {m[best]['mae']:.3f} vs seasonal-naive {m['seasonal_naive']['mae']:.3f} "
        f"({verdict} it), persistence {m['persistence']['mae']:.3f}"
    )
    intervals = coverage_line(m)
    if intervals:
        print(intervals)
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
    _add_fit_args(fit_p)
    fit_p.set_defaults(func=_cmd_fit)
    sweep_p = sub.add_parser("sweep", help="train one model per sequence length and compare them")
    _add_fit_args(sweep_p)
    sweep_p.add_argument(
        "--seq-lens",
        type=_csv(int),
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
    for p in (fit_p, sweep_p):  # -v works before or after the command
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
