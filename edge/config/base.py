"""What every `edge.toml` section is made of: the field helper (default, help line, rules), the
section base class and the error an invalid file raises. The sections themselves are in
`sections.py` (the core) and `services.py` (deploy, metrics, Home Assistant...)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import field, is_dataclass
from typing import Any


class ConfigError(ValueError):
    """An invalid configuration; `errors` holds one line per problem, the message joins them."""

    def __init__(self, errors: str | list[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("\n".join(self.errors))


def opt(default: Any, help: str, **rules: Any) -> Any:
    """A field: default (MISSING = required), help line, rules (ge, gt, le, check, example)."""
    if is_dataclass(default):
        return field(default_factory=type(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


class Section:
    def _rules(self) -> Iterator[tuple[str, str]]:  # cross-field rules: (relative key, message)
        return iter(())
