"""A small generic validator: TOML tables -> frozen dataclasses, one error line per problem.

Each dataclass field carries its rules in `field(metadata=...)` (`ge`, `gt`, `le`, `check`) and
its type in the hint (`int`, `float`, `bool`, `str`, `Path`, `tuple[Path, ...]`, `Literal[...]`,
nested dataclasses; `empty_ok` lets a string be empty); a class may add cross-field rules with
`_rules()` and implied defaults with `_implied(raw)`.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import MISSING, Field, fields, is_dataclass
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

TOML_TYPE: dict[type, str] = {bool: "boolean", int: "integer", float: "float", str: "string"}
TABLE_OR_ARRAY: dict[type, str] = {dict: "a table", list: "an array"}


def show(value: Any) -> str:
    """A value as it would look in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if hasattr(value, "isoformat"):  # TOML dates and times
        return str(value.isoformat())
    return TABLE_OR_ARRAY.get(type(value)) or repr(value)


def typed(value: Any) -> str:
    kind = TOML_TYPE.get(type(value)) or ("" if type(value) in TABLE_OR_ARRAY else "a datetime")
    return f"{kind} {show(value)}".strip()


def split_address(value: str) -> tuple[str, int] | None:
    """`"host:port"` as (host, port), an IPv6 host written in brackets (`"[fd00::2]:1883"`) and
    returned without them; None when `value` is not of that form."""
    host, colon, port = value.rpartition(":")
    if not (colon and host and port.isdigit() and 1 <= int(port) <= 65535):
        return None
    if host.startswith("[") and host.endswith("]") and len(host) > 2:
        host = host[1:-1]
    elif any(c in host for c in "[]:"):
        return None  # an IPv6 address needs its brackets
    return None if any(c.isspace() or c == "/" for c in host) else (host, int(port))


def broker_error(value: str) -> str | None:
    """`[mqtt] fallback_brokers`' rule."""
    if split_address(value) is None:
        return 'must be "host:port" (e.g. "nats-2:1883", "[fd00::2]:1883")'
    return None


def nats_url_error(value: str) -> str | None:
    """`[state] replicate`'s rule: what nats-py connects to."""
    scheme, sep, rest = value.partition("://")
    if not (sep and scheme in ("nats", "tls") and split_address(rest.rpartition("@")[2])):
        return 'must be "nats://host:port" (or tls://, e.g. "nats://nats-1:4222")'
    return None


def unwrap(hint: Any) -> Any:
    if get_origin(hint) in (Union, UnionType):
        return next(a for a in get_args(hint) if a is not NoneType)
    return hint


def rule_text(f: Field[Any], hint: Any) -> str:
    m, hint = f.metadata, unwrap(hint)
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(show(c) for c in get_args(hint))
    if "ge" in m and "le" in m:
        return f"{m['ge']}..{m['le']}"
    if "gt" in m:
        return f"> {m['gt']}"
    if "ge" in m:
        return f">= {m['ge']}"
    return ""


def check(f: Field[Any], hint: Any, value: Any) -> tuple[Any, str | None]:
    """Convert a TOML value to the field's type; return (value, None) or (None, rule broken)."""
    hint, m = unwrap(hint), f.metadata
    if get_origin(hint) is tuple:  # tuple[Path, ...]: one value or an array of them
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            one, broken = check(f, get_args(hint)[0], item)
            if broken and isinstance(item, str):  # the right type: the item's own rule
                return None, broken
            if broken:
                kind = "path" if get_args(hint)[0] is Path else "string"
                return None, f"must be a {kind} or an array of {kind}s: {broken}"
            out.append(one)
        return tuple(out), None
    if get_origin(hint) is Literal:
        ok = isinstance(value, str) and value in get_args(hint)
        return (value, None) if ok else (None, f"must be {rule_text(f, hint)}, got {show(value)}")
    wanted = {bool: "a boolean", int: "an integer", float: "a number"}.get(hint, "a string")
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, str if hint is Path else hint) or (
        hint is int and isinstance(value, bool)
    ):
        return None, f"must be {wanted}, got {typed(value)}"
    if isinstance(value, str):
        if (not value and not m.get("empty_ok")) or "\x00" in value:
            return None, f"must be a non-empty string without NUL, got {show(value)}"
        if "check" in m and (broken := m["check"](value)):
            return None, f"{broken}, got {show(value)}"
        return (Path(value) if hint is Path else value), None
    if isinstance(value, bool):
        return value, None
    too_low = ("ge" in m and not value >= m["ge"]) or ("gt" in m and not value > m["gt"])
    if too_low or ("le" in m and not value <= m["le"]) or math.isnan(value):
        return None, f"must be {rule_text(f, hint)}, got {show(value)}"
    return value, None


def build(cls: type, raw: Any, prefix: str, errors: list[str]) -> Any:
    """Build dataclass `cls` from TOML table `raw`, appending 'key: problem' lines to `errors`."""
    if not isinstance(raw, dict):
        errors.append(f"{prefix}: must be a table, got {typed(raw)}")
        return None
    raw = {**getattr(cls, "_implied", lambda _: {})(raw), **raw}
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    dotted = (prefix + ".") if prefix else ""
    for key in raw:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f' (did you mean "{close[0]}"?)' if close else ""
            errors.append(f"{dotted}{key}: unknown key{hint}")
    before = len(errors)
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        key, hint = dotted + f.name, hints[f.name]
        if is_dataclass(hint):
            kwargs[f.name] = build(hint, raw.get(f.name, {}), key, errors)  # type: ignore[arg-type]
        elif f.name in raw:
            value, broken = check(f, hint, raw[f.name])
            if broken:
                errors.append(f"{key}: {broken}")
            kwargs[f.name] = value
        elif f.default is MISSING and f.default_factory is MISSING:
            errors.append(f"{key}: missing required key")
    if len(errors) > before:
        return None
    obj = cls(**kwargs)
    errors.extend(f"{dotted}{key}: {msg}" for key, msg in obj._rules())
    return obj
