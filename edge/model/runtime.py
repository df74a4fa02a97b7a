"""Load a bundle's models into an interpreter and prove them with the bundle's self-test.

Backends are tried best first (`ai_edge_litert` -> `tflite_runtime`; never TensorFlow); a
backend that cannot import, cannot load a model (e.g. an op newer than it knows) or fails the
self-test is reported with its reason and the next one is tried.

# B: batch  L: seq_len  F: features  H: horizon  T: targets
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from seqcast.edge.model.backends import LoadedBackend, NoBackendError, backend_keys, load_backend
from seqcast.edge.model.backends.base import ModelLoadError, TFLiteModel
from seqcast.edge.model.bundle import STEP_FILE, WINDOW_FILE, Bundle

log = logging.getLogger(__name__)


class SelfTestError(RuntimeError):
    """The interpreter's outputs differ from the vectors stored in the bundle."""


@dataclass(frozen=True)
class SelfTestReport:
    backend: str
    window_max_error: float
    step_max_error: float | None
    tolerance: float

    @property
    def passed(self) -> bool:
        errs = [self.window_max_error] + (
            [] if self.step_max_error is None else [self.step_max_error]
        )
        return all(e <= self.tolerance for e in errs)


class LoadedModel:
    """A bundle's models in one interpreter backend, in scaled units."""

    def __init__(self, bundle: Bundle, backend: LoadedBackend, num_threads: int = 1):
        self.bundle = bundle
        self.backend = backend.key
        cls = backend.interpreter_class
        self._window = TFLiteModel(cls, bundle.models[WINDOW_FILE], num_threads)
        self._step = (
            TFLiteModel(cls, bundle.models[STEP_FILE], num_threads)
            if STEP_FILE in bundle.models
            else None
        )
        self.state_names = [s.name for s in bundle.manifest.state]
        self._check_signatures()

    def _check_signatures(self) -> None:
        m = self.bundle.manifest
        want = (m.seq_len, len(m.features))
        if self._window.input_shape("x") != want:
            raise ModelLoadError(
                f"window.tflite takes {self._window.input_shape('x')}, manifest says {want}"
            )
        if self._step is not None:
            missing = {"x", *self.state_names} - set(self._step.input_names)
            if missing:
                raise ModelLoadError(f"step.tflite lacks inputs {sorted(missing)}")

    @property
    def has_step(self) -> bool:
        return self._step is not None

    def window(self, x: np.ndarray) -> np.ndarray:
        """(B, L, F) -> (B, H, T)."""
        return self._window.run({"x": x})["y"]

    def step(self, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """x (B, F), states [(B, U), ...] -> y (B, H, T), new states."""
        if self._step is None:
            raise RuntimeError("this bundle has no step model (window mode only)")
        out = self._step.run({"x": x, **dict(zip(self.state_names, states, strict=True))})
        return out["y"], [out[n] for n in self.state_names]

    def zero_states(self, batch: int) -> list[np.ndarray]:
        return [np.zeros((batch, *s.shape), np.float32) for s in self.bundle.manifest.state]

    def selftest(self) -> SelfTestReport:
        st = self.bundle.manifest.selftest
        tol = float(st.get("tolerance", 1e-3))
        w = st.get("window")
        if not w:
            raise SelfTestError("manifest.selftest.window is missing")
        wx, wy = np.asarray(w["x"], np.float32), np.asarray(w["y"], np.float32)
        window_err = float(np.max(np.abs(self.window(wx) - wy)))
        step_err = None
        s = st.get("step")
        if self._step is not None and s:
            sx, sy = (
                np.asarray(s["x"], np.float32),
                np.asarray(s["y"], np.float32),
            )  # (S, F), (S, H, T)
            states = self.zero_states(1)
            errs = []
            for t in range(len(sx)):
                y, states = self.step(sx[t : t + 1], states)
                errs.append(float(np.max(np.abs(y[0] - sy[t]))))
            step_err = max(errs)
        return SelfTestReport(self.backend, window_err, step_err, tol)


def load_model(
    bundle: Bundle, backend: str = "auto", num_threads: int = 1
) -> tuple[LoadedModel, SelfTestReport]:
    """The first backend that loads the bundle and passes its self-test."""
    reasons: list[str] = []
    for key in backend_keys(backend):
        try:
            b = load_backend(key)
        except ImportError as e:
            reasons.append(f"{key}: not installed ({e})")
            log.info("interpreter backend %s unavailable: %s", key, e)
            continue
        try:
            model = LoadedModel(bundle, b, num_threads)
            report = model.selftest()
        except (ModelLoadError, SelfTestError, RuntimeError, ValueError) as e:
            reasons.append(f"{b.key}: {e}")
            log.warning("backend %s cannot run %s: %s", b.key, bundle.model_id, e)
            continue
        if report.passed:
            return model, report
        reasons.append(
            f"{b.key}: self-test failed (max error window {report.window_max_error:.3g}, "
            f"step {report.step_max_error if report.step_max_error is not None else '-'}, "
            f"tolerance {report.tolerance:g})"
        )
        log.warning(
            "backend %s failed the self-test of %s: %s", b.key, bundle.model_id, reasons[-1]
        )
    raise NoBackendError(f"no backend can run {bundle.model_id}: " + "; ".join(reasons))
