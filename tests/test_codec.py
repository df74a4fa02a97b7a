"""edge/codec.py: payload decoding (json, SenML, CSV, auto) and forecast encoding."""

from __future__ import annotations

import json
import math
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.codec import (
    Decoded,
    PayloadDecoder,
    PayloadError,
    Sample,
    encode_forecast,
    parse_timestamp,
)

FEATURES = ("Demand", "Temperature")
RA = 1_700_000_000.0  # received_at used throughout
T_2014 = 1_420_030_800.0  # 2014-12-31T13:00:00Z
REASONS = {
    "too_large", "invalid_utf8", "invalid_json", "not_an_object", "missing_field",
    "not_a_number", "non_finite", "bad_timestamp", "future_timestamp", "csv_arity",
    "too_many_samples", "empty", "extra_field", "senml_invalid",
}  # fmt: skip


def decode(payload: bytes, **kwargs: object) -> Decoded:
    return PayloadDecoder(FEATURES, **kwargs).decode(payload, RA)  # type: ignore[arg-type]


def error(payload: bytes, **kwargs: object) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        decode(payload, **kwargs)
    return info.value


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


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
    assert info.value.reason == "bad_timestamp"


# -- SenML -----------------------------------------------------------------------------------


def test_senml_base_fields_and_grouping_by_time_sorted() -> None:
    pack = [
        {"bn": "urn:dev:7:", "bt": 1.6e9, "bu": "W", "bver": 10, "n": "Demand", "v": 10.0},
        {"n": "Temperature", "u": "Cel", "v": 21.5},
        {"n": "Demand", "v": 9.0, "t": -60},  # earlier sample, listed second
        {"n": "Temperature", "v": 20.5, "t": -60},
        {"bv": 100.0, "n": "Demand", "v": 1.5, "t": 60},  # bv adds to v
        {"n": "Temperature", "v": -80.0, "t": 60},
    ]
    out = decode(dumps(pack))
    assert out == Decoded(
        [
            Sample(1.6e9 - 60, (9.0, 20.5)),
            Sample(1.6e9, (10.0, 21.5)),
            Sample(1.6e9 + 60, (101.5, 20.0)),
        ],
        0,
    )


def test_senml_name_matches_n_first_then_bn_plus_n() -> None:
    pack = [
        {"bn": "dev/", "n": "Demand", "v": 1.0, "t": 1.6e9},  # "Demand" is a feature
        {"n": "Temp", "v": 2.0, "t": 1.6e9},  # "dev/Temp" is
    ]
    dec = PayloadDecoder(["Demand", "dev/Temp"], fmt="senml")
    assert dec.decode(dumps(pack), RA).samples == [Sample(1.6e9, (1.0, 2.0))]


def test_senml_relative_and_missing_times() -> None:
    # t < 2**28 without bt is relative to received_at; no bt and no t means received_at.
    pack = [
        {"n": "Demand", "v": 1.0, "t": -5},
        {"n": "Temperature", "v": 2.0, "t": -5},
        {"n": "Demand", "v": 3.0},
        {"n": "Temperature", "v": 4.0},
    ]
    out = decode(dumps(pack))
    assert out.samples == [Sample(RA - 5, (1.0, 2.0)), Sample(RA, (3.0, 4.0))]


def test_senml_unknown_sensors_are_extra_and_base_only_records_skipped() -> None:
    pack = [
        {"bn": "dev/", "bt": 1.6e9},  # base fields only: skipped, not counted
        {"n": "Demand", "v": 1.0},
        {"n": "Temperature", "v": 2.0},
        {"n": "humidity", "v": 55.0},
        {"n": "door", "vb": True},
    ]
    out = decode(dumps(pack), fmt="senml")
    assert out == Decoded([Sample(1.6e9, (1.0, 2.0))], 2)
    err = error(dumps(pack), fmt="senml", extra_fields="reject")
    assert err.reason == "extra_field" and "'dev/humidity'" in str(err)


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
    # fmt="json" never tries SenML.
    assert error(dumps(senml), fmt="json").reason == "missing_field"


def test_auto_ignores_senml_keys_that_are_feature_names() -> None:
    dec = PayloadDecoder(["v", "t"])
    assert dec.decode(b'[{"v": 1, "t": 2}]', RA).samples == [Sample(RA, (1.0, 2.0))]


def test_fmt_csv_does_not_sniff() -> None:
    assert error(b'{"Demand": 1, "Temperature": 2}', fmt="csv").reason == "not_a_number"


# -- errors ----------------------------------------------------------------------------------

ERROR_CASES = [
    # (payload, decoder kwargs, reason, text in message)
    (b"x" * 11, {"max_payload_bytes": 10}, "too_large", "11 bytes"),
    (b'{"Demand": "\xff"}', {}, "invalid_utf8", "UTF-8"),
    (b'{"Demand": 1,', {}, "invalid_json", "invalid JSON"),
    (b"[" * 50_000, {}, "invalid_json", "nested too deeply"),
    (b'{"a": ' * 10_000, {}, "invalid_json", "nested too deeply"),
    (b"42", {"fmt": "json"}, "not_an_object", "got float 42.0"),
    (b'[{"Demand": 1, "Temperature": 2}, 7]', {}, "not_an_object", "element 1"),
    (b'{"Temperature": 2}', {}, "missing_field", "'Demand'"),
    (b'[{"Demand": 1, "Temperature": 2}, {"Demand": 1}]', {}, "missing_field", "element 1"),
    (
        b'{"Demand": "12a", "Temperature": 1}',
        {},
        "not_a_number",
        "field 'Demand': expected a number, got str '12a'",
    ),
    (b'{"Demand": 1, "Temperature": true}', {}, "not_a_number", "got bool True"),
    (b'{"Demand": null, "Temperature": 1}', {}, "not_a_number", "got NoneType None"),
    (b'{"Demand": {"v": 1}, "Temperature": 1}', {}, "not_a_number", "got object of 1"),
    (b'{"Demand": [1], "Temperature": 1}', {}, "not_a_number", "got array of 1"),
    (b"1,12a", {}, "not_a_number", "line 1, field 'Temperature'"),
    (b"1,", {}, "not_a_number", "got str ''"),
    (b"1,1_0", {}, "not_a_number", "'1_0'"),
    (b'{"Demand": NaN, "Temperature": 1}', {}, "non_finite", "NaN"),
    (b'{"Demand": 1, "Temperature": -Infinity}', {}, "non_finite", "-Infinity"),
    (b'{"Demand": 1, "Temperature": 1e999}', {}, "non_finite", "field 'Temperature': inf"),
    (b"1,inf", {}, "non_finite", "'inf' is not finite"),
    (b"nan,1", {}, "non_finite", "field 'Demand'"),
    (b'{"ts": "yesterday", "Demand": 1, "Temperature": 2}', {}, "bad_timestamp", "'yesterday'"),
    (b'{"ts": -5, "Demand": 1, "Temperature": 2}', {}, "bad_timestamp", "-5.0"),
    (b'{"ts": true, "Demand": 1, "Temperature": 2}', {}, "bad_timestamp", "field 'ts'"),
    (b'{"ts": null, "Demand": 1, "Temperature": 2}', {}, "bad_timestamp", "None"),
    (b"soon,1,2", {}, "bad_timestamp", "line 1, timestamp"),
    (b"-1,1,2", {}, "bad_timestamp", "-1.0"),
    (b'{"ts": 1700086401, "Demand": 1, "Temperature": 2}', {}, "future_timestamp", "86400 s"),
    (b"1700000011,1,2", {"max_future_s": 10}, "future_timestamp", "1700000011.0"),
    (b"1,2,3,4", {}, "csv_arity", "expected 2 or 3 values, got 4"),
    (b"1,2\n3", {}, "csv_arity", "line 2"),
    (b"[{}, {}, {}]", {"max_samples": 2}, "too_many_samples", "3 samples, limit is 2"),
    (b"1,2\n3,4\n5,6", {"max_samples": 2}, "too_many_samples", "limit is 2"),
    (b"", {}, "empty", "empty"),
    (b" \r\n\t", {}, "empty", "empty"),
    (b"[]", {}, "empty", "empty array"),
    (b"\n\n", {"fmt": "csv"}, "empty", "no CSV lines"),
    (
        b'{"Demand": 1, "Temperature": 2, "rssi": 3}',
        {"extra_fields": "reject"},
        "extra_field",
        "unknown field 'rssi'",
    ),
    (b'{"n": "Demand", "v": 1}', {"fmt": "senml"}, "senml_invalid", "expected an array"),
    (b'[{"bn": 5, "n": "Demand", "v": 1}]', {}, "senml_invalid", "'bn' not a string"),
    (b'[{"bt": "now", "n": "Demand", "v": 1}]', {}, "senml_invalid", "'bt' not a finite number"),
    (b'[{"n": "Demand", "v": 1, "x_": 1}]', {}, "senml_invalid", "must-understand 'x_'"),
    (
        b'[{"n": "Demand", "v": 1}, {"n": "Demand", "v": 2}]',
        {},
        "senml_invalid",
        "record 1 ('Demand'): second value",
    ),
    (b'[{"n": 7, "v": 1}]', {}, "senml_invalid", "'n' not a string"),
    (b'[{"n": "Demand", "vs": "high"}]', {}, "not_a_number", "only 'v' allowed, got ['vs']"),
    (b'[{"n": "Demand", "v": "1"}]', {}, "not_a_number", "field 'v': expected a number"),
    (b'[{"n": "Demand", "v": 1e308, "bv": 1e308}]', {}, "non_finite", "record 0 ('Demand')"),
    (b'[{"n": "Demand", "v": 1, "t": "now"}]', {}, "bad_timestamp", "'t' str 'now'"),
    (b'[{"n": "Demand", "v": 1, "t": -1e12}]', {}, "bad_timestamp", "record 0 ('Demand')"),
    (b'[{"n": "Demand", "v": 1, "t": 1e12}]', {}, "future_timestamp", "record 0"),
    (b'[{"n": "Demand", "v": 1}]', {}, "missing_field", "no record for 'Temperature'"),
    (b'[{"n": "other", "v": 1}]', {"fmt": "senml"}, "missing_field", "no records for features"),
    (b"[7]", {"fmt": "senml"}, "not_an_object", "record 0"),
]


@pytest.mark.parametrize(("payload", "kwargs", "reason", "text"), ERROR_CASES)
def test_payload_errors(payload: bytes, kwargs: dict[str, object], reason: str, text: str) -> None:
    err = error(payload, **kwargs)
    assert err.reason == reason, str(err)
    assert text in str(err)


def test_every_reason_is_exercised() -> None:
    assert {case[2] for case in ERROR_CASES} == REASONS


def test_too_many_samples_senml() -> None:
    pack = [{"n": n, "v": 1.0, "t": float(-k)} for k in range(3) for n in FEATURES]
    assert error(dumps(pack), max_samples=2).reason == "too_many_samples"


def test_payload_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(PayloadError("empty", "payload is empty")))
    assert (err.reason, str(err)) == ("empty", "payload is empty")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"features": []},
        {"features": ["a", "a"]},
        {"features": ["a", ""]},
        {"features": ["ts"]},
        {"fmt": "xml"},
        {"extra_fields": "warn"},
        {"max_samples": 0},
        {"max_payload_bytes": 0},
        {"max_future_s": -1.0},
        {"max_future_s": math.nan},
    ],
)
def test_decoder_rejects_bad_config(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"features": FEATURES, **kwargs}
    with pytest.raises(ValueError):
        PayloadDecoder(**args)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------------

DECODERS = [
    PayloadDecoder(FEATURES),
    PayloadDecoder(FEATURES, fmt="json", extra_fields="reject"),
    PayloadDecoder(FEATURES, fmt="senml"),
    PayloadDecoder(FEATURES, fmt="csv"),
    PayloadDecoder(["Demand"], max_samples=3),
]
KEYS = st.sampled_from([*FEATURES, "ts", "n", "bn", "bt", "bv", "v", "t", "vs", "x_"]) | st.text(
    max_size=5
)
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["Demand", "Temperature", "2014-12-31T13:00:00Z", "1e5", ""])
)
JSON_VALUES = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=30,
)
NUMBERISH: st.SearchStrategy[Any] = (
    st.floats() | st.integers() | st.sampled_from([True, None, "1", [], {}])
)
TIMEISH = NUMBERISH | st.floats(0.0, RA + 1e5) | st.sampled_from(["2014-12-31T13:00:00Z", "x"])
NEAR_OBJECT = st.fixed_dictionaries(
    {name: st.floats(-1e9, 1e9) | NUMBERISH for name in FEATURES},
    optional={"ts": TIMEISH, "rssi": LEAVES},
)
NEAR_RECORD = st.fixed_dictionaries(
    {"n": st.sampled_from([*FEATURES, "x", "", 5])},
    optional={
        "v": st.floats(-1e9, 1e9) | NUMBERISH,
        "t": st.sampled_from([0.0, -1.0, 1.6e9]) | TIMEISH,
        "bt": st.sampled_from([0.0, 1.6e9]) | TIMEISH,
        "bn": st.sampled_from(["", "dev/", 3]),
        "bv": NUMBERISH,
        "vs": st.text(max_size=2),
    },
)
NEAR_VALID = NEAR_OBJECT | st.lists(NEAR_OBJECT, max_size=4) | st.lists(NEAR_RECORD, max_size=8)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_decode(decoder: PayloadDecoder, payload: bytes) -> None:
    try:
        out = decoder.decode(payload, RA)
    except PayloadError as e:
        assert e.reason in REASONS
        assert str(e)
        return
    assert isinstance(out, Decoded) and out.samples and out.extra_fields >= 0
    for s in out.samples:
        assert type(s.ts) is float and 0.0 <= s.ts <= RA + 86400.0
        assert len(s.values) == len(decoder.features)
        assert all(type(v) is float and math.isfinite(v) for v in s.values)


@FUZZ
@given(payload=st.binary(max_size=200), which=st.integers(0, len(DECODERS) - 1))
def test_arbitrary_bytes_never_crash(payload: bytes, which: int) -> None:
    check_decode(DECODERS[which], payload)


@FUZZ
@given(doc=JSON_VALUES | NEAR_VALID, which=st.integers(0, len(DECODERS) - 1))
def test_arbitrary_json_never_crashes(doc: object, which: int) -> None:
    check_decode(DECODERS[which], json.dumps(doc).encode())


@FUZZ
@given(text=st.text(alphabet=st.sampled_from("0123456789.,-+eE:TZ \r\n_nai"), max_size=60))
def test_arbitrary_csv_like_text_never_crashes(text: str) -> None:
    check_decode(DECODERS[0], text.encode())


FINITE = st.floats(allow_nan=False, allow_infinity=False)
SAMPLES = st.lists(
    st.builds(Sample, st.floats(0.0, RA), st.tuples(FINITE, FINITE)), min_size=1, max_size=8
)
ROUND_TRIP = settings(max_examples=100, deadline=None)


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
    assert decode(eol.join(lines).encode(), fmt="auto") == Decoded(expected, 0)


@ROUND_TRIP
@given(
    samples=st.lists(
        st.builds(Sample, st.floats(2.0**28, RA), st.tuples(FINITE, FINITE)),
        min_size=1,
        max_size=6,
        unique_by=lambda s: s.ts,
    ),
    use_bn=st.booleans(),
    data=st.data(),
)
def test_round_trip_senml(samples: list[Sample], use_bn: bool, data: st.DataObject) -> None:
    records = [
        {"n": name, "v": v, "t": s.ts}
        for s in samples
        for name, v in zip(FEATURES, s.values, strict=True)
    ]
    records = data.draw(st.permutations(records))
    if use_bn:
        records[0] = {"bn": "urn:dev:ow:10e2073a01080063:", **records[0]}
    expected = sorted(samples, key=lambda s: s.ts)
    assert decode(dumps(records)) == Decoded(expected, 0)


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
        assert [f["Demand"], f["Temp"]] == [float(v) for v in values[k]]


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
        elements={"allow_nan": False, "allow_infinity": False},
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
        assert [item[t] for t in targets] == [float(v) for v in values[k - 1]]
