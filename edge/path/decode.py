"""Payload bytes -> samples (the input half of the MQTT contract in docs/ARCHITECTURE.md).

Formats accepted by `PayloadDecoder` (F = number of features):

- ``json``: an object ``{"ts": 1700000000.0, "Demand": 4382.8, ...}`` -> one sample, or an array
  of such objects -> samples in array order. ``ts``: Unix seconds or ISO 8601; missing means
  ``received_at``. Every feature must be a finite JSON number.
- ``senml``: RFC 8428 SenML JSON. ``bn``/``bt``/``bv`` carry forward; time = ``bt + t`` (both
  absent: ``received_at``); a resolved time below 2**28 is relative to ``received_at``. ``n`` is
  matched against the features first, then ``bn + n``. Records with equal time form one sample,
  which must hold every feature once; samples are sorted by time. Only numeric ``v`` (+ ``bv``).
  Records naming other sensors are extra fields; records with no value field are skipped.
- ``csv``: ``\n``/``\r\n``-separated lines (blank ones ignored), ``,``-separated cells, no
  quoting. F cells (feature order, ts = ``received_at``) or F + 1 with the timestamp first.
- ``auto``: by the first non-whitespace character: ``{`` -> JSON object; ``[`` -> SenML iff the
  first element is an object having at least one of the keys ``bn``, ``bt``, ``n``, ``v`` that is
  not a feature name and no key that is a feature name, else a JSON array; anything else -> CSV.

Any problem with the input raises `PayloadError` (``.reason`` is a counter key); nothing else
escapes `PayloadDecoder.decode`. A decode returns at least one sample, all values finite floats.
ISO 8601 goes through `datetime.fromisoformat` (microsecond resolution; naive means UTC).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from math import isfinite
from operator import itemgetter
from typing import Any

from seqcast.edge.config import InputConfig
from seqcast.edge.path.samples import (
    _JSON,
    Decoded,
    PayloadError,
    Sample,
    _at,
    _is_name,
    _key,
    _non_finite,
    _not_a_number,
    _show,
    parse_timestamp,
)
from seqcast.edge.path.senml import _SENML_SIGNAL_KEYS, SenMLDecoding

__all__ = [
    "Decoded",
    "PayloadDecoder",
    "PayloadError",
    "Sample",
    "parse_timestamp",
]

_MISSING: Any = object()
_FIRST_CHAR = re.compile(r"\S")


def _strict_float(text: str) -> float:
    """float() for CSV cells, without Python-only syntax (underscores, non-ASCII digits)."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return float(text)


class PayloadDecoder(SenMLDecoding):
    """Decodes one MQTT payload into samples for a fixed feature order (see module docstring)."""

    def __init__(self, features: Sequence[str], settings: InputConfig | None = None) -> None:
        """`features` come from the bundle; `settings` is the validated `[input]` section."""
        s = settings if settings is not None else InputConfig()
        names = tuple(features)
        if not names or len(set(names)) < len(names) or not all(map(_is_name, names)):
            raise ValueError(f"features: expected unique non-empty names, got {names!r}")
        if s.timestamp_field in names:  # the one rule that needs both the config and the bundle
            raise ValueError(
                f"input.timestamp_field: {s.timestamp_field!r} is also a model feature; choose "
                "another field name"
            )
        fmt, ts_field = s.format, s.timestamp_field
        self.features = names
        self.fmt = fmt
        self._n = len(names)
        self._index = {name: i for i, name in enumerate(names)}
        self._feature_set = frozenset(names)
        self._known = self._feature_set | {ts_field}
        self._get = itemgetter(*names)  # obj -> value, or tuple of values when F > 1
        self._ts_field = ts_field
        self._max_bytes = s.max_payload_bytes
        self._max_samples = s.max_samples_per_message
        self._max_future = float(s.max_future_s)
        self._reject = s.extra_fields == "reject"
        self._senml_signal = _SENML_SIGNAL_KEYS - self._feature_set
        self.unstamped = 0  # samples of the last decode stamped with its arrival time

    def decode(self, payload: bytes, received_at: float) -> Decoded:
        """Decode one payload; ``received_at`` (Unix seconds) fills missing/relative times.
        Afterwards `unstamped` is how many of its samples were stamped with ``received_at``."""
        self.unstamped = 0
        if len(payload) > self._max_bytes:
            raise PayloadError("too_large", f"{len(payload)} bytes, limit is {self._max_bytes}")
        try:
            text = str(payload, "utf-8")
        except UnicodeDecodeError as e:
            raise PayloadError("invalid_utf8", f"not UTF-8: {e.reason} at byte {e.start}") from None
        limit = received_at + self._max_future
        if self.fmt == "csv":
            return self._csv(text, received_at, limit)
        first = _FIRST_CHAR.search(text)
        if first is None:
            raise PayloadError("empty", "payload is empty")
        if self.fmt == "auto" and first.group() not in ("{", "["):
            return self._csv(text, received_at, limit)
        doc = self._load(text)
        if self.fmt == "senml":
            return self._senml(doc, received_at, limit)
        if doc.__class__ is dict:
            return Decoded([self._object(doc, received_at, limit, -1)], self._extra(doc, -1))
        if doc.__class__ is not list:
            raise PayloadError("not_an_object", f"expected an object or array, got {_show(doc)}")
        if not doc:
            raise PayloadError("empty", "payload is an empty array")
        if self.fmt == "auto" and self._looks_senml(doc[0]):
            return self._senml(doc, received_at, limit)
        if len(doc) > self._max_samples:
            raise self._too_many(len(doc))
        samples = []
        extra = 0
        for i, obj in enumerate(doc):
            if obj.__class__ is not dict:
                raise PayloadError("not_an_object", f"element {i}: not an object: {_show(obj)}")
            samples.append(self._object(obj, received_at, limit, i))
            extra += self._extra(obj, i)
        return Decoded(samples, extra)

    # -- JSON ----------------------------------------------------------------------------------

    @staticmethod
    def _load(text: str) -> Any:
        try:
            return _JSON.decode(text)
        except PayloadError:
            raise
        except RecursionError:
            raise PayloadError("invalid_json", "invalid JSON: nested too deeply") from None
        except ValueError as e:  # JSONDecodeError and anything else the parser rejects
            raise PayloadError("invalid_json", f"invalid JSON: {e}") from None

    def _looks_senml(self, first: object) -> bool:
        if first.__class__ is not dict:
            return False
        keys = first.keys()
        return not keys.isdisjoint(self._senml_signal) and keys.isdisjoint(self._feature_set)

    def _object(self, obj: dict[str, Any], received_at: float, limit: float, at: int) -> Sample:
        raw = obj.get(self._ts_field, _MISSING)
        if raw is _MISSING:
            ts = received_at
            self.unstamped += 1
        else:
            try:
                ts = parse_timestamp(raw)
            except PayloadError as e:
                raise PayloadError(e.reason, f"{self._ts_where(at)}: {e}") from None
            if ts > limit:
                raise self._future(ts, limit, self._ts_where(at))
        try:
            values = self._get(obj)
        except KeyError as e:
            raise PayloadError("missing_field", f"{_at(at)}no field {_key(e.args[0])}") from None
        if self._n == 1:
            values = (values,)
        for v in values:
            if v.__class__ is not float or not isfinite(v):
                for name in self.features:  # slow path: name the first bad field
                    v = obj[name]
                    where = f"{_at(at)}field {_key(name)}"
                    if v.__class__ is not float:
                        raise _not_a_number(where, v)
                    if not isfinite(v):
                        raise _non_finite(where, v)
        return Sample(ts, values)

    def _ts_where(self, at: int) -> str:
        return f"{_at(at)}field {_key(self._ts_field)}"

    def _extra(self, obj: dict[str, Any], at: int) -> int:
        extra = len(obj) - self._n - (self._ts_field in obj)
        if extra and self._reject:
            name = next(k for k in obj if k not in self._known)
            raise PayloadError("extra_field", f"{_at(at)}unknown field {_key(name)}")
        return extra

    def _too_many(self, count: object) -> PayloadError:
        return PayloadError("too_many_samples", f"{count} samples, limit is {self._max_samples}")

    def _future(self, ts: float, limit: float, where: str) -> PayloadError:
        arrival = limit - self._max_future
        return PayloadError(
            "future_timestamp",
            f"{where}: {ts!r} is more than {self._max_future:g} s after arrival ({arrival!r})",
        )

    def _csv(self, text: str, received_at: float, limit: float) -> Decoded:
        n = self._n
        samples: list[Sample] = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line or line.isspace():
                continue
            if len(samples) == self._max_samples:
                raise self._too_many(f"more than {self._max_samples}")
            cells = line.split(",")
            if len(cells) == n:
                ts = received_at
                self.unstamped += 1
            elif len(cells) == n + 1:
                ts = self._csv_ts(cells.pop(0).strip(), lineno, limit)
            else:
                raise PayloadError(
                    "csv_arity", f"line {lineno}: expected {n} or {n + 1} values, got {len(cells)}"
                )
            try:
                values = tuple(map(_strict_float, cells))
            except ValueError:
                values = (float("nan"),)  # slow path below names the cell
            for v in values:
                if not isfinite(v):
                    for name, cell in zip(self.features, cells, strict=True):
                        where = f"line {lineno}, field {_key(name)}"
                        try:
                            v = _strict_float(cell)
                        except ValueError:
                            raise _not_a_number(where, cell.strip()) from None
                        if not isfinite(v):
                            raise _non_finite(where, cell.strip())
            samples.append(Sample(ts, values))
        if not samples:
            raise PayloadError("empty", "payload has no CSV lines")
        return Decoded(samples, 0)

    def _csv_ts(self, cell: str, lineno: int, limit: float) -> float:
        try:
            raw: object = _strict_float(cell)
        except ValueError:
            raw = cell
        try:
            ts = parse_timestamp(raw)
        except PayloadError as e:
            raise PayloadError(e.reason, f"line {lineno}, timestamp: {e}") from None
        if ts > limit:
            raise self._future(ts, limit, f"line {lineno}, timestamp")
        return ts
