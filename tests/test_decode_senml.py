"""edge/path/decode.py: SenML packs (base fields, names, times, grouping, round trip)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from seqcast.edge.config import InputConfig
from seqcast.edge.path.decode import Decoded, PayloadDecoder, Sample
from tests.codec_cases import FEATURES, FINITE, RA, ROUND_TRIP, decode, dumps, error

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
    dec = PayloadDecoder(["Demand", "dev/Temp"], InputConfig(format="senml"))
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
    out = decode(dumps(pack), format="senml")
    assert out == Decoded([Sample(1.6e9, (1.0, 2.0))], 2)
    err = error(dumps(pack), format="senml", extra_fields="reject")
    assert err.reason == "extra_field" and "'dev/humidity'" in str(err)


def test_too_many_samples_senml() -> None:
    pack = [{"n": n, "v": 1.0, "t": float(-k)} for k in range(3) for n in FEATURES]
    assert error(dumps(pack), max_samples_per_message=2).reason == "too_many_samples"


# -- round trip ------------------------------------------------------------------------------


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
