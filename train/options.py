"""What a training run is asked to do, and the error a user can fix: light, no TensorFlow or
pandas, so the CLI can parse and check options before importing either."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    epochs: int = 20
    batch_size: int = 32
    patience: int = 3
    learning_rate: float = 3e-3
    train_len: int | None = None  # streaming training sequence length (default 4 * seq_len)
    quantize: str = "float32"
    sort: bool = False
    max_fill: int = 3
    season: int | None = None
    seed: int = 0
    name: str | None = None
    out: str = "model.seqcast"
    report: bool = True
    verbose: int | None = None
