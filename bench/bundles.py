"""Benchmark bundles: trained with `train.fit.fit` on a synthetic series for one epoch (accuracy is
irrelevant for cost), cached under `bench/results/.cache/` by configuration.

Building runs in worker processes (`python -m bench.bundles CACHE KEY...`), so the benchmark
process never pays for TensorFlow's import unless it needs Keras itself.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import PY, PYTHONPATH, ROOT, log

FEATURES = ["load", "temp"]
TARGETS = ["load"]
HORIZON = 4
UNITS = 64
SERIES_ROWS = 2000
SPLIT = (0.5, 0.15, 0.35)  # the test split must hold 2 * seq_len rows for the self-test vectors
INTERVAL_S = 1800.0
# where replays start: 2001 (far behind the device clock, so nothing is "in the future"), on
# the bundles' grid (their series start at 1.7e9), so the daemon steps every sample at once
TS0 = 1.7e9 - INTERVAL_S * 388_889
# bump when the recipe below changes, so cached bundles are rebuilt (2: grid; 3: the level
# model pinned, as measured before `--predict auto` became the default)
RECIPE = 3


@dataclass(frozen=True, order=True)
class BundleSpec:
    seq_len: int = 48
    cell: str = "lstm"
    quant: str = "float32"

    @property
    def key(self) -> str:
        recipe = json.dumps([RECIPE, UNITS, HORIZON, SERIES_ROWS, SPLIT, FEATURES, TARGETS])
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
        return f"{self.cell}{UNITS}-L{self.seq_len}-{self.quant}-{digest}"

    @classmethod
    def from_key(cls, key: str) -> BundleSpec:
        cell_units, seq, quant, _ = key.split("-")
        return cls(int(seq[1:]), cell_units.removesuffix(str(UNITS)), quant)


def synthetic_rows(n: int = SERIES_ROWS, seed: int = 0) -> list[tuple[float, float, float]]:
    """(ts, load, temp): a daily cycle with a trend and noise (after tests/synth.py)."""
    rng = random.Random(seed)
    day = 86400.0 / INTERVAL_S
    rows = []
    for t in range(n):
        temp = 20 + 5 * math.sin(2 * math.pi * t / day - 1.0) + rng.gauss(0, 0.5)
        load = (
            100
            + 30 * math.sin(2 * math.pi * t / day)
            + 2 * (temp - 20)
            + 0.01 * t
            + rng.gauss(0, 2)
        )
        rows.append((1.7e9 + t * INTERVAL_S, load, temp))
    return rows


def write_series(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", *FEATURES])
        for ts, load, temp in synthetic_rows():
            w.writerow(
                [time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)), repr(load), repr(temp)]
            )
    return path


def path_for(cache: Path, spec: BundleSpec) -> Path:
    return cache / f"{spec.key}.seqcast"


def ensure(specs: list[BundleSpec], cache: Path, workers: int = 2) -> dict[BundleSpec, Path]:
    """Every spec's bundle path, building the missing ones in `workers` processes."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = sorted(
        {s for s in specs if not path_for(cache, s).exists()}, key=lambda s: -s.seq_len
    )  # longest conversions first
    if missing:
        t0 = time.monotonic()
        log(
            f"building {len(missing)} bundle(s) in {min(workers, len(missing))} process(es) "
            f"(cached in {cache})"
        )
        groups = [missing[i::workers] for i in range(min(workers, len(missing)))]
        logf = (cache / "build.log").open("a")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": PYTHONPATH}
        every_core = set(range(os.cpu_count() or 1))  # undo any pinning of the benchmark process
        procs = [
            subprocess.Popen(
                [PY, "-m", "bench.bundles", str(cache), *(s.key for s in g)],
                cwd=ROOT,
                stdout=logf,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=lambda: os.sched_setaffinity(0, every_core),
            )
            for g in groups
        ]
        codes = [p.wait() for p in procs]
        logf.close()
        if any(codes):
            raise RuntimeError(f"bundle build failed (exit {codes}); see {cache / 'build.log'}")
        log(f"bundles built in {time.monotonic() - t0:.0f} s")
    return {s: path_for(cache, s) for s in specs}


def _build(cache: Path, keys: list[str]) -> None:
    from seqcast.train.fit import FitOptions, fit

    series = write_series(cache / f"series-{os.getpid()}.csv")
    try:
        for key in keys:
            spec = BundleSpec.from_key(key)
            out = path_for(cache, spec)
            tmp = out.with_name(out.stem + f".{os.getpid()}.tmp.seqcast")
            t0 = time.monotonic()
            fit(
                FitOptions(
                    data=str(series),
                    time_col="time",
                    features=FEATURES,
                    targets=TARGETS,
                    split=SPLIT,
                    seq_len=spec.seq_len,
                    horizon=HORIZON,
                    cell=spec.cell,
                    units=(UNITS,),
                    epochs=1,
                    calendar="none",  # the figures are of the data path without calendar inputs
                    # one model kind, not auto's pick on validation after one epoch: the graph
                    # the figures time must not depend on a near tie (auto also trains 4 models)
                    predict="level",
                    baselines="naive",  # the bench measures cost, not accuracy
                    quantize=spec.quant,
                    report=False,
                    verbose=0,
                    name=key,
                    out=str(tmp),
                )
            )
            tmp.replace(out)
            print(f"built {key} in {time.monotonic() - t0:.1f} s ({asdict(spec)})", flush=True)
    finally:
        series.unlink(missing_ok=True)


if __name__ == "__main__":
    _build(Path(sys.argv[1]), sys.argv[2:])
