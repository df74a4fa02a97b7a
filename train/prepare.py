"""Everything a training run checks before it trains: options, the data, the splits. Imports
pandas but not TensorFlow, so a bad file or option fails in a second with one line."""

from __future__ import annotations

from dataclasses import dataclass

from seqcast.train import data as D
from seqcast.train.options import Architecture, FitOptions


@dataclass
class Prepared:
    series: D.Series
    arch: Architecture
    min_history: int
    splits: D.Splits


def load_series(o: FitOptions) -> D.Series:
    if o.example:
        df, time_col, features, targets = D.load_example(o.example)
        features, targets = o.features or features, o.targets or targets
    elif o.data:
        df, time_col, features, targets = D.read_table(o.data), o.time_col, o.features, o.targets
    else:
        raise D.DataError("give --data FILE or --example vic_elec")
    return D.prepare(df, time_col, features, targets, sort=o.sort, max_fill=o.max_fill)


def prepare(o: FitOptions) -> Prepared:
    """Load and check the data and the options; raise `DataError`/`ArchitectureError` (one line)."""
    series = load_series(o)
    if o.mode not in ("stream", "window"):
        raise D.DataError(f"--mode: choose stream or window, got {o.mode!r}")
    arch = Architecture(
        o.cell, tuple(o.units), o.dropout, o.recurrent_dropout, o.conv1d, o.bidirectional
    )
    min_history = o.min_history or o.seq_len
    if not 1 <= min_history <= o.seq_len:
        raise D.DataError(f"--min-history must be 1..--seq-len ({o.seq_len}), got {min_history}")
    arch.check(o.mode == "stream", min_history, o.seq_len)
    if o.seq_len < 1 or o.horizon < 1:
        raise D.DataError(f"--seq-len and --horizon must be >= 1, got {o.seq_len} and {o.horizon}")
    splits = D.split(series, o.split, o.seq_len + o.horizon)
    return Prepared(series, arch, min_history, splits)
