"""The trainer's command-line arguments: the fit options every command shares, and auto's grid."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def csv_list(cast: Any) -> Any:
    def parse(text: str) -> list[Any]:
        try:
            return [cast(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a comma-separated list, got {text!r}"
            ) from None

    return parse


def add_fit_args(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """fit's options; with `grid`, without the ones auto's grid sets (seq-len, cell, units)."""
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
        type=csv_list(str),
        metavar="A,B",
        help="input columns, in order (e.g. Demand,Temperature)",
    )
    g.add_argument("--targets", type=csv_list(str), metavar="A", help="columns to forecast")
    g.add_argument(
        "--split",
        type=csv_list(float),
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
    if not grid:
        g.add_argument(
            "--seq-len", type=int, metavar="N", help="time steps the model sees per example (48)"
        )
    g.add_argument("--horizon", type=int, metavar="N", help="steps forecast after each sample (4)")
    g.add_argument(
        "--mode",
        choices=["stream", "window"],
        help="stream: window + step models (default); window: window model only",
    )
    if not grid:
        g.add_argument("--cell", choices=["lstm", "gru"], help="recurrent cell (lstm)")
        g.add_argument(
            "--units",
            type=csv_list(int),
            metavar="U,U",
            help="units per stacked layer, e.g. 64,32 (64)",
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
        "--predict",
        choices=["auto", "level", "change", "seasonal", "smooth"],
        help="what the network forecasts: each target's level; its change from the latest value; "
        "its departure from the value one season back (seasonal: the longest natural season "
        "that fits in --seq-len, or --season); or its departure from an exponentially smoothed "
        "level and season (smooth: Holt-Winters without trend, constants chosen on training). "
        "change, seasonal and smooth need a target that is also a feature and run in the graph, "
        "so the device is unchanged. auto: level, and when it does not beat persistence and "
        "seasonal naive on validation also change, seasonal and smooth, keeping the lowest "
        "validation error (auto)",
    )
    g.add_argument(
        "--quantiles",
        type=csv_list(float),
        metavar="Q,Q",
        help="prediction intervals: quantile heads (pinball loss) whose forecasts are published "
        "as <target>_p10, <target>_p90 ... next to each point forecast, e.g. 0.1,0.9 (none)",
    )
    g.add_argument(
        "--season",
        type=int,
        metavar="N",
        help="seasonal-naive period in steps, and Theta's season (default: a day and a week for "
        "sub-daily data, a week for daily, a year for monthly)",
    )
    g.add_argument(
        "--baselines",
        choices=["all", "naive"],
        help="what the report compares with: all (persistence, seasonal naive, AutoTheta) or "
        "naive (skips AutoTheta, about 30 s on vic_elec)",
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


def add_auto_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("search")
    g.add_argument(
        "--seq-lens",
        type=csv_list(int),
        metavar="N,N",
        help="candidate sequence lengths (one and two seasons: 48,96 for half-hourly data, "
        "24,48 hourly, 7,14 daily; at most 192)",
    )
    g.add_argument(
        "--cells",
        type=csv_list(str),
        metavar="gru,lstm",
        help="candidate recurrent cells (gru,lstm)",
    )
    g.add_argument(
        "--units",
        dest="grid_units",
        type=csv_list(int),
        metavar="U,U",
        help="candidate widths, one recurrent layer each (32,64)",
    )
    g.add_argument(
        "--budget",
        type=float,
        default=20.0,
        metavar="MINUTES",
        help="time for the candidates: none starts when it is predicted to end after it; the "
        "first (cheapest) always runs, with a warning if it alone overruns (20)",
    )
    g.add_argument(
        "--candidates-dir",
        type=Path,
        metavar="DIR",
        help="where the candidates' bundles, auto.json and auto.png go "
        "(<out stem>.candidates/ beside --out)",
    )
