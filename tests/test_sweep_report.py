"""`seqcast-train sweep`'s verdict, without training: hand-made rows in, recommendation or warning
out. A length is recommended only if its model beats the better naive baseline."""

from __future__ import annotations

import io
import json

import pytest

for _module in ("tensorflow", "keras", "pandas"):  # importing the sweep module loads the trainer
    pytest.importorskip(_module)

from seqcast.train.candidate import LabelBeforeTable  # noqa: E402
from seqcast.train.compare import SweepRow, decide, decision_lines, format_sweep  # noqa: E402
from seqcast.train.evaluate import format_table  # noqa: E402
from seqcast.train.options import FitOptions  # noqa: E402
from seqcast.train.sweep import sweep_doc  # noqa: E402

pytestmark = pytest.mark.train


def row(L: int, val: float, *, persistence: float, seasonal: float, cost: float = 5.0) -> SweepRow:
    """A stream-mode candidate whose model has validation MAE `val`."""
    return SweepRow(
        seq_len=L,
        val_mae_window=val + 0.1,
        val_mae_stream=val,
        val_mae_persistence=persistence,
        val_mae_seasonal_naive=seasonal,
        test_mae=val,
        train_seconds=1.0,
        bundle_bytes=10_000,
        window_us=cost * 2,
        stream_us=cost,
        bundle=f"seq{L}.seqcast",
    )


def test_a_candidate_that_beats_the_baseline_is_recommended():
    rows = [
        row(12, 2.0, persistence=5.0, seasonal=2.5),
        row(48, 3.0, persistence=5.0, seasonal=2.5),
    ]
    d = decide(rows)
    assert d.recommended is rows[0] and d.cheapest is rows[0]
    assert (d.baseline, d.baseline_mae) == ("seasonal_naive", 2.5)
    lines = decision_lines(d)
    assert lines[0].startswith("recommended: --seq-len 12 (lowest validation MAE, stream 2.0000")
    assert "seasonal_naive 2.5000" in lines[0]
    assert not any("warning" in line for line in lines)
    doc = sweep_doc(FitOptions(), [12, 48], rows)
    assert doc["recommended"] == 12 and doc["cheapest_within_2pct"] == 12
    assert doc["beats_baseline"] is True


def test_when_every_candidate_loses_nothing_is_recommended_and_a_warning_names_the_baseline():
    rows = [
        row(6, 16.69, persistence=2.9, seasonal=5.1),
        row(12, 17.17, persistence=2.9, seasonal=5.1),
    ]
    d = decide(rows)
    assert d.recommended is None and d.cheapest is None and d.lowest is rows[0]
    assert (d.baseline, d.baseline_mae) == ("persistence", 2.9)

    text = format_sweep(rows)
    verdict = text.splitlines()[-2:]
    assert verdict[0].startswith("warning: no candidate beats the naive baseline")
    assert "persistence has validation MAE 2.9000" in verdict[0]
    assert "16.6900 (seq_len 6, stream)" in verdict[0]
    assert verdict[1].startswith("  advice: ") and "--epochs" in verdict[1]
    assert "recommended" not in text and "best" not in text

    doc = json.loads(json.dumps(sweep_doc(FitOptions(), [6, 12], rows), allow_nan=False))
    assert doc["recommended"] is None and doc["cheapest_within_2pct"] is None
    assert doc["beats_baseline"] is False
    assert doc["baseline"] == {"method": "persistence", "val_mae": 2.9}
    assert doc["lowest_val_mae_seq_len"] == 6
    assert {"options", "seq_lens", "rows"} <= doc.keys()


def test_a_cheaper_length_that_loses_to_the_baseline_is_not_offered():
    rows = [
        row(48, 2.49, persistence=5.0, seasonal=2.5, cost=20.0),  # beats seasonal_naive
        row(12, 2.52, persistence=5.0, seasonal=2.5, cost=5.0),  # within 2 %, but loses
    ]
    d = decide(rows)
    assert d.recommended is rows[0] and d.cheapest is rows[0]


def test_the_summary_table_has_a_label_line_above_its_header():
    lines = format_sweep([row(6, 2.0, persistence=5.0, seasonal=2.5)]).splitlines()
    assert lines[0].startswith("sweep summary per seq_len")
    assert "val MAE" in lines[1] and lines[1].split()[0] == "seq_len"


def test_each_fit_table_gets_its_label_just_before_it():
    out = io.StringIO()
    labelled = LabelBeforeTable(out, "seq_len 24 (1 of 2): test-split error by method")
    labelled.write("Epoch 1/1\n")
    labelled.write(format_table({"window": {"mae": 1.0, "rmse": 2.0}}))
    labelled.write("\n")
    labelled.write(format_table({}))  # a second table in the same fit() is not labelled again
    lines = out.getvalue().splitlines()
    assert lines[0] == "Epoch 1/1"
    assert lines[1] == "seq_len 24 (1 of 2): test-split error by method"
    assert lines[2].startswith("method") and lines.count(lines[1]) == 1
