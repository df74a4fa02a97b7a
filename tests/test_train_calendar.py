"""The trainer's `--calendar` option and the manifest's `calendar` list (edge/calendar.py)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.train]


def _prepared(tmp_path, **options):
    from seqcast.train.options import FitOptions
    from seqcast.train.prepare import prepare
    from synth import SMALL_FIT, write_csv

    csv = str(write_csv(tmp_path / "s.csv", n=800))
    return prepare(FitOptions(data=csv, **{**SMALL_FIT, **options}))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "want"),
    [
        ("auto", ("hour_of_day", "day_of_week")),  # 30-minute steps over 17 days
        ("none", ()),
        ("day_of_year, hour_of_day", ("day_of_year", "hour_of_day")),
    ],
)
def test_the_calendar_option(tmp_path, spec: str, want: tuple) -> None:
    assert _prepared(tmp_path, calendar=spec).calendar == want


def test_an_unknown_calendar_feature_is_one_clear_error(tmp_path) -> None:
    from seqcast.train.options import DataError

    with pytest.raises(DataError, match=r"^--calendar: unknown calendar feature 'weekday'"):
        _prepared(tmp_path, calendar="hour_of_day,weekday")


def test_a_manifest_with_an_unknown_calendar_feature_is_refused(small_bundle) -> None:
    import json

    from seqcast.edge.model.bundle import BundleError, Manifest, read_bundle

    doc = read_bundle(small_bundle).manifest.to_json()
    assert Manifest.from_json(json.loads(json.dumps(doc))).input_width == 2 + 2 * len(
        doc["calendar"]
    )
    old = {k: v for k, v in doc.items() if k != "calendar"}  # a bundle from before calendars
    assert Manifest.from_json(old).calendar == []
    with pytest.raises(BundleError, match=r"manifest\.calendar: unknown calendar feature 'tz'"):
        Manifest.from_json({**doc, "calendar": ["tz"]})
