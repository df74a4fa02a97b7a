"""Duplicates, holes and segments: from rows on a grid to the stretches a model trains on.

Missing-value policy (documented in the README): a step is missing when its row is absent or
any of its cells is empty. A hole of at most `max_fill` consecutive missing steps between two
complete steps is filled by linear interpolation in time (as the device does); a longer hole
splits the series into segments, and no training example, window or evaluation origin crosses
it (a streaming model starts from zero state at each segment, as the daemon resets on a long
gap). Incomplete steps at the very start or end are dropped, never filled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from seqcast.train.options import DataError
from seqcast.train.timeaxis import RowName

DUPLICATE_POLICIES = ("error", "first", "last", "mean")


@dataclass(frozen=True)
class TimeStats:
    """What the time policy did to the table, for the CLI line and the report."""

    rows_read: int
    duplicates_merged: int = 0  # rows folded into another row with the same timestamp
    holes_filled: int = 0  # holes of <= max_fill steps, interpolated
    cells_filled: int = 0
    long_holes: int = 0  # holes longer than max_fill: segment boundaries
    steps_missing: int = 0  # missing steps inside long holes
    edge_rows_dropped: int = 0  # incomplete rows at the very start or end
    segments: int = 1  # segments kept
    segments_skipped: int = 0  # segments too short for one window
    rows_skipped: int = 0  # rows in those segments
    rows_used: int = 0
    max_fill: int = 3

    def describe(self) -> str:
        parts = [f"{self.rows_used} rows used of {self.rows_read} read"]
        if self.duplicates_merged:
            parts.append(f"{self.duplicates_merged} duplicate rows merged")
        parts.append(
            f"{self.holes_filled} holes of <= {self.max_fill} steps filled "
            f"({self.cells_filled} cells)"
        )
        parts.append(
            f"{self.long_holes} longer holes ({self.steps_missing} steps) -> "
            f"{self.segments} segment{'s' if self.segments != 1 else ''}"
        )
        if self.segments_skipped:
            parts.append(
                f"{self.segments_skipped} segments too short to use skipped "
                f"({self.rows_skipped} rows)"
            )
        if self.edge_rows_dropped:
            parts.append(f"{self.edge_rows_dropped} incomplete rows at the ends dropped")
        return ", ".join(parts)

    def to_json(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.__dict__.items()}


def merge_duplicates(
    steps: np.ndarray,
    values: np.ndarray,
    rows: np.ndarray,
    policy: str,
    row_name: RowName,
    time_col: str,
    shown: list[str],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows sorted by step (stable, so file order within a step) -> one row per step.

    `rows` holds each row's index in the file; `shown` the original timestamp text per row.
    """
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"--duplicates: choose {', '.join(DUPLICATE_POLICIES)}, got {policy!r}")
    same = np.flatnonzero(np.diff(steps) == 0)
    if len(same) == 0:
        return steps, values, 0
    if policy == "error":
        first, second = int(rows[same[0]]), int(rows[same[0] + 1])
        a, b = sorted((first, second))
        raise DataError(
            f"column {time_col!r}: duplicate timestamp {shown[b]!r} at {row_name(b)} "
            f"(also at {row_name(a)}); pass --duplicates first|last|mean to merge them"
        )
    unique, start, counts = np.unique(steps, return_index=True, return_counts=True)
    if policy == "first":
        merged = values[start]
    elif policy == "last":
        merged = values[start + counts - 1]
    else:  # mean of the non-empty cells
        group = np.repeat(np.arange(len(unique)), counts)
        present = ~np.isnan(values)
        sums = np.zeros((len(unique), values.shape[1]))
        np.add.at(sums, group, np.where(present, values, 0.0))
        n = np.zeros((len(unique), values.shape[1]))
        np.add.at(n, group, present)
        with np.errstate(invalid="ignore", divide="ignore"):
            merged = np.where(n > 0, sums / np.maximum(n, 1), np.nan)
    return unique, merged, int(len(steps) - len(unique))


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (exclusive) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


@dataclass(frozen=True)
class Regular:
    """The kept rows: `values[i]` at grid step `steps[i]`; segments start at `segment_starts`."""

    steps: np.ndarray  # int64, increasing
    values: np.ndarray  # float64 (N, C), no NaN
    segment_starts: np.ndarray  # int64 row indices, first is 0
    stats: TimeStats


def fill_and_segment(
    steps: np.ndarray, values: np.ndarray, max_fill: int, stats: TimeStats
) -> Regular:
    """Put distinct-step rows on the full step range, fill short holes, cut at long ones."""
    if max_fill < 0:
        raise DataError(f"--max-fill: must be >= 0, got {max_fill}")
    first = int(steps[0])
    n = int(steps[-1]) - first + 1
    full = np.full((n, values.shape[1]), np.nan)
    full[steps - first] = values
    incomplete = np.isnan(full).any(axis=1)
    starts, stops = _runs(incomplete)
    keep = ~incomplete
    holes_filled = cells_filled = long_holes = steps_missing = edge_dropped = 0
    idx = np.arange(n)
    for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
        at_edge = a == 0 or b == n
        if at_edge:
            edge_dropped += int(np.isin(idx[a:b] + first, steps).sum())
        elif b - a <= max_fill:
            holes_filled += 1
            continue
        else:
            long_holes += 1
            steps_missing += b - a
    if holes_filled:  # interpolate every column over the short holes only
        short = np.zeros(n, bool)
        for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
            if a != 0 and b != n and b - a <= max_fill:
                short[a:b] = True
        for j in range(full.shape[1]):
            gap = short & np.isnan(full[:, j])
            cells_filled += int(gap.sum())
            ok = ~np.isnan(full[:, j])
            full[gap, j] = np.interp(idx[gap], idx[ok], full[ok, j])
        keep |= short
    kept_steps = idx[keep] + first
    breaks = np.flatnonzero(np.diff(kept_steps) != 1) + 1  # a long hole before these rows
    seg_starts = np.concatenate([[0], breaks]) if len(kept_steps) else np.zeros(0, np.int64)
    stats = replace(
        stats,
        holes_filled=holes_filled,
        cells_filled=cells_filled,
        long_holes=long_holes,
        steps_missing=steps_missing,
        edge_rows_dropped=edge_dropped,
        segments=len(seg_starts),
        rows_used=int(keep.sum()),
    )
    return Regular(kept_steps.astype(np.int64), full[keep], seg_starts.astype(np.int64), stats)


def segment_lengths(segment_starts: np.ndarray, n: int) -> np.ndarray:
    return np.diff(np.append(segment_starts, n))


def keep_long_segments(
    segment_starts: np.ndarray, n: int, need: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to keep (bool mask) and the new segment starts, dropping segments shorter than
    `need` rows."""
    lengths = segment_lengths(segment_starts, n)
    long_enough = lengths >= need
    keep = np.repeat(long_enough, lengths)
    kept_lengths = lengths[long_enough]
    new_starts = np.concatenate([[0], np.cumsum(kept_lengths)[:-1]]).astype(np.int64)
    return keep, new_starts if len(kept_lengths) else np.zeros(0, np.int64)
