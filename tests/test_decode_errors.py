"""edge/path/decode.py: every rejection reason and message, and decoder/config validation."""

from __future__ import annotations

import math
import pickle

import pytest

from seqcast.edge.config import ConfigError, parse_config
from seqcast.edge.path.decode import PayloadDecoder, PayloadError
from tests.codec_cases import REASONS, error

# -- errors ----------------------------------------------------------------------------------

ERROR_CASES = [
    # (payload, decoder kwargs, reason, text in message)
    (b"x" * 11, {"max_payload_bytes": 10}, "too_large", "11 bytes"),
    (b'{"Demand": "\xff"}', {}, "invalid_utf8", "UTF-8"),
    (b'{"Demand": 1,', {}, "invalid_json", "invalid JSON"),
    (b"[" * 50_000, {}, "invalid_json", "nested too deeply"),
    (b'{"a": ' * 10_000, {}, "invalid_json", "nested too deeply"),
    (b"42", {"format": "json"}, "not_an_object", "got float 42.0"),
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
    (b'{"ts": "yesterday", "Demand": 1, "Temperature": 2}', {}, "invalid_timestamp", "'yesterday'"),
    (b'{"ts": -5, "Demand": 1, "Temperature": 2}', {}, "invalid_timestamp", "-5.0"),
    (b'{"ts": true, "Demand": 1, "Temperature": 2}', {}, "invalid_timestamp", "field 'ts'"),
    (b'{"ts": null, "Demand": 1, "Temperature": 2}', {}, "invalid_timestamp", "None"),
    (b"soon,1,2", {}, "invalid_timestamp", "line 1, timestamp"),
    (b"-1,1,2", {}, "invalid_timestamp", "-1.0"),
    (b'{"ts": 1700086401, "Demand": 1, "Temperature": 2}', {}, "future_timestamp", "86400 s"),
    (b"1700000011,1,2", {"max_future_s": 10}, "future_timestamp", "1700000011.0"),
    (b"1,2,3,4", {}, "csv_arity", "expected 2 or 3 values, got 4"),
    (b"1,2\n3", {}, "csv_arity", "line 2"),
    (b"[{}, {}, {}]", {"max_samples_per_message": 2}, "too_many_samples", "3 samples, limit is 2"),
    (b"1,2\n3,4\n5,6", {"max_samples_per_message": 2}, "too_many_samples", "limit is 2"),
    (b"", {}, "empty", "empty"),
    (b" \r\n\t", {}, "empty", "empty"),
    (b"[]", {}, "empty", "empty array"),
    (b"\n\n", {"format": "csv"}, "empty", "no CSV lines"),
    (
        b'{"Demand": 1, "Temperature": 2, "rssi": 3}',
        {"extra_fields": "reject"},
        "extra_field",
        "unknown field 'rssi'",
    ),
    (b'{"n": "Demand", "v": 1}', {"format": "senml"}, "senml_invalid", "expected an array"),
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
    (b'[{"n": "Demand", "v": 1, "t": "now"}]', {}, "invalid_timestamp", "'t' str 'now'"),
    (b'[{"n": "Demand", "v": 1, "t": -1e12}]', {}, "invalid_timestamp", "record 0 ('Demand')"),
    (b'[{"n": "Demand", "v": 1, "t": 1e12}]', {}, "future_timestamp", "record 0"),
    (b'[{"n": "Demand", "v": 1}]', {}, "missing_field", "no record for 'Temperature'"),
    (b'[{"n": "other", "v": 1}]', {"format": "senml"}, "missing_field", "no records for features"),
    (b"[7]", {"format": "senml"}, "not_an_object", "record 0"),
]


@pytest.mark.parametrize(("payload", "kwargs", "reason", "text"), ERROR_CASES)
def test_payload_errors(payload: bytes, kwargs: dict[str, object], reason: str, text: str) -> None:
    err = error(payload, **kwargs)
    assert err.reason == reason, str(err)
    assert text in str(err)


def test_every_reason_is_exercised() -> None:
    assert {case[2] for case in ERROR_CASES} == REASONS


def test_payload_error_pickles() -> None:
    err = pickle.loads(pickle.dumps(PayloadError("empty", "payload is empty")))
    assert (err.reason, str(err)) == ("empty", "payload is empty")


@pytest.mark.parametrize("features", [[], ["a", "a"], ["a", ""], ["ts"]])
def test_decoder_rejects_bad_features(features: list[str]) -> None:
    with pytest.raises(ValueError):
        PayloadDecoder(features)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"format": "xml"},
        {"extra_fields": "warn"},
        {"max_samples_per_message": 0},
        {"max_payload_bytes": 0},
        {"max_future_s": -1.0},
        {"max_future_s": math.nan},
    ],
)
def test_decoder_settings_are_checked_once_by_the_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        parse_config({"model": {"path": "m.seqcast"}, "input": kwargs})
