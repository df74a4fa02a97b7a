"""Everything a training run checks before it trains: options, the data, the splits. Imports
pandas but not TensorFlow, so a bad file or option fails in a second with one line."""

from __future__ import annotations

from dataclasses import dataclass

from seqcast.edge import calendar, quantiles
from seqcast.train import data as D
from seqcast.train.baselines import seasons_for
from seqcast.train.options import Architecture, FitOptions


@dataclass
class Prepared:
    series: D.Series
    arch: Architecture
    min_history: int
    splits: D.Splits
    calendar: tuple[str, ...] = ()
    quantiles: tuple[float, ...] = ()  # checked and ascending
    anchor_season: int | None = None  # `--predict seasonal`'s season; None: none fits seq_len


def load_series(o: FitOptions) -> D.Series:
    """The table on its grid, with short holes filled; long holes split it into segments."""
    if o.example:
        df, time_col, features, targets = D.load_example(o.example)
        features, targets = o.features or features, o.targets or targets
        row_name = D.table_rows
    elif o.data:
        df, time_col, features, targets = D.read_table(o.data), o.time_col, o.features, o.targets
        row_name = D.row_names_for(o.data)
    else:
        raise D.DataError("give --data FILE or --example vic_elec")
    return D.prepare(
        df,
        time_col,
        features,
        targets,
        sort=o.sort,
        max_fill=o.max_fill,
        interval=o.interval,
        duplicates=o.duplicates,
        row_name=row_name,
    )


def usable_series(o: FitOptions, need: int) -> D.Series:
    """`load_series` without the segments shorter than `need` rows (one window)."""
    return D.drop_short_segments(load_series(o), need)


def prepare(o: FitOptions, need: int | None = None) -> Prepared:
    """Load and check the data and the options; raise `DataError`/`ArchitectureError` (one line).

    Segments shorter than `need` rows are skipped (default seq_len + horizon, one window; the
    sweep passes its longest candidate's, so every candidate trains on the same rows)."""
    if o.seq_len < 1 or o.horizon < 1:
        raise D.DataError(f"--seq-len and --horizon must be >= 1, got {o.seq_len} and {o.horizon}")
    series = usable_series(o, max(need or 0, o.seq_len + o.horizon))
    if o.predict not in ("auto", "level", "change", "seasonal", "smooth"):
        raise D.DataError(
            f"--predict: choose auto, level, change, seasonal or smooth, got {o.predict!r}"
        )
    anchored = o.predict in ("change", "seasonal", "smooth")
    if anchored and not set(series.target_names) & set(series.feature_names):
        raise D.DataError(f"--predict {o.predict}: no target is also a --features column")
    season = anchor_season(o, series)
    if o.predict in ("seasonal", "smooth") and season is None:
        raise D.DataError(
            f"--predict {o.predict}: no season of this grid fits in --seq-len {o.seq_len} "
            f"(seasons: {seasons_for(series.grid) or 'none'}); raise --seq-len or give --season"
        )
    if o.mode not in ("stream", "window"):
        raise D.DataError(f"--mode: choose stream or window, got {o.mode!r}")
    arch = Architecture(
        o.cell, tuple(o.units), o.dropout, o.recurrent_dropout, o.conv1d, o.bidirectional
    )
    min_history = o.min_history or o.seq_len
    if not 1 <= min_history <= o.seq_len:
        raise D.DataError(f"--min-history must be 1..--seq-len ({o.seq_len}), got {min_history}")
    arch.check(o.mode == "stream", min_history, o.seq_len)
    qs = quantiles_of(o, series)
    splits = D.split(series, o.split, o.seq_len + o.horizon)
    return Prepared(series, arch, min_history, splits, calendar_of(o, series), qs, season)


def anchor_season(o: FitOptions, series: D.Series) -> int | None:
    """The season a seasonal anchor looks back: `--season`, else the longest natural season of
    the grid (a week before a day) that fits in one window, since the window graph reads the
    anchor from its own input; None when none fits."""
    fitting = [s for s in ([o.season] if o.season else seasons_for(series.grid)) if s <= o.seq_len]
    return max(fitting) if fitting and max(fitting) > 1 else None


def quantiles_of(o: FitOptions, series: D.Series) -> tuple[float, ...]:
    """`--quantiles`, checked (edge/quantiles.py) and sorted; their payload names must not
    collide with a target's."""
    try:
        qs = quantiles.check(o.quantiles)
    except (ValueError, TypeError) as e:  # QuantileError, or not a number
        raise D.DataError(f"--quantiles: {e}") from None
    columns = quantiles.columns(series.target_names, qs)
    clash = sorted({c for c in columns if columns.count(c) > 1})
    if clash:
        raise D.DataError(f"--quantiles: the forecast key {clash[0]!r} is also a target's name")
    return qs


def calendar_of(o: FitOptions, series: D.Series) -> tuple[str, ...]:
    """`--calendar`: auto (by the grid and the training span), none, or a list."""
    spec = o.calendar.strip()
    if spec == "auto":
        return calendar.auto(series.grid, float(series.times[-1] - series.times[0]))
    if spec in ("none", ""):
        return ()
    try:
        return calendar.check([n.strip() for n in spec.split(",")])
    except calendar.CalendarError as e:
        raise D.DataError(f"--calendar: {e}") from None
