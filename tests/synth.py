"""Small synthetic series for fast tests (the real data, vic_elec, is for accuracy tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_frame(n: int = 2400, interval_s: float = 1800.0, seed: int = 0) -> pd.DataFrame:
    """A daily cycle with a slow trend and noise: 'load' follows 'temp' and the time of day."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    day = 86400.0 / interval_s
    temp = 20 + 5 * np.sin(2 * np.pi * t / day - 1.0) + rng.normal(0, 0.5, n)
    load = 100 + 30 * np.sin(2 * np.pi * t / day) + 2 * (temp - 20) + 0.01 * t + rng.normal(0, 2, n)
    times = pd.to_datetime(1.7e9 + t * interval_s, unit="s", utc=True)
    return pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "load": load, "temp": temp})


def write_csv(path: Path, **kwargs: object) -> Path:
    synthetic_frame(**kwargs).to_csv(path, index=False)  # type: ignore[arg-type]
    return path
