"""Shared constants and helpers for the payload decoder/encoder tests (not a test module)."""

from __future__ import annotations

import json

import pytest
from hypothesis import settings
from hypothesis import strategies as st

from seqcast.edge.config import InputConfig
from seqcast.edge.path.decode import Decoded, PayloadDecoder, PayloadError

FEATURES = ("Demand", "Temperature")
RA = 1_700_000_000.0  # received_at used throughout
REASONS = {
    "too_large", "invalid_utf8", "invalid_json", "not_an_object", "missing_field",
    "not_a_number", "non_finite", "invalid_timestamp", "future_timestamp", "csv_arity",
    "too_many_samples", "empty", "extra_field", "senml_invalid",
}  # fmt: skip


def decode(payload: bytes, **kwargs: object) -> Decoded:
    return PayloadDecoder(FEATURES, InputConfig(**kwargs)).decode(payload, RA)  # type: ignore[arg-type]


def error(payload: bytes, **kwargs: object) -> PayloadError:
    with pytest.raises(PayloadError) as info:
        decode(payload, **kwargs)
    return info.value


def dumps(doc: object) -> bytes:
    return json.dumps(doc).encode()


FINITE = st.floats(allow_nan=False, allow_infinity=False)
ROUND_TRIP = settings(max_examples=100, deadline=None)
