"""Interpreter backends, one module each, tried in order of preference.

Each module defines a `Backend` with a `key` and a `load_interpreter_class()` that imports its
package; an import failure is reported and the next backend is tried.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass

from edge.backends.base import InterpreterClass

log = logging.getLogger(__name__)

# key -> module; the order is the order of preference.
REGISTRY: dict[str, str] = {
    "litert": "edge.backends.litert",
    "tflite_runtime": "edge.backends.tflite_runtime",
    "tensorflow": "edge.backends.tensorflow_lite",
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


def available_backends(preferred: str = "auto") -> list[LoadedBackend]:
    """Every importable backend, best first (or only `preferred` when it is not "auto")."""
    keys = list(REGISTRY) if preferred == "auto" else [preferred]
    found: list[LoadedBackend] = []
    reasons: list[str] = []
    for key in keys:
        try:
            found.append(load_backend(key))
        except ImportError as e:
            reasons.append(f"{key}: {e}")
            log.info("interpreter backend %s unavailable: %s", key, e)
    if not found:
        raise NoBackendError("no TFLite interpreter available (" + "; ".join(reasons) + ")")
    return found
