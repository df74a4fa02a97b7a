"""What a training run is asked to do, and the error a user can fix: light, no TensorFlow or
pandas, so the CLI can parse and check options before importing either."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class DataError(ValueError):
    """Bad input data or options: one line that names the problem (the CLI exits with code 2)."""


@dataclass
class FitOptions:
    data: str | None = None
    example: str | None = None
    time_col: str = "time"
    features: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    seq_len: int = 48
    horizon: int = 4
    mode: str = "stream"  # "stream": window + step models; "window": window model only
    cell: str = "lstm"
    units: tuple[int, ...] = (64,)
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    conv1d: bool = False
    bidirectional: bool = False
    min_history: int | None = None
    epochs: int = 200  # a safety net: early stopping on validation is the usual stop
    batch_size: int = 32
    patience: int = 6
    learning_rate: float = 3e-3
    train_len: int | None = None  # streaming training sequence length (default 4 * seq_len)
    quantize: str = "float32"
    sort: bool = False
    max_fill: int = 3  # holes of up to this many missing steps are interpolated
    interval: str | None = None  # pandas offset alias (1h, MS, ...); None: inferred
    duplicates: str = "error"  # rows with the same timestamp: error, first, last, mean
    season: int | None = None
    baselines: str = "all"  # "all", or "naive": persistence and seasonal naive only (no AutoTheta)
    calendar: str = "auto"  # "auto", "none" or a comma-separated list (edge/calendar.py NAMES)
    # "level"; "change": each target's change from its latest value; "seasonal": from its value
    # a season back; "smooth": from smoothed level + season (train/smoothing.py); "auto": level,
    # unless it loses to the naive forecasts on validation (train/validation.py)
    predict: str = "auto"
    quantiles: tuple[float, ...] = ()  # prediction intervals, e.g. (0.1, 0.9): edge/quantiles.py
    seed: int = 0
    name: str | None = None
    out: str = "model.seqcast"
    report: bool = True
    verbose: int | None = None


MASK_VALUE = 1.0e9  # marks left padding; scaled data never gets near it


class ArchitectureError(ValueError):
    """An impossible combination of options, explained."""


@dataclass(frozen=True)
class Architecture:
    cell: str = "lstm"  # "lstm" | "gru"
    units: tuple[int, ...] = (64,)
    dropout: float = 0.0
    recurrent_dropout: float = 0.0
    conv1d: bool = False
    bidirectional: bool = False

    @property
    def streaming(self) -> bool:
        """Can run one step at a time with explicit state."""
        return not (self.conv1d or self.bidirectional)

    def check(self, want_stream: bool, min_history: int, seq_len: int) -> None:
        if self.cell not in ("lstm", "gru"):
            raise ArchitectureError(f"--cell: choose lstm or gru, got {self.cell!r}")
        if not self.units or any(u < 1 for u in self.units):
            raise ArchitectureError(f"--units: need positive layer sizes, got {self.units}")
        for name, v in (
            ("--dropout", self.dropout),
            ("--recurrent-dropout", self.recurrent_dropout),
        ):
            if not 0 <= v < 1:
                raise ArchitectureError(f"{name}: must be in [0, 1), got {v}")
        if want_stream and self.bidirectional:
            raise ArchitectureError(
                "--bidirectional cannot make a streaming bundle: "
                "its backward pass reads the window "
                "from the newest sample back to the oldest, so it must see the whole window again "
                "for every new sample and has no per-step state to carry. Add --mode window."
            )
        if want_stream and self.conv1d:
            raise ArchitectureError(
                "--conv1d cannot make a streaming bundle: "
                "the convolution and pooling work on whole "
                "windows, so there is no single-step form. Add --mode window."
            )
        if min_history < seq_len and not self.streaming:
            raise ArchitectureError(
                "--min-history below --seq-len needs a unidirectional recurrent model "
                "(no --conv1d, no --bidirectional)"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "cell": self.cell,
            "units": list(self.units),
            "dropout": self.dropout,
            "recurrent_dropout": self.recurrent_dropout,
            "conv1d": self.conv1d,
            "bidirectional": self.bidirectional,
        }
