"""Bad training input: one clear error line naming the problem, exit code 2, nothing trained."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from seqcast.train import data as D
from seqcast.train.cli import main
from tests.synth import synthetic_frame

pytestmark = pytest.mark.train


def _fit(csv: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--data",
        str(csv),
        "--time-col",
        "time",
        "--features",
        "load,temp",
        "--targets",
        "load",
        "--seq-len",
        "12",
        "--horizon",
        "3",
        "--epochs",
        "1",
        "--no-report",
        "--out",
        str(csv.with_suffix(".seqcast")),
        *extra,
    ]


def _write(tmp_path: Path, df: pd.DataFrame) -> Path:
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    return p


def _bad(tmp_path: Path, capsys, df: pd.DataFrame, *extra: str) -> str:
    csv = _write(tmp_path, df)
    code = main(_fit(csv, *extra))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("seqcast-train: error: ")
    assert not csv.with_suffix(".seqcast").exists()
    return err[0]


def test_missing_column(tmp_path, capsys):
    line = _bad(tmp_path, capsys, synthetic_frame(300).drop(columns=["temp"]))
    assert "column 'temp' not found" in line and "time, load" in line


def test_non_numeric(tmp_path, capsys):
    df = synthetic_frame(300).astype({"load": object})
    df.loc[17, "load"] = "12,5kW"
    line = _bad(tmp_path, capsys, df)
    assert "'load' is not numeric: line 19 holds '12,5kW'" in line  # row 17 + header, 1-based


def test_too_few_rows(tmp_path, capsys):
    line = _bad(tmp_path, capsys, synthetic_frame(60))
    assert "too few rows" in line and "at least 15" in line


def test_unsorted(tmp_path, capsys):
    df = synthetic_frame(300)
    df.iloc[[10, 11]] = df.iloc[[11, 10]].to_numpy()
    line = _bad(tmp_path, capsys, df)
    assert "not sorted: line 13" in line and "than line 12" in line and "--sort" in line


def test_duplicate_timestamp(tmp_path, capsys):
    df = synthetic_frame(300)
    df.loc[20, "time"] = df.loc[19, "time"]
    line = _bad(tmp_path, capsys, df)
    assert f"column 'time': duplicate timestamp '{df.loc[19, 'time']}' at line 22" in line
    assert "(also at line 21)" in line and "--duplicates first|last|mean" in line


def test_long_gap_splits_short_gap_is_filled():
    df = synthetic_frame(300)
    series = D.prepare(df.drop(index=range(100, 110)), "time", ["load", "temp"], ["load"])
    assert len(series) == 290 and series.segment_starts.tolist() == [0, 100]
    assert series.stats.long_holes == 1 and series.stats.steps_missing == 10
    series = D.prepare(df.drop(index=[100, 101]), "time", ["load", "temp"], ["load"])
    assert len(series) == 300 and series.filled == 6  # two rows x (load, temp, target load)
    assert series.stats.holes_filled == 1 and series.segment_starts.tolist() == [0]
    expected = (df.loc[99, "load"] * 2 + df.loc[102, "load"]) / 3  # linear in time
    assert series.features[100, 0] == pytest.approx(expected)


def test_nothing_trainable_is_one_line_with_numbers(tmp_path, capsys):
    df = synthetic_frame(300)
    holes = [i for i in range(300) if i % 10 in (8, 9, 0, 1)]  # 4-step holes every 10 rows
    line = _bad(tmp_path, capsys, df.drop(index=holes))
    assert "nothing to train on" in line and "in 30 segments, the longest 6 rows" in line
    assert "needs 15 consecutive rows" in line and "--max-fill 3" in line


def test_sort_flag_sorts():
    df = synthetic_frame(300)
    shuffled = df.sample(frac=1.0, random_state=1)
    s = D.prepare(shuffled, "time", ["load"], ["load"], sort=True)
    np.testing.assert_allclose(s.features[:, 0], df["load"].to_numpy())
    assert s.interval_s == 1800.0


def test_parquet_and_unix_seconds(tmp_path):
    df = synthetic_frame(300)
    df["time"] = 1_700_000_000 + 1800 * np.arange(300)
    df.to_parquet(tmp_path / "d.parquet")
    s = D.prepare(D.read_table(tmp_path / "d.parquet"), "time", ["load", "temp"], ["load"])
    assert len(s) == 300 and s.times[0] == 1.7e9


def test_scaler_is_fitted_on_train_only():
    df = synthetic_frame(1000)
    df.loc[800:, "load"] += 1000.0  # a shift that only the test part sees
    s = D.prepare(df, "time", ["load"], ["load"])
    parts = D.split(s, (0.7, 0.15, 0.15), 20)
    sc = D.FittedScaler.fit(parts.train)
    assert sc.feature_mean[0] == pytest.approx(df["load"][:700].mean())


def test_config_file_sets_options_and_flags_win(tmp_path):
    from seqcast.train.cli import build_parser, options_from

    cfg = tmp_path / "train.toml"
    cfg.write_text(
        'data = "x.csv"\nfeatures = ["a", "b"]\nseq-len = 24\nunits = [32, 16]\n'
        'quantize = "dynamic"\n'
    )
    o = options_from(build_parser().parse_args(["fit", "--config", str(cfg), "--seq-len", "12"]))
    assert o.data == "x.csv" and o.features == ["a", "b"] and o.units == (32, 16)
    assert o.quantize == "dynamic" and o.seq_len == 12  # the flag overrides the file


def test_config_file_unknown_key_is_one_line(tmp_path, capsys):
    cfg = tmp_path / "train.toml"
    cfg.write_text("seq_len = 24\nsequence = 3\n")
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"seqcast-train: error: --config {cfg}: unknown key 'sequence'"
