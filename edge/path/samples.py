"""What a payload decodes to (samples), how decoding fails (PayloadError), and timestamps."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from typing import Any


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
    and non-negative. Raises ``PayloadError("invalid_timestamp", ...)``.
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
            "invalid_timestamp", f"expected seconds or ISO 8601, got {_show(value)}"
        ) from None
    if not isfinite(ts) or ts < 0.0:
        raise PayloadError("invalid_timestamp", f"timestamp must be finite and >= 0, got {ts!r}")
    return ts


def _is_name(name: object) -> bool:
    return isinstance(name, str) and name != ""


def _at(index: int) -> str:
    return "" if index < 0 else f"element {index}: "
