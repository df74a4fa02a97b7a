"""edge/path/decode.py: JSON objects and arrays, timestamps, CSV and auto-detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from seqcast.edge.path.decode import Decoded, PayloadDecoder, PayloadError, Sample, parse_timestamp
from tests.codec_cases import FEATURES, FINITE, RA, ROUND_TRIP, decode, dumps, error

T_2014 = 1_420_030_800.0  # 2014-12-31T13:00:00Z


# -- JSON ------------------------------------------------------------------------------------


def test_json_object_exact_values() -> None:
    out = decode(b'{"ts": 1700000000.5, "Demand": 4382.8, "Temperature": 21.4}')
    assert out == Decoded([Sample(1700000000.5, (4382.8, 21.4))], 0)


def test_json_object_missing_ts_means_received_at_and_ints_become_floats() -> None:
    out = decode(b' \n {"Temperature": -3, "Demand": 12}')
    assert out.samples == [Sample(RA, (12.0, -3.0))]
    assert all(type(v) is float for v in out.samples[0].values)
    assert type(out.samples[0].ts) is float


def test_json_object_integer_ts_and_extra_fields_counted() -> None:
    out = decode(b'{"ts": 1600000000, "Demand": 1, "Temperature": 2, "rssi": -70, "id": "x"}')
    assert out.samples == [Sample(1600000000.0, (1.0, 2.0))]
    assert type(out.samples[0].ts) is float
    assert out.extra_fields == 2


def test_json_array_keeps_array_order() -> None:
    payload = dumps(
        [
            {"ts": 300.0, "Demand": 3.0, "Temperature": 30.0},
            {"ts": 100.0, "Demand": 1.0, "Temperature": 10.0, "x": 1},
            {"ts": "2014-12-31T13:00:00Z", "Demand": 2.0, "Temperature": 20.0},
        ]
    )
    out = decode(payload)
    assert [s.ts for s in out.samples] == [300.0, 100.0, T_2014]
    assert [s.values for s in out.samples] == [(3.0, 30.0), (1.0, 10.0), (2.0, 20.0)]
    assert out.extra_fields == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2014-12-31T13:00:00Z", T_2014),
        ("2014-12-31T13:00:00+00:00", T_2014),
        ("2014-12-31T13:00:00+10:00", T_2014 - 10 * 3600),
        ("2014-12-31T13:00:00-05:30", T_2014 + 5.5 * 3600),
        ("2014-12-31T13:00:00", T_2014),  # naive means UTC
        ("2014-12-31 13:00:00", T_2014),
        ("2014-12-31T13:00:00.25Z", T_2014 + 0.25),
        ("2014-12-31T13:00:00.125+10:00", T_2014 - 36000 + 0.125),
        ("2014-12-31", T_2014 - 13 * 3600),
    ],
)
def test_iso_8601_variants(text: str, expected: float) -> None:
    assert parse_timestamp(text) == expected
    out = decode(dumps({"ts": text, "Demand": 1, "Temperature": 2}))
    assert out.samples[0].ts == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (1700000000, RA), (1.5, 1.5), (np.float64(2.5), 2.5)]
)
def test_parse_timestamp_numbers(value: object, expected: float) -> None:
    ts = parse_timestamp(value)
    assert ts == expected and type(ts) is float


@pytest.mark.parametrize(
    "value",
    [
        True,
        None,
        "yesterday",
        "",
        "1700000000",
        math.nan,
        math.inf,
        -1.0,
        10**400,
        [1],
        {},
        "1969-12-31T23:59:59Z",
        "2014-12-31T25:00:00Z",
    ],
)
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(PayloadError) as info:
        parse_timestamp(value)
    assert info.value.reason == "invalid_timestamp"


# -- CSV -------------------------------------------------------------------------------------


def test_csv_without_and_with_timestamps() -> None:
    payload = b"4382.8,21.4\r\n\r\n1600000000,1,2\n  \n2014-12-31T13:00:00Z, -1.5e3 ,0\n"
    out = decode(payload)
    assert out == Decoded(
        [Sample(RA, (4382.8, 21.4)), Sample(1.6e9, (1.0, 2.0)), Sample(T_2014, (-1500.0, 0.0))],
        0,
    )


def test_csv_single_feature() -> None:
    dec = PayloadDecoder(["Demand"])
    assert dec.decode(b"42", RA).samples == [Sample(RA, (42.0,))]
    assert dec.decode(b"1600000000.5,42", RA).samples == [Sample(1600000000.5, (42.0,))]


# -- auto sniffing ---------------------------------------------------------------------------


def test_auto_picks_senml_only_without_feature_keys() -> None:
    senml = [{"n": "Demand", "v": 1.0}, {"n": "Temperature", "v": 2.0}]
    assert decode(dumps(senml)).samples == [Sample(RA, (1.0, 2.0))]
    # Has SenML-looking key "n" but also feature keys: a JSON array of objects.
    mixed = [{"n": "x", "Demand": 1.0, "Temperature": 2.0}]
    assert decode(dumps(mixed)) == Decoded([Sample(RA, (1.0, 2.0))], 1)
    # format="json" never tries SenML.
    assert error(dumps(senml), format="json").reason == "missing_field"


def test_auto_ignores_senml_keys_that_are_feature_names() -> None:
    dec = PayloadDecoder(["v", "t"])
    assert dec.decode(b'[{"v": 1, "t": 2}]', RA).samples == [Sample(RA, (1.0, 2.0))]


def test_fmt_csv_does_not_sniff() -> None:
    assert error(b'{"Demand": 1, "Temperature": 2}', format="csv").reason == "not_a_number"


# -- round trips -----------------------------------------------------------------------------

SAMPLES = st.lists(
    st.builds(Sample, st.floats(0.0, RA), st.tuples(FINITE, FINITE)), min_size=1, max_size=8
)


def as_object(s: Sample) -> dict[str, float]:
    return {"ts": s.ts, **dict(zip(FEATURES, s.values, strict=True))}


@ROUND_TRIP
@given(sample=SAMPLES.map(lambda ss: ss[0]))
def test_round_trip_json_object(sample: Sample) -> None:
    assert decode(dumps(as_object(sample))) == Decoded([sample], 0)


@ROUND_TRIP
@given(samples=SAMPLES)
def test_round_trip_json_array(samples: list[Sample]) -> None:
    assert decode(dumps([as_object(s) for s in samples])) == Decoded(samples, 0)


@ROUND_TRIP
@given(samples=SAMPLES, with_ts=st.booleans(), eol=st.sampled_from(["\n", "\r\n"]))
def test_round_trip_csv(samples: list[Sample], with_ts: bool, eol: str) -> None:
    lines = [",".join(map(repr, ((s.ts,) if with_ts else ()) + s.values)) for s in samples]
    expected = samples if with_ts else [Sample(RA, s.values) for s in samples]
    assert decode(eol.join(lines).encode(), format="auto") == Decoded(expected, 0)
