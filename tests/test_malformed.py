"""A corpus of malformed payloads interleaved with good data, through the real pipeline.

Hand-picked kinds plus hypothesis-generated junk go onto the good streams' own topics and onto a
junk stream; nothing may raise, every bad message is counted, and the good streams' forecasts
must be identical (bit for bit) to a clean run. Also: a flood of new stream ids stays bounded.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from seqcast.edge.config import StreamsConfig
from seqcast.edge.model.bundle import read_bundle
from seqcast.edge.model.runtime import load_model
from seqcast.edge.mqtt import InboundMessage
from seqcast.edge.path.decode import PayloadDecoder, PayloadError
from seqcast.edge.path.pipeline import Pipeline

pytestmark = [pytest.mark.tflite]

T0 = 1_700_000_000.0
HAND_PICKED: dict[str, bytes] = {
    "invalid utf-8": b"\xff\xfe\xfd",
    "truncated json": b'{"ts": 1700000000, "load": 1',
    "not json": b"{not json",
    "missing field": b'{"ts": 1700000000, "load": 1.0}',
    "nan literal": b'{"ts": 1700000000, "load": NaN, "temp": 1}',
    "infinity literal": b'{"ts": 1700000000, "load": -Infinity, "temp": 1}',
    "overflowing number": b'{"ts": 1700000000, "load": 1e999, "temp": 1}',
    "string for a number": b'{"ts": 1700000000, "load": "12", "temp": 1}',
    "bool for a number": b'{"ts": 1700000000, "load": true, "temp": 1}',
    "null value": b'{"ts": 1700000000, "load": null, "temp": 1}',
    "nested value": b'{"ts": 1700000000, "load": [1], "temp": 1}',
    "csv arity": b"1.0,2.0,3.0,4.0",
    "csv text": b"abc,def",
    "huge payload": b"[" + b"1," * 40000 + b"1]",
    "too many samples": json.dumps([{"load": 1, "temp": 2}] * 1001).encode(),
    "far future ts": b'{"ts": 99999999999, "load": 1, "temp": 2}',
    "negative ts": b'{"ts": -5, "load": 1, "temp": 2}',
    "unparseable ts": b'{"ts": "yesterday", "load": 1, "temp": 2}',
    "empty": b"",
    "empty array": b"[]",
    "json null": b"null",
    "json number": b"42",
    "array of numbers": b"[1, 2, 3]",
    "senml without value": b'[{"n": "load"}]',
    "senml string value": (
        b'[{"bn": "x/", "bt": 1700000000, "n": "load", "vs": "high"}, {"n": "temp", "v": 1}]'
    ),
    "senml missing feature": b'[{"bt": 1700000000, "n": "load", "v": 1}]',
    "deep nesting": b"[" * 100000 + b"]" * 100000,
    "bom and garbage": b"\xef\xbb\xbf{\x00}",
}


@pytest.fixture(scope="module")
def model(small_bundle):
    return load_model(read_bundle(small_bundle))[0]


def pipeline(model) -> Pipeline:
    return Pipeline(model, streams=StreamsConfig(max_streams=1000), output_topic="out/{stream}")


def good_messages(n: int = 20) -> list[InboundMessage]:
    out = []
    for k in range(n):
        for s in range(3):
            body = {"ts": T0 + 1800 * k, "load": 100 + 10 * np.sin(k + s), "temp": 20.0 + s}
            out.append(
                InboundMessage(f"m{s}", f"in/m{s}", json.dumps(body).encode(), T0 + 1800 * k)
            )
    return out


def run(p: Pipeline, messages: list[InboundMessage], batch: int = 7) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = {}
    for i in range(0, len(messages), batch):
        for topic, payload in p.handle(messages[i : i + batch]):
            out.setdefault(topic, []).append(payload)
    return out


def interleave(good: list[InboundMessage], bad: list[bytes]) -> list[InboundMessage]:
    mixed: list[InboundMessage] = []
    for i, msg in enumerate(good):
        mixed.append(msg)
        if i < len(bad):
            target = ["m0", "m1", "m2", "junk"][i % 4]  # onto good streams' topics too
            mixed.append(InboundMessage(target, f"in/{target}", bad[i], msg.received_at))
    return mixed


def test_hand_picked_corpus(model):
    assert len(HAND_PICKED) >= 20
    clean = run(pipeline(model), good_messages())
    p = pipeline(model)
    dirty = run(p, interleave(good_messages(), list(HAND_PICKED.values())))
    assert dirty == clean  # same forecasts, same order, bit for bit
    c = p.counters.as_dict()
    assert c["bad_payloads"] == len(HAND_PICKED)
    assert c["messages"] == len(good_messages()) + len(HAND_PICKED)
    kinds = {k for k, n in c.items() if k.startswith("bad_") and k != "bad_payloads" and n}
    assert len(kinds) >= 10  # counted by reason, not lumped together
    assert "out/junk" not in dirty


JSON = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["ts", "load", "temp", "n", "v", "bt", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)
JUNK = st.one_of(
    st.binary(max_size=64),
    JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.text(alphabet="0123456789.,-eE\n nan", max_size=30).map(str.encode),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(junk=st.lists(JUNK, min_size=1, max_size=30))
def test_generated_junk_never_changes_good_streams(model, junk):
    probe = PayloadDecoder(["load", "temp"])
    for payload in junk:
        try:
            probe.decode(payload, T0)
        except PayloadError:
            continue
        assume(False)  # accidentally valid: it would rightly change a stream
    clean = run(pipeline(model), good_messages(12))
    p = pipeline(model)
    assert run(p, interleave(good_messages(12), junk)) == clean
    assert p.counters["bad_payloads"] == len(junk)


def test_flood_of_new_stream_ids_stays_bounded(model):
    p = Pipeline(model, streams=StreamsConfig(max_streams=100), output_topic="out/{stream}")
    buf_bytes = p.table.buf.nbytes
    flood = [
        InboundMessage(f"id-{i}", f"in/id-{i}", b'{"ts": 1700000000, "load": 1, "temp": 2}', T0)
        for i in range(20_000)
    ]
    for i in range(0, len(flood), 500):
        p.handle(flood[i : i + 500])
    c = p.counters.as_dict()
    # each id's one sample waits in the aligner for its interval to close, until the aligner
    # (bounded like the table) evicts the stream and steps it into the table
    waiting = p.aligner.pending()
    assert waiting == len(p.aligner) == 100
    assert c["streams"] == 100 and c["streams_created"] == 20_000 - waiting
    assert c["streams_evicted"] == c["streams_created"] - 100
    assert p.table.buf.nbytes == buf_bytes  # preallocated: nothing grows with new ids
    assert len(p.table.names) == 100
