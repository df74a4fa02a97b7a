"""Payload bytes -> samples, forecast -> bytes (the MQTT contract in DESIGN.md).

Input formats accepted by `PayloadDecoder` (F = number of features):

- ``json``: an object ``{"ts": 1700000000.0, "Demand": 4382.8, ...}`` -> one sample, or an array
  of such objects -> samples in array order. ``ts`` is Unix seconds or an ISO 8601 string; a
  missing ``ts`` means ``received_at``. Every feature must be a finite JSON number.
- ``senml``: an RFC 8428 SenML JSON pack. Base fields ``bn``/``bt``/``bv`` carry forward;
  time = ``bt + t`` (either may be absent; both absent means ``received_at``), and a resolved
  time below 2**28 is relative to ``received_at``. A record's ``n`` is matched against the
  feature names first, then ``bn + n``. Records with equal resolved time form one sample, which
  must hold every feature exactly once; samples are returned sorted by time. Only numeric ``v``
  (plus ``bv``) is supported. Records naming other sensors are extra fields; records without any
  value field (pure base-field records) are skipped and not counted.
- ``csv``: lines separated by ``\\n`` or ``\\r\\n`` (blank lines ignored), values separated by
  ``,`` with no quoting. A line has F values (manifest order, ts = ``received_at``) or F + 1
  values whose first is the timestamp (number or ISO 8601).
- ``auto``: look at the first non-whitespace character. ``{`` -> JSON object. ``[`` -> JSON
  array, decoded as SenML iff its first element is an object that has at least one of the keys
  ``bn``, ``bt``, ``n``, ``v`` (not counting any that is a feature name) and no key that is a
  feature name; otherwise as a JSON array of objects. Anything else -> CSV.

Every problem with the input raises `PayloadError`, whose ``reason`` is a short counter key; no
input can make `PayloadDecoder.decode` raise anything else. A successful decode returns at least
one sample, and every value is a finite float. ISO 8601 parsing uses `datetime.fromisoformat`
(microsecond resolution; naive times are UTC).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from operator import itemgetter
from typing import Any, NoReturn

import numpy as np

__all__ = [
    "Decoded",
    "PayloadDecoder",
    "PayloadError",
    "Sample",
    "encode_forecast",
    "parse_timestamp",
]

FORMATS = ("auto", "json", "senml", "csv")
EXTRA_POLICIES = ("ignore", "reject")
SENML_RELATIVE_LIMIT = float(2**28)  # RFC 8428 4.5.3: resolved times below this are relative
_SENML_SIGNAL_KEYS = frozenset({"bn", "bt", "n", "v"})
_SENML_VALUE_KEYS = frozenset({"v", "vs", "vb", "vd", "s"})
_SENML_OTHER_VALUES = ("vs", "vb", "vd", "s")
_MISSING: Any = object()
_FIRST_CHAR = re.compile(r"\S")


@dataclass(frozen=True, slots=True)
class Sample:
    """One time step: ``ts`` in Unix seconds, ``values`` in the decoder's feature order."""

    ts: float
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Decoded:
    samples: list[Sample]
    extra_fields: int  # unknown fields (or SenML records) ignored under policy "ignore"


class PayloadError(ValueError):
    """A payload we cannot use. ``reason`` is a snake_case counter key; ``str(e)`` explains."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason, str(self)))


def _show(value: object) -> str:
    """``type 'value'`` for messages; bounded, and never recursive on containers."""
    kind = type(value).__name__
    if isinstance(value, dict | list):
        return f"{'object' if isinstance(value, dict) else 'array'} of {len(value)}"
    text = repr(value)
    return f"{kind} {text if len(text) <= 40 else text[:37] + '...'}"


def _key(name: str) -> str:
    text = repr(name)
    return text if len(text) <= 40 else text[:37] + "..."


def _reject_constant(name: str) -> float:
    raise PayloadError("non_finite", f"non-finite number {name} is not allowed")


_JSON = json.JSONDecoder(parse_int=float, parse_constant=_reject_constant)


def parse_timestamp(value: object) -> float:
    """Unix seconds from a JSON number (not bool) or an ISO 8601 string.

    Offsets like ``Z`` or ``+10:00`` are honoured; a naive time is UTC. The result must be finite
    and non-negative. Raises ``PayloadError("bad_timestamp", ...)``.
    """
    cls = value.__class__
    if cls is float:
        ts: float = value  # type: ignore[assignment]
    elif cls is str:
        try:
            dt = datetime.fromisoformat(value)  # type: ignore[arg-type]
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            ts = dt.timestamp()
        except (ValueError, OverflowError):
            raise PayloadError(
                "bad_timestamp", f"expected an ISO 8601 timestamp, got {_show(value)}"
            ) from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            ts = float(value)
        except OverflowError:
            raise PayloadError("bad_timestamp", f"timestamp out of range: {_show(value)}") from None
    else:
        raise PayloadError(
            "bad_timestamp",
            f"expected Unix seconds (number) or ISO 8601 string, got {_show(value)}",
        )
    if not isfinite(ts) or ts < 0.0:
        raise PayloadError("bad_timestamp", f"timestamp must be finite and >= 0, got {ts!r}")
    return ts


def _strict_float(text: str) -> float:
    """float() for CSV cells, without Python-only syntax (underscores, non-ASCII digits)."""
    if "_" in text or not text.isascii():
        raise ValueError(text)
    return float(text)


class PayloadDecoder:
    """Decodes one MQTT payload into samples for a fixed feature order (see module docstring)."""

    def __init__(
        self,
        features: Sequence[str],
        fmt: str = "auto",
        ts_field: str = "ts",
        max_payload_bytes: int = 65536,
        max_samples: int = 1000,
        max_future_s: float = 86400.0,
        extra_fields: str = "ignore",
    ) -> None:
        names = tuple(features)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"features: expected non-empty names, got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"features: names must be unique, got {names!r}")
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        if not isinstance(ts_field, str) or not ts_field or ts_field in names:
            raise ValueError(f"ts_field: must be a non-empty non-feature name, got {ts_field!r}")
        if max_payload_bytes < 1 or max_samples < 1:
            raise ValueError(
                f"max_payload_bytes ({max_payload_bytes}) and max_samples ({max_samples}) "
                "must be >= 1"
            )
        if not max_future_s >= 0.0:
            raise ValueError(f"max_future_s: must be >= 0, got {max_future_s!r}")
        if extra_fields not in EXTRA_POLICIES:
            raise ValueError(f"extra_fields: must be one of {EXTRA_POLICIES}, got {extra_fields!r}")
        self.features = names
        self.fmt = fmt
        self._n = len(names)
        self._index = {name: i for i, name in enumerate(names)}
        self._feature_set = frozenset(names)
        self._known = self._feature_set | {ts_field}
        self._get = itemgetter(*names)
        self._ts_field = ts_field
        self._max_bytes = max_payload_bytes
        self._max_samples = max_samples
        self._max_future = float(max_future_s)
        self._reject = extra_fields == "reject"
        self._senml_signal = _SENML_SIGNAL_KEYS - self._feature_set

    # -- entry point ---------------------------------------------------------------------------

    def decode(self, payload: bytes, received_at: float) -> Decoded:
        """Decode one payload; ``received_at`` (Unix seconds) fills missing/relative times."""
        size = len(payload)
        if size > self._max_bytes:
            raise PayloadError("too_large", f"payload is {size} bytes, limit is {self._max_bytes}")
        try:
            text = str(payload, "utf-8")
        except UnicodeDecodeError as e:
            raise PayloadError(
                "invalid_utf8", f"payload is not UTF-8: {e.reason} at byte {e.start}"
            ) from None
        limit = received_at + self._max_future
        if self.fmt == "csv":
            return self._csv(text, received_at, limit)
        first = _FIRST_CHAR.search(text)
        if first is None:
            raise PayloadError("empty", "payload is empty")
        head = first.group()
        if self.fmt == "auto" and head != "{" and head != "[":
            return self._csv(text, received_at, limit)
        doc = self._load(text)
        if self.fmt == "senml":
            return self._senml(doc, received_at, limit)
        if doc.__class__ is dict:
            sample = self._object(doc, received_at, limit, -1)
            return Decoded([sample], self._extra(doc, -1))
        if doc.__class__ is not list:
            raise PayloadError(
                "not_an_object", f"expected a JSON object or array, got {_show(doc)}"
            )
        if not doc:
            raise PayloadError("empty", "payload is an empty array")
        if self.fmt == "auto" and self._looks_senml(doc[0]):
            return self._senml(doc, received_at, limit)
        return self._array(doc, received_at, limit)

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
        keys = first.keys()  # type: ignore[attr-defined]
        return not keys.isdisjoint(self._senml_signal) and keys.isdisjoint(self._feature_set)

    def _array(self, doc: list[Any], received_at: float, limit: float) -> Decoded:
        if len(doc) > self._max_samples:
            raise PayloadError(
                "too_many_samples", f"{len(doc)} samples, limit is {self._max_samples}"
            )
        samples = []
        extra = 0
        for i, obj in enumerate(doc):
            if obj.__class__ is not dict:
                raise PayloadError(
                    "not_an_object", f"element {i}: expected an object, got {_show(obj)}"
                )
            samples.append(self._object(obj, received_at, limit, i))
            extra += self._extra(obj, i)
        return Decoded(samples, extra)

    def _object(self, obj: dict[str, Any], received_at: float, limit: float, at: int) -> Sample:
        raw = obj.get(self._ts_field, _MISSING)
        if raw is _MISSING:
            ts = received_at
        else:
            try:
                ts = parse_timestamp(raw)
            except PayloadError as e:
                raise PayloadError(
                    e.reason, f"{_at(at)}field {_key(self._ts_field)}: {e}"
                ) from None
            if ts > limit:
                raise self._future(ts, limit, f"{_at(at)}field {_key(self._ts_field)}")
        try:
            values = self._get(obj)
        except KeyError as e:
            raise PayloadError(
                "missing_field", f"{_at(at)}missing field {_key(e.args[0])}"
            ) from None
        if self._n == 1:
            values = (values,)
        for v in values:
            if v.__class__ is not float or not isfinite(v):
                self._explain(obj, at)
        return Sample(ts, values)

    def _explain(self, obj: dict[str, Any], at: int) -> NoReturn:
        """Raise the error for the first feature of ``obj`` that is not a finite number."""
        for name in self.features:
            v = obj[name]
            if v.__class__ is not float:
                raise PayloadError(
                    "not_a_number",
                    f"{_at(at)}field {_key(name)}: expected a number, got {_show(v)}",
                )
            if not isfinite(v):
                raise PayloadError(
                    "non_finite", f"{_at(at)}field {_key(name)}: {v!r} is not finite"
                )

    def _extra(self, obj: dict[str, Any], at: int) -> int:
        extra = len(obj) - self._n - (self._ts_field in obj)
        if extra and self._reject:
            name = next(k for k in obj if k not in self._known)
            raise PayloadError(
                "extra_field", f"{_at(at)}unknown field {_key(name)} (extra_fields is 'reject')"
            )
        return extra

    def _future(self, ts: float, limit: float, where: str) -> PayloadError:
        return PayloadError(
            "future_timestamp",
            f"{where}: {ts!r} is more than {self._max_future:g} s after arrival "
            f"({limit - self._max_future!r})",
        )

    # -- SenML ---------------------------------------------------------------------------------

    def _senml(self, doc: Any, received_at: float, limit: float) -> Decoded:
        if doc.__class__ is not list:
            raise PayloadError("senml_invalid", f"SenML: expected an array, got {_show(doc)}")
        if not doc:
            raise PayloadError("empty", "payload is an empty array")
        base_name, base_time, base_value = "", _MISSING, 0.0
        rows: dict[float, list[Any]] = {}
        extra = 0
        for i, rec in enumerate(doc):
            if rec.__class__ is not dict:
                raise PayloadError(
                    "not_an_object", f"record {i}: expected an object, got {_show(rec)}"
                )
            for key in rec:
                if key.endswith("_"):
                    raise PayloadError(
                        "senml_invalid", f"record {i}: must-understand field {_key(key)}"
                    )
            if "bn" in rec:
                base_name = rec["bn"]
                if base_name.__class__ is not str:
                    raise PayloadError(
                        "senml_invalid",
                        f"record {i}: 'bn' must be a string, got {_show(base_name)}",
                    )
            if "bt" in rec:
                base_time = _senml_number(rec["bt"], i, "bt")
            if "bv" in rec:
                base_value = _senml_number(rec["bv"], i, "bv")
            name = rec.get("n", "")
            if name.__class__ is not str:
                raise PayloadError(
                    "senml_invalid", f"record {i}: 'n' must be a string, got {_show(name)}"
                )
            col = self._index.get(name)
            if col is None:
                col = self._index.get(base_name + name)
            if col is None:
                if not rec.keys().isdisjoint(_SENML_VALUE_KEYS):
                    extra += 1
                    if self._reject:
                        raise PayloadError(
                            "extra_field",
                            f"record {i}: unknown sensor {_key(base_name + name)} "
                            "(extra_fields is 'reject')",
                        )
                continue
            v = rec.get("v", _MISSING)
            if v.__class__ is not float:
                if v is _MISSING:
                    other = [k for k in _SENML_OTHER_VALUES if k in rec]
                    got = f"only {other[0]!r}" if other else "no value"
                    raise PayloadError(
                        "not_a_number", f"{self._rec(i, col)}: expected a numeric 'v', got {got}"
                    )
                raise PayloadError(
                    "not_a_number",
                    f"{self._rec(i, col)}: field 'v': expected a number, got {_show(v)}",
                )
            value = base_value + v
            if not isfinite(value):
                raise PayloadError(
                    "non_finite", f"{self._rec(i, col)}: value {value!r} is not finite"
                )
            t = rec.get("t", _MISSING)
            if t is _MISSING and base_time is _MISSING:
                ts = received_at
            else:
                ts = (0.0 if base_time is _MISSING else base_time) + (
                    0.0 if t is _MISSING else _senml_time(t, i)
                )
                if ts < SENML_RELATIVE_LIMIT:
                    ts += received_at
                if not isfinite(ts) or ts < 0.0:
                    raise PayloadError(
                        "bad_timestamp", f"{self._rec(i, col)}: resolved time {ts!r} is not >= 0"
                    )
                if ts > limit:
                    raise self._future(ts, limit, self._rec(i, col))
            row = rows.get(ts)
            if row is None:
                row = rows[ts] = [None] * self._n
            elif row[col] is not None:
                raise PayloadError(
                    "senml_invalid", f"{self._rec(i, col)}: second value at time {ts!r}"
                )
            row[col] = value
        if not rows:
            raise PayloadError("missing_field", f"SenML: no records for features {self.features!r}")
        if len(rows) > self._max_samples:
            raise PayloadError(
                "too_many_samples", f"{len(rows)} samples, limit is {self._max_samples}"
            )
        samples = []
        for ts in sorted(rows):
            row = rows[ts]
            if None in row:
                name = self.features[row.index(None)]
                raise PayloadError(
                    "missing_field", f"SenML: no record for {_key(name)} at time {ts!r}"
                )
            samples.append(Sample(ts, tuple(row)))
        return Decoded(samples, extra)

    def _rec(self, index: int, col: int) -> str:
        return f"record {index} ({_key(self.features[col])})"

    # -- CSV -----------------------------------------------------------------------------------

    def _csv(self, text: str, received_at: float, limit: float) -> Decoded:
        n = self._n
        samples = []
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line or line.isspace():
                continue
            if len(samples) == self._max_samples:
                raise PayloadError("too_many_samples", f"more than {self._max_samples} samples")
            cells = line.split(",")
            if len(cells) == n:
                ts = received_at
            elif len(cells) == n + 1:
                ts = self._csv_ts(cells.pop(0).strip(), lineno, limit)
            else:
                raise PayloadError(
                    "csv_arity",
                    f"line {lineno}: expected {n} or {n + 1} comma-separated values, "
                    f"got {len(cells)}",
                )
            try:
                values = tuple(map(_strict_float, cells))
            except ValueError:
                self._csv_explain(cells, lineno)
            for v in values:
                if not isfinite(v):
                    self._csv_explain(cells, lineno)
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

    def _csv_explain(self, cells: list[str], lineno: int) -> NoReturn:
        """Raise the error for the first cell that is not a finite number."""
        for name, cell in zip(self.features, cells, strict=True):
            where = f"line {lineno}, field {_key(name)}"
            try:
                v = _strict_float(cell)
            except ValueError:
                raise PayloadError(
                    "not_a_number", f"{where}: expected a number, got {_show(cell.strip())}"
                ) from None
            if not isfinite(v):
                raise PayloadError("non_finite", f"{where}: {cell.strip()!r} is not finite")
        raise AssertionError("unreachable: no bad cell found")  # pragma: no cover


def _at(index: int) -> str:
    return "" if index < 0 else f"element {index}: "


def _senml_number(value: object, index: int, key: str) -> float:
    if value.__class__ is not float or not isfinite(value):  # type: ignore[arg-type]
        raise PayloadError(
            "senml_invalid", f"record {index}: {key!r} must be a finite number, got {_show(value)}"
        )
    return value  # type: ignore[return-value]


def _senml_time(value: object, index: int) -> float:
    if value.__class__ is not float or not isfinite(value):  # type: ignore[arg-type]
        raise PayloadError(
            "bad_timestamp", f"record {index}: 't' must be a finite number, got {_show(value)}"
        )
    return value  # type: ignore[return-value]


def encode_forecast(
    stream: str,
    ts: float,
    model_id: str,
    targets: Sequence[str],
    interval_s: float,
    values: np.ndarray,
) -> bytes:
    """Compact UTF-8 JSON forecast message (DESIGN.md, "MQTT contract").

    ``values`` is ``[horizon, T]`` in original units; row ``k - 1`` is stamped
    ``ts + k * interval_s``. Raises ValueError on a wrong shape or a non-finite number.
    """
    # H: horizon  T: targets
    names = list(targets)
    arr = np.asarray(values, dtype=np.float64)  # -> (H, T), exact widening from float32
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(f"values: expected shape (horizon, {len(names)}), got {arr.shape}")
    if "ts" in names:
        raise ValueError("targets: a target may not be named 'ts'")
    start, step = float(ts), float(interval_s)
    if not (isfinite(start) and isfinite(step) and step > 0.0):
        raise ValueError(f"ts ({start!r}) must be finite and interval_s ({step!r}) > 0")
    if not np.isfinite(arr).all():
        raise ValueError(f"values: forecast for {stream!r} contains non-finite numbers")
    forecast = []
    for k, row in enumerate(arr.tolist(), 1):
        item = {"ts": start + k * step}
        item.update(zip(names, row, strict=True))
        forecast.append(item)
    doc = {"stream": stream, "ts": start, "model": model_id, "forecast": forecast}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
