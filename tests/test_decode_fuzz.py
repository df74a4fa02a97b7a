"""edge/path/decode.py: property tests that arbitrary bytes, JSON or CSV never crash decoding."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqcast.edge.config import InputConfig
from seqcast.edge.path.decode import Decoded, PayloadDecoder, PayloadError
from tests.codec_cases import FEATURES, RA, REASONS

# -- properties ------------------------------------------------------------------------------

DECODERS = [
    PayloadDecoder(FEATURES),
    PayloadDecoder(FEATURES, InputConfig(format="json", extra_fields="reject")),
    PayloadDecoder(FEATURES, InputConfig(format="senml")),
    PayloadDecoder(FEATURES, InputConfig(format="csv")),
    PayloadDecoder(["Demand"], InputConfig(max_samples_per_message=3)),
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
