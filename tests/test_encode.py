"""edge/path/encode.py: encode_forecast structure, rejections and exact round trips."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from seqcast.edge.path.encode import encode_forecast
from tests.codec_cases import RA, ROUND_TRIP

# -- encode_forecast -------------------------------------------------------------------------


def test_encode_forecast_structure() -> None:
    values = np.array([[4382.8, 21.4], [4400.1, 21.0], [4390.0, 20.5]], dtype=np.float32)
    raw = encode_forecast(
        "meter-7", 1700000000, "demand@0123456789ab", ["Demand", "Temp"], 1800, values
    )
    assert isinstance(raw, bytes) and b" " not in raw
    doc = json.loads(raw)
    assert list(doc) == ["stream", "ts", "model", "forecast"]
    assert doc["stream"] == "meter-7" and doc["model"] == "demand@0123456789ab"
    assert doc["ts"] == RA and b'"ts":1700000000.0,' in raw  # a float even from an int
    assert [f["ts"] for f in doc["forecast"]] == [RA + 1800.0, RA + 3600.0, RA + 5400.0]
    assert [list(f) for f in doc["forecast"]] == [["ts", "Demand", "Temp"]] * 3
    for k, f in enumerate(doc["forecast"]):
        assert [f["Demand"], f["Temp"]] == [float(str(v)) for v in values[k]]
    assert b'"Demand":4382.8,' in raw and b'"Temp":21.4}' in raw  # not 4382.7998046875


def test_encode_forecast_utf8_stream_name() -> None:
    raw = encode_forecast("zähler-7", 1.0, "m@x", ["y"], 1.0, np.zeros((1, 1)))
    assert "zähler-7".encode() in raw
    assert json.loads(raw.decode("utf-8"))["stream"] == "zähler-7"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"values": np.zeros((3,))}, "shape"),
        ({"values": np.zeros((3, 2))}, "shape"),
        ({"values": np.array([[np.nan]])}, "non-finite"),
        ({"targets": ["ts"]}, "'ts'"),
        ({"interval_s": 0.0}, "interval_s"),
        ({"ts": math.inf}, "finite"),
    ],
)
def test_encode_forecast_rejects(kwargs: dict[str, object], text: str) -> None:
    args: dict[str, object] = {
        "stream": "s",
        "ts": RA,
        "model_id": "m",
        "targets": ["y"],
        "interval_s": 60.0,
        "values": np.zeros((2, 1)),
        **kwargs,
    }
    with pytest.raises(ValueError, match=text):
        encode_forecast(**args)  # type: ignore[arg-type]


@ROUND_TRIP
@given(
    values=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.tuples(st.integers(1, 24), st.integers(1, 3)),
        elements=st.floats(allow_nan=False, allow_infinity=False, width=32),
    ),
    ts=st.floats(0.0, 4e9),
    interval=st.floats(1e-3, 86400.0),
)
def test_encode_forecast_round_trips_exactly(
    values: np.ndarray, ts: float, interval: float
) -> None:
    targets = [f"t{j}" for j in range(values.shape[1])]
    doc = json.loads(encode_forecast("s", ts, "m", targets, interval, values))
    assert doc["ts"] == ts
    for k, item in enumerate(doc["forecast"], 1):
        assert item["ts"] == ts + k * interval
        # each value reads back as the same float32 ...
        got = np.array([item[t] for t in targets], np.float64).astype(np.float32)
        assert got.tobytes() == values[k - 1].astype(np.float32).tobytes()
    # ... and is written with the fewest digits that do that (numpy's shortest float32 repr)
    raw = encode_forecast("s", ts, "m", targets, interval, values).decode()
    for v in values.astype(np.float32).ravel():
        shortest = str(v)
        digits = len(shortest.split("e")[0].replace("-", "").replace(".", "").strip("0"))
        assert digits <= 9 and repr(float(shortest)) in raw


def test_forecast_payload_is_smaller_at_float32_precision() -> None:
    """The issue's example: 5.963619978111741 (float64 digits of a float32 result) -> 5.96362."""
    values = np.array([[5.963619978111741], [1234.5678]], np.float64)
    raw = encode_forecast("meter-1", RA, "m@0123456789ab", ["y"], 1800.0, values)
    assert b'"y":5.96362}' in raw and b'"y":1234.5677}' in raw
    assert b"5.963619978111741" not in raw


# -- the template encoder is json.dumps, byte for byte ------------------------------------------

# any text, and text made of what a template could trip over ('%', quotes, escapes)
TEXT = st.one_of(st.text(max_size=8), st.text(st.sampled_from('%r%s"\\\x00é ts'), max_size=8))
NAMES = st.lists(TEXT.filter(bool), min_size=1, max_size=4, unique=True).filter(
    lambda names: "ts" not in names
)


@given(
    names=NAMES,
    horizon=st.integers(1, 6),
    data=st.data(),
    stream=TEXT,
    model=TEXT,
    ts=st.floats(0.0, 4e9),
    interval=st.floats(1e-3, 86400.0),
)
def test_the_template_encoder_writes_what_json_dumps_does(
    names: list[str], horizon: int, data: st.DataObject, stream: str, model: str, ts: float,
    interval: float,
) -> None:  # fmt: skip
    from seqcast.edge.path.encode import _encode_forecast_json, encode_rounded

    values = data.draw(
        hnp.arrays(np.float64, (horizon, len(names)), elements=st.floats(allow_nan=False,
                   allow_infinity=False))
    )  # fmt: skip
    want = _encode_forecast_json(stream, ts, model, names, interval, values)
    assert encode_rounded(stream, ts, model, names, interval, values) == want
    assert encode_rounded(stream, ts, model, tuple(names), interval, values) == want  # cached


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("at", [(0, 0), (2, 1)])
def test_one_non_finite_value_among_huge_ones_is_refused(bad: float, at: tuple[int, int]) -> None:
    from seqcast.edge.path.encode import encode_rounded

    values = np.full((3, 2), 1.7e308)  # their sum overflows: each is checked then
    assert encode_rounded("s", 1.0, "m", ("a", "b"), 60.0, values).count(b"1.7e+308") == 6
    values[at] = bad
    with pytest.raises(ValueError, match="non-finite"):
        encode_rounded("s", 1.0, "m", ("a", "b"), 60.0, values)
