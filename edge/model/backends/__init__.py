"""Interpreter backends, one module each, tried in order of preference.

Each module defines a `KEY` and a `load_interpreter_class()` that imports its package; an import
failure is reported and the next backend is tried. `REGISTRY` is read at call time, so an entry
added later (a test's crashing backend, say) is tried like the built-in ones, in dict order.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from seqcast.edge.model.backends.base import InterpreterClass

log = logging.getLogger(__name__)

# key -> module; the order is the order of preference.
REGISTRY: dict[str, str] = {
    "litert": "seqcast.edge.model.backends.litert",
    "tflite_runtime": "seqcast.edge.model.backends.tflite_runtime",
}


class NoBackendError(RuntimeError):
    """No interpreter package could be imported; the message lists each reason."""


@dataclass(frozen=True)
class LoadedBackend:
    key: str
    interpreter_class: InterpreterClass


def backend_module(key: str) -> str:
    """The module that implements backend `key` (the name a child process imports)."""
    try:
        return REGISTRY[key]
    except KeyError:
        raise ValueError(f"unknown backend {key!r}; choose one of {', '.join(REGISTRY)}") from None


def load_backend(key: str, module: str | None = None) -> LoadedBackend:
    """Import backend `key` (from `module` when given, else its REGISTRY entry) and its package."""
    mod = importlib.import_module(backend_module(key) if module is None else module)
    return LoadedBackend(key=key, interpreter_class=mod.load_interpreter_class())


def backend_keys(preferred: str = "auto") -> list[str]:
    """Keys to try, best first: all of them for "auto", else just the one asked for."""
    if preferred != "auto" and preferred not in REGISTRY:
        raise ValueError(
            f"unknown backend {preferred!r}; choose auto or one of {', '.join(REGISTRY)}"
        )
    return list(REGISTRY) if preferred == "auto" else [preferred]


def first_backend(preferred: str = "auto") -> LoadedBackend:
    """The best backend that imports (importing only as far as needed)."""
    reasons: list[str] = []
    for key in backend_keys(preferred):
        try:
            return load_backend(key)
        except ImportError as e:
            reasons.append(f"{key}: {e}")
    raise NoBackendError("no TFLite interpreter available (" + "; ".join(reasons) + ")")
