"""`[output] format = "influx"`: forecasts as InfluxDB line protocol (edge/path/influx.py).

Checked two ways: against the line-protocol grammar (the reference's syntax and escaping, as a
regex) with hypothesis choosing stream ids, models, columns and values; and through a real
parser, `line-protocol-parser` (dev extra), which must give back every tag, field and timestamp.
Then the real daemon with `format = "influx"` publishes lines that parse to the values its JSON
output carries for the same input (the pipeline, offline)."""

from __future__ import annotations

import json
import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from line_protocol_parser import parse_line

from seqcast.edge.path.encode import float32_decimals
from seqcast.edge.path.influx import encode_influx, nanoseconds

# the line-protocol reference: measurement (`,` and space escaped), tags and field keys (`,`,
# `=` and space escaped), float field values, an integer timestamp in ns
_NAME = r"(?:[^,= \\]|\\[,= ])+"
_FLOAT = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
LINE = re.compile(
    rf"(?P<m>(?:[^, \\]|\\[, ])+)(?P<tags>(?:,{_NAME}={_NAME})*)"
    rf" (?P<fields>{_NAME}={_FLOAT}(?:,{_NAME}={_FLOAT})*) (?P<ts>-?\d+)"
)
_PAIR = re.compile(rf"({_NAME})=({_NAME}|{_FLOAT})")


def unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def by_grammar(line: str) -> tuple[dict[str, str], dict[str, float], int]:
    match = LINE.fullmatch(line)
    assert match is not None, line
    tags = {unescape(k): unescape(v) for k, v in _PAIR.findall(match["tags"])}
    fields = {unescape(k): float(v) for k, v in _PAIR.findall(match["fields"])}
    return tags, fields, int(match["ts"])


names = st.text(
    st.characters(
        codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"), exclude_characters="\\"
    ),
    min_size=1,
    max_size=12,
).filter(str.isprintable)
columns = st.lists(names, min_size=1, max_size=3, unique=True)
finite = st.floats(allow_nan=False, allow_infinity=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    stream=names,
    model=names,
    cols=columns,
    data=st.data(),
    ts=st.floats(1e8, 4e9),
    interval=st.sampled_from([1.0, 0.5, 1800.0, 86400.0]),
)
def test_lines_follow_the_grammar_and_parse_back(stream, model, cols, data, ts, interval) -> None:
    horizon = data.draw(st.integers(1, 4))
    values = np.asarray(
        data.draw(
            st.lists(
                st.lists(finite, min_size=len(cols), max_size=len(cols)),
                min_size=horizon,
                max_size=horizon,
            )
        ),
        np.float64,
    )
    values = float32_decimals(values)
    lines = encode_influx(stream, ts, model, cols, interval, values).decode().split("\n")
    assert len(lines) == horizon
    for k, line in enumerate(lines, 1):
        stamp = nanoseconds(ts + k * interval)
        want_tags = {"stream": stream, "model": model, "step": str(k)}
        want_fields = dict(zip(cols, values[k - 1].tolist(), strict=True))
        assert by_grammar(line) == (want_tags, want_fields, stamp)
        parsed = parse_line(line)  # the real parser
        assert parsed["measurement"] == "forecast"
        assert parsed["tags"] == want_tags
        assert parsed["fields"] == want_fields
        assert parsed["time"] == stamp


def test_commas_equals_and_spaces_are_escaped() -> None:
    out = encode_influx("a b,c=d", 1.7e9, "m=1, x", ["x y", "p=q,r"], 60.0, np.ones((1, 2)))
    line = out.decode()
    assert line == (
        "forecast,model=m\\=1\\,\\ x,step=1,stream=a\\ b\\,c\\=d x\\ y=1.0,p\\=q\\,r=1.0 "
        "1700000060000000000"
    )
    assert parse_line(line)["tags"]["stream"] == "a b,c=d"
    assert parse_line(line)["fields"] == {"x y": 1.0, "p=q,r": 1.0}


@given(st.floats(0, 4e9))
def test_nanoseconds_are_the_exact_value_rounded(ts: float) -> None:
    exact = round(Fraction(ts) * 10**9)  # what ts * 1e9 in float64 misses by up to 256 ns
    assert abs(nanoseconds(ts) - exact) <= 1
    assert nanoseconds(1_700_000_000.25) == 1_700_000_000_250_000_000


@pytest.mark.parametrize("bad", ["a\\b", "line\nbreak", "tab\there", "", "nbsp\u00a0"])
def test_stream_ids_the_protocol_cannot_carry_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="InfluxDB tag"):
        encode_influx(bad, 1.7e9, "m@1", ["load"], 60.0, np.ones((2, 1)))


def test_non_finite_values_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        encode_influx("s", 1.7e9, "m@1", ["load"], 60.0, np.array([[1.0], [np.nan]]))


def test_month_grids_stamp_each_step_with_its_own_time() -> None:
    times = [1_704_067_200.0, 1_706_745_600.0]  # 2024-01-01, 2024-02-01
    out = encode_influx("s", 1_701_388_800.0, "m@1", ["v"], 2_592_000.0, np.ones((2, 1)), times)
    assert [parse_line(x)["time"] for x in out.decode().split("\n")] == [
        nanoseconds(t) for t in times
    ]


@pytest.mark.broker
@pytest.mark.tflite
def test_the_daemon_publishes_influx_lines_with_its_json_values(
    broker, small_bundle, tmp_path
) -> None:
    from seqcast.edge.config import StreamsConfig
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.edge.model.runtime import load_model
    from seqcast.edge.path.pipeline import Pipeline
    from tests.daemon_harness import DaemonProcess, publish_lines, write_config
    from tests.mqtt_clients import Collector
    from tests.test_daemon import stream_data

    samples = stream_data(12, seed=3)
    model, _ = load_model(read_bundle(small_bundle), isolate=False)
    offline = Pipeline(model, streams=StreamsConfig(align="off"))
    want = [json.loads(p) for _, p in offline.run([("a b,c=d", ts, tuple(v)) for ts, v in samples])]
    prefix = f"t/influx-{tmp_path.name}"
    cfg = write_config(
        tmp_path / "edge.toml", broker, small_bundle, prefix, output={"format": "influx"}
    )
    collector = Collector(broker.host, broker.port, [f"{prefix}/forecasts/+"])
    daemon = DaemonProcess.start(cfg)
    try:
        daemon.wait_for_log("seqcast-edge serving")
        lines = [json.dumps({"ts": ts, "load": v[0], "temp": v[1]}).encode() for ts, v in samples]
        publish_lines(broker, f"{prefix}/sensors/a b,c=d/data", lines)
        assert collector.wait_for(lambda: len(collector.messages) >= len(want), 20), daemon.log()
    finally:
        daemon.kill()
        collector.close()
    got = [bytes(p).decode() for _, _, p in collector.messages]
    assert len(got) == len(want)
    for message, doc in zip(got, want, strict=True):
        points = [parse_line(line) for line in message.split("\n")]
        assert [p["tags"]["step"] for p in points] == [str(k) for k in range(1, len(points) + 1)]
        assert {p["tags"]["stream"] for p in points} == {"a b,c=d"}
        assert {p["tags"]["model"] for p in points} == {doc["model"]}
        assert [p["time"] for p in points] == [nanoseconds(f["ts"]) for f in doc["forecast"]]
        assert [p["fields"] for p in points] == [
            {k: v for k, v in f.items() if k != "ts"} for f in doc["forecast"]
        ]
