"""SenML (RFC 8428) decoding, mixed into `edge.codec.PayloadDecoder`.

Base fields carry forward; time = ``bt + t``, a resolved time below 2**28 is relative to the
arrival time; records with equal time form one sample, which must hold every feature once.
"""

from __future__ import annotations

from math import isfinite
from typing import Any

from seqcast.edge.path.samples import (
    Decoded,
    PayloadError,
    Sample,
    _key,
    _non_finite,
    _not_a_number,
    _show,
)

SENML_RELATIVE_LIMIT = float(2**28)  # RFC 8428 4.5.3: resolved times below this are relative
_SENML_SIGNAL_KEYS = frozenset({"bn", "bt", "n", "v"})
_SENML_VALUE_KEYS = frozenset({"v", "vs", "vb", "vd", "s"})
_SENML_OTHER_VALUES = ("vs", "vb", "vd", "s")
_MISSING: Any = object()


class SenMLDecoding:
    """SenML for a decoder that has `features`, `_index`, `_n`, `_max_samples`, `_reject`,
    `_too_many` and `_future` (see `PayloadDecoder`)."""

    features: tuple[str, ...]
    _index: dict[str, int]
    _n: int
    _max_samples: int
    _reject: bool
    unstamped: int

    def _too_many(self, count: object) -> PayloadError:
        raise NotImplementedError  # the decoder's

    def _future(self, ts: float, limit: float, where: str) -> PayloadError:
        raise NotImplementedError  # the decoder's

    # -- SenML ---------------------------------------------------------------------------------

    def _senml(self, doc: Any, received_at: float, limit: float) -> Decoded:
        if doc.__class__ is not list:
            raise PayloadError("senml_invalid", f"SenML: expected an array, got {_show(doc)}")
        if not doc:
            raise PayloadError("empty", "payload is an empty array")
        base_name, base_time, base_value = "", _MISSING, 0.0
        rows: dict[float, list[Any]] = {}  # resolved time -> [value or None] * F
        extra = 0
        for i, rec in enumerate(doc):
            if rec.__class__ is not dict:
                raise PayloadError("not_an_object", f"record {i}: not an object: {_show(rec)}")
            for key in rec:
                if key.endswith("_"):
                    raise PayloadError("senml_invalid", f"record {i}: must-understand {_key(key)}")
            if "bn" in rec:
                base_name = _senml_field(rec, "bn", str, i)
            if "bt" in rec:
                base_time = _senml_field(rec, "bt", float, i)
            if "bv" in rec:
                base_value = _senml_field(rec, "bv", float, i)
            name = _senml_field(rec, "n", str, i) if "n" in rec else ""
            col = self._index.get(name)
            if col is None:
                col = self._index.get(base_name + name)
            if col is None:
                if not rec.keys().isdisjoint(_SENML_VALUE_KEYS):
                    extra += 1
                    if self._reject:
                        raise PayloadError(
                            "extra_field", f"record {i}: unknown sensor {_key(base_name + name)}"
                        )
                continue
            v = rec.get("v", _MISSING)
            if v.__class__ is not float:
                if v is not _MISSING:
                    raise _not_a_number(f"{self._rec(i, col)}: field 'v'", v)
                got = [k for k in _SENML_OTHER_VALUES if k in rec] or "no value"
                raise PayloadError(
                    "not_a_number", f"{self._rec(i, col)}: only 'v' allowed, got {got}"
                )
            value = v + base_value if base_value else v  # keeps v exact (and -0.0) without bv
            if not isfinite(value):
                raise _non_finite(self._rec(i, col), value)
            t = rec.get("t", _MISSING)
            if t is _MISSING and base_time is _MISSING:
                ts = received_at
                self.unstamped += 1
            else:
                ts = 0.0 if base_time is _MISSING else base_time
                if t is not _MISSING:
                    if t.__class__ is not float or not isfinite(t):
                        raise PayloadError(
                            "invalid_timestamp", f"{self._rec(i, col)}: 't' {_show(t)}"
                        )
                    ts += t
                if ts < SENML_RELATIVE_LIMIT:
                    ts += received_at
                if not isfinite(ts) or ts < 0.0:
                    raise PayloadError("invalid_timestamp", f"{self._rec(i, col)}: time {ts!r} < 0")
                if ts > limit:
                    raise self._future(ts, limit, self._rec(i, col))
            row = rows.get(ts)
            if row is None:
                row = rows[ts] = [None] * self._n
            elif row[col] is not None:
                raise PayloadError("senml_invalid", f"{self._rec(i, col)}: second value at {ts!r}")
            row[col] = value
        if not rows:
            raise PayloadError("missing_field", f"SenML: no records for features {self.features}")
        if len(rows) > self._max_samples:
            raise self._too_many(len(rows))
        samples = []
        for ts in sorted(rows):
            row = rows[ts]
            if None in row:
                missing = _key(self.features[row.index(None)])
                raise PayloadError("missing_field", f"SenML: no record for {missing} at {ts!r}")
            samples.append(Sample(ts, tuple(row)))
        return Decoded(samples, extra)

    def _rec(self, index: int, col: int) -> str:
        return f"record {index} ({_key(self.features[col])})"

    # -- CSV -----------------------------------------------------------------------------------


def _senml_field(rec: dict[str, Any], key: str, kind: type, index: int) -> Any:
    value: Any = rec[key]
    if value.__class__ is not kind or (kind is float and not isfinite(rec[key])):
        want = "a string" if kind is str else "a finite number"
        raise PayloadError("senml_invalid", f"record {index}: {key!r} not {want}: {_show(value)}")
    return value
