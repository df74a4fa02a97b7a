"""Interpreter backends, one module each, tried in order of preference.

Each module defines a `Backend` with a `key` and a `load_interpreter_class()` that imports its
package; an import failure is reported and the next backend is tried.
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


def load_backend(key: str) -> LoadedBackend:
    if key not in REGISTRY:
        raise ValueError(f"unknown backend {key!r}; choose one of {', '.join(REGISTRY)}")
    module = importlib.import_module(REGISTRY[key])
    return LoadedBackend(key=key, interpreter_class=module.load_interpreter_class())


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
