"""Payload bytes -> samples, forecast -> bytes (the MQTT contract in DESIGN.md).

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

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from math import isfinite
from operator import itemgetter
from typing import Any

import numpy as np

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
    """``type value`` for messages: bounded, and never recursive on containers."""
    if isinstance(value, dict | list):
        return f"{'object' if isinstance(value, dict) else 'array'} of {len(value)}"
    return f"{type(value).__name__} {_key(value)}"


def _key(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _not_a_number(where: str, value: object) -> PayloadError:
    return PayloadError("not_a_number", f"{where}: expected a number, got {_show(value)}")


def _non_finite(where: str, value: object) -> PayloadError:
    return PayloadError("non_finite", f"{where}: {_key(value)} is not finite")


def _reject_constant(name: str) -> float:
    raise PayloadError("non_finite", f"JSON literal {name} is not allowed (non-finite number)")


_JSON = json.JSONDecoder(parse_int=float, parse_constant=_reject_constant)


def parse_timestamp(value: object) -> float:
    """Unix seconds from a JSON number (not bool) or an ISO 8601 string.

    Offsets like ``Z`` or ``+10:00`` are honoured; a naive time is UTC. The result must be finite
    and non-negative. Raises ``PayloadError("bad_timestamp", ...)``.
    """
    cls = value.__class__
    try:
        if cls is float:
            ts: float = value  # type: ignore[assignment]
        elif cls is str:
            dt = datetime.fromisoformat(value)  # type: ignore[arg-type]
            ts = (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()
        elif isinstance(value, int | float) and not isinstance(value, bool):
            ts = float(value)
        else:
            raise ValueError
    except (ValueError, OverflowError):
        raise PayloadError(
            "bad_timestamp", f"expected seconds or ISO 8601, got {_show(value)}"
        ) from None
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
        if not names or len(set(names)) < len(names) or not all(map(_is_name, names)):
            raise ValueError(f"features: expected unique non-empty names, got {names!r}")
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        if not isinstance(ts_field, str) or not ts_field or ts_field in names:
            raise ValueError(f"ts_field: must be a non-empty non-feature name, got {ts_field!r}")
        if extra_fields not in EXTRA_POLICIES:
            raise ValueError(f"extra_fields: must be one of {EXTRA_POLICIES}, got {extra_fields!r}")
        if max_payload_bytes < 1 or max_samples < 1 or not max_future_s >= 0.0:
            raise ValueError(
                f"limits: need max_payload_bytes >= 1 ({max_payload_bytes}), max_samples >= 1 "
                f"({max_samples}) and max_future_s >= 0 ({max_future_s!r})"
            )
        self.features = names
        self.fmt = fmt
        self._n = len(names)
        self._index = {name: i for i, name in enumerate(names)}
        self._feature_set = frozenset(names)
        self._known = self._feature_set | {ts_field}
        self._get = itemgetter(*names)  # obj -> value, or tuple of values when F > 1
        self._ts_field = ts_field
        self._max_bytes = max_payload_bytes
        self._max_samples = max_samples
        self._max_future = float(max_future_s)
        self._reject = extra_fields == "reject"
        self._senml_signal = _SENML_SIGNAL_KEYS - self._feature_set

    def decode(self, payload: bytes, received_at: float) -> Decoded:
        """Decode one payload; ``received_at`` (Unix seconds) fills missing/relative times."""
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
        keys = first.keys()  # type: ignore[attr-defined]
        return not keys.isdisjoint(self._senml_signal) and keys.isdisjoint(self._feature_set)

    def _object(self, obj: dict[str, Any], received_at: float, limit: float, at: int) -> Sample:
        raw = obj.get(self._ts_field, _MISSING)
        if raw is _MISSING:
            ts = received_at
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
            else:
                ts = 0.0 if base_time is _MISSING else base_time
                if t is not _MISSING:
                    if t.__class__ is not float or not isfinite(t):
                        raise PayloadError("bad_timestamp", f"{self._rec(i, col)}: 't' {_show(t)}")
                    ts += t
                if ts < SENML_RELATIVE_LIMIT:
                    ts += received_at
                if not isfinite(ts) or ts < 0.0:
                    raise PayloadError("bad_timestamp", f"{self._rec(i, col)}: time {ts!r} < 0")
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


def _is_name(name: object) -> bool:
    return isinstance(name, str) and name != ""


def _at(index: int) -> str:
    return "" if index < 0 else f"element {index}: "


def _senml_field(rec: dict[str, Any], key: str, kind: type, index: int) -> Any:
    value: Any = rec[key]
    if value.__class__ is not kind or (kind is float and not isfinite(rec[key])):
        want = "a string" if kind is str else "a finite number"
        raise PayloadError("senml_invalid", f"record {index}: {key!r} not {want}: {_show(value)}")
    return value


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

    Built by hand, byte for byte what ``json.dumps(doc, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)`` gives (floats are ``float.__repr__`` there too), at a
    fraction of the cost: this runs once per forecast.
    """
    # H: horizon  T: targets
    names = targets if targets.__class__ is tuple else tuple(targets)
    arr = values if values.__class__ is np.ndarray and values.dtype == np.float64 else (
        np.asarray(values, dtype=np.float64))  # -> (H, T), exact widening from float32
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise ValueError(f"values: expected shape (horizon, {len(names)}), got {arr.shape}")
    keys = _TARGET_KEYS.get(names)
    if keys is None:
        if "ts" in names:
            raise ValueError("targets: a target may not be named 'ts'")
        if len(set(names)) != len(names):  # duplicate names collapse in a dict: keep json's way
            return _encode_forecast_json(stream, ts, model_id, list(names), interval_s, arr)
        keys = tuple("," + _quote(n) + ":" for n in names)  # ',"Demand":'
        if len(_TARGET_KEYS) < 64:
            _TARGET_KEYS[names] = keys
    start, step = float(ts), float(interval_s)
    if not (isfinite(start) and isfinite(step) and step > 0.0):
        raise ValueError(f"ts ({start!r}) must be finite and interval_s ({step!r}) > 0")
    rows = arr.tolist()
    parts = ['{"stream":', _quote(stream), ',"ts":', repr(start), ',"model":', _quote(model_id),
             ',"forecast":[']
    for k, row in enumerate(rows, 1):
        parts.append('{"ts":' if k == 1 else ',{"ts":')
        parts.append(repr(start + k * step))
        for key, v in zip(keys, row, strict=True):
            if not isfinite(v):
                raise ValueError(f"values: forecast for {stream!r} contains non-finite numbers")
            parts.append(key)
            parts.append(repr(v))
        parts.append("}")
    parts.append("]}")
    return "".join(parts).encode()


_TARGET_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}
_quote = encode_basestring  # what json.dumps uses for strings with ensure_ascii=False


def _encode_forecast_json(
    stream: str, ts: float, model_id: str, names: list[str], interval_s: float, arr: np.ndarray
) -> bytes:
    """The reference encoding through `json.dumps` (also the path for odd target lists)."""
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
