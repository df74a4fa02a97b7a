"""Prediction intervals, the pure parts: quantile names and checks (edge/quantiles.py), the
output layout, the payload with quantile columns, and coverage arithmetic. No TensorFlow."""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqcast.edge import quantiles as Q
from seqcast.edge.path.encode import encode_forecast


@pytest.mark.parametrize(
    ("q", "want"),
    [(0.1, "p10"), (0.9, "p90"), (0.05, "p5"), (0.025, "p2.5"), (0.999, "p99.9"), (0.001, "p0.1")],
)
def test_quantile_names(q: float, want: str) -> None:
    assert Q.name(q) == want


# quantiles as users write them: up to 6 decimals
written = st.integers(1, 999_999).filter(lambda n: n != 500_000).map(lambda n: n / 1e6)


@given(written)
def test_a_name_reads_back_as_its_quantile(q: float) -> None:
    name = Q.name(q)
    assert name.startswith("p") and "e" not in name.lower() and not name.endswith(".")
    assert Decimal(name[1:]) / 100 == Decimal(repr(q))


@given(st.lists(written, min_size=1, max_size=6, unique=True))
def test_check_sorts_and_names_are_distinct(qs: list[float]) -> None:
    got = Q.check(qs)
    assert list(got) == sorted(qs)
    assert len({Q.name(q) for q in got}) == len(got)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([0.0, 0.9], "between 0 and 1"),
        ([0.1, 1.0], "between 0 and 1"),
        ([-0.2], "between 0 and 1"),
        ([float("nan")], "between 0 and 1"),
        ([0.1, 0.5, 0.9], "0.5 is not allowed"),
        ([0.9, 0.1, 0.9], r"duplicate quantiles \(p90\)"),
    ],
)
def test_bad_quantiles_are_refused_in_one_line(values: list[float], message: str) -> None:
    with pytest.raises(Q.QuantileError, match=message) as e:
        Q.check(values)
    assert "\n" not in str(e.value)


def test_the_output_layout_puts_each_targets_quantiles_after_it() -> None:
    assert Q.columns(["a", "b"], [0.1, 0.9]) == ["a", "a_p10", "a_p90", "b", "b_p10", "b_p90"]
    assert Q.columns(["a", "b"], []) == ["a", "b"]
    assert Q.point_index(2, 2) == [0, 3]


def test_a_forecast_with_quantile_columns_is_encoded_like_json_dumps() -> None:
    columns = Q.columns(["Demand", "Price"], [0.1, 0.9])
    values = np.array([[4000.1, 3900.2, 4100.3, 50.5, 40.25, 60.75]] * 2)  # (H, C)
    payload = encode_forecast("m-1", 1.7e9, "q@0123456789ab", columns, 1800.0, values)
    doc = json.loads(payload)
    step = doc["forecast"][0]
    assert list(step) == ["ts", *columns]
    assert columns == ["Demand", "Demand_p10", "Demand_p90", "Price", "Price_p10", "Price_p90"]
    # float32-exact, like the point: the shortest decimal that reads back as the float32
    assert np.float32(step["Demand_p10"]) == np.float32(3900.2)
    assert repr(step["Demand_p10"]) == "3900.2" and repr(step["Price_p90"]) == "60.75"
    want = {"stream": "m-1", "ts": 1.7e9, "model": "q@0123456789ab", "forecast": doc["forecast"]}
    assert payload == json.dumps(want, separators=(",", ":"), ensure_ascii=False).encode()


def test_coverage_counts_the_truth_at_or_below_each_quantile() -> None:
    from seqcast.train.quantiles import coverage, split

    # (M=4, H=1, C=3): one target with point, p10, p90
    y = np.array([[[10.0, 8.0, 12.0]], [[10.0, 9.0, 11.0]], [[0.0, -1.0, 1.0]], [[5, 5, 5]]])
    point, bands = split(y, 1, 2)
    assert point.shape == (4, 1, 1) and bands.shape == (4, 1, 1, 2)
    assert bands[0, 0, 0].tolist() == [8.0, 12.0]
    truth = np.array([[[7.0]], [[10.0]], [[2.0]], [[5.0]]])  # below, inside, above, on both
    got = coverage(truth, bands, (0.1, 0.9), ["load"])
    assert got["quantiles"]["p10"]["coverage"] == 0.5  # 7 <= 8, 5 <= 5
    assert got["quantiles"]["p90"]["coverage"] == 0.75  # all but 2 > 1
    assert got["interval"]["coverage"] == 0.5
    assert got["interval"]["mean_width"] == pytest.approx((4 + 2 + 2 + 0) / 4)
    assert got["interval"]["nominal"] == 0.8
    # pinball at p10: e = truth - q: -1 -> 0.9, 1 -> 0.1, 3 -> 0.3, 0 -> 0
    assert got["quantiles"]["p10"]["pinball"] == pytest.approx((0.9 + 0.1 + 0.3 + 0) / 4)
