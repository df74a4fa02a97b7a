"""Small synthetic series for fast tests (the real data, vic_elec, is for accuracy tests)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def synthetic_frame(n: int = 2400, interval_s: float = 1800.0, seed: int = 0) -> pd.DataFrame:
    """A daily cycle with a slow trend and noise: 'load' follows 'temp' and the time of day."""
    import pandas as pd  # here, not at import: edge-only test runs import this module too

    rng = np.random.default_rng(seed)
    t = np.arange(n)
    day = 86400.0 / interval_s
    temp = 20 + 5 * np.sin(2 * np.pi * t / day - 1.0) + rng.normal(0, 0.5, n)
    load = 100 + 30 * np.sin(2 * np.pi * t / day) + 2 * (temp - 20) + 0.01 * t + rng.normal(0, 2, n)
    times = pd.to_datetime(1.7e9 + t * interval_s, unit="s", utc=True)
    return pd.DataFrame({"time": times.strftime("%Y-%m-%dT%H:%M:%SZ"), "load": load, "temp": temp})


# The columns and a tiny model for fit() on a synthetic CSV; tests override what they need.
SMALL_FIT: dict[str, object] = {
    "time_col": "time",
    "features": ["load", "temp"],
    "targets": ["load"],
    "seq_len": 6,
    "horizon": 3,
    "units": (8,),
    "epochs": 1,
    "predict": "level",  # auto could train twice
    "report": False,
    "baselines": "naive",  # AutoTheta is tested in test_baselines.py; it costs seconds per fit
}


def write_csv(path: Path, **kwargs: object) -> Path:
    synthetic_frame(**kwargs).to_csv(path, index=False)  # type: ignore[arg-type]
    return path
