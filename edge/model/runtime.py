"""Load a bundle's models into an interpreter and prove them with the bundle's self-test.

Backends are tried best first (`ai_edge_litert` -> `tflite_runtime`; never TensorFlow); a
backend that cannot import, cannot load a model (e.g. an op newer than it knows), fails the
self-test or crashes the process doing so (caught by testing it in a child process first, see
`isolation.py`) is reported with its reason and the next one is tried.

# B: batch  L: seq_len  F: features  H: horizon  C: output columns (T targets, each with its
# point forecast and Q quantiles: T * (1 + Q), see edge/quantiles.py)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from seqcast.edge.model import isolation
from seqcast.edge.model.backends import (
    LoadedBackend,
    NoBackendError,
    backend_keys,
    backend_module,
    load_backend,
)
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
        want = (m.seq_len, m.input_width)  # the features, then the calendar columns
        if self._window.input_shape("x") != want:
            raise ModelLoadError(
                f"window.tflite takes {self._window.input_shape('x')}, manifest says {want}"
            )
        if self._step is not None:
            missing = {"x", *self.state_names} - set(self._step.input_names)
            if missing:
                raise ModelLoadError(f"step.tflite lacks inputs {sorted(missing)}")
        # (H, C): the targets' point forecasts and, with quantiles, their interval columns
        out = (m.horizon, len(m.output_columns))
        for file, model in ((WINDOW_FILE, self._window), (STEP_FILE, self._step)):
            if model is None:
                continue
            if "y" not in model.output_names:
                raise ModelLoadError(f"{file} has no output 'y'")
            if model.output_shape("y") != out:
                raise ModelLoadError(
                    f"{file} gives y {model.output_shape('y')}, manifest says {out} "
                    f"(horizon, targets x (1 + {len(m.quantiles)} quantiles))"
                )

    @property
    def has_step(self) -> bool:
        return self._step is not None

    def window(self, x: np.ndarray) -> np.ndarray:
        """(B, L, F) -> (B, H, C)."""
        return self._window.run({"x": x})["y"]

    def step(self, x: np.ndarray, states: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        """x (B, F), states [(B, U), ...] -> y (B, H, C), new states."""
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
            )  # (S, F), (S, H, C)
            states = self.zero_states(1)
            errs = []
            for t in range(len(sx)):
                y, states = self.step(sx[t : t + 1], states)
                errs.append(float(np.max(np.abs(y[0] - sy[t]))))
            step_err = max(errs)
        return SelfTestReport(self.backend, window_err, step_err, tol)


@dataclass(frozen=True)
class Attempt:
    """One backend's try at a bundle: the model that passed, or the reason it did not."""

    model: LoadedModel | None
    report: SelfTestReport | None
    reason: str = ""
    unavailable: bool = False  # the package does not import: not the bundle's fault


def failed_reason(report: SelfTestReport) -> str:
    step = report.step_max_error if report.step_max_error is not None else "-"
    return (
        f"self-test failed (max error window {report.window_max_error:.3g}, "
        f"step {step}, tolerance {report.tolerance:g})"
    )


def try_backend(
    bundle: Bundle, key: str, num_threads: int = 1, module: str | None = None
) -> Attempt:
    """Load `bundle` on backend `key` (imported from `module` if given) and self-test it here.

    The same code runs in the daemon and in the isolated child (`isolation.py`), so a reason
    reads the same wherever the test ran. It cannot survive a backend that kills the process.
    """
    try:
        b = load_backend(key, module)
    except ImportError as e:
        return Attempt(None, None, f"not installed ({e})", unavailable=True)
    try:
        model = LoadedModel(bundle, b, num_threads)
        report = model.selftest()
    except (ModelLoadError, SelfTestError, RuntimeError, ValueError) as e:
        return Attempt(None, None, str(e))
    if report.passed:
        return Attempt(model, report)
    return Attempt(None, report, failed_reason(report))


def load_model(
    bundle: Bundle, backend: str = "auto", num_threads: int = 1, isolate: bool = True
) -> tuple[LoadedModel, SelfTestReport]:
    """The first backend that loads the bundle and passes its self-test.

    With `isolate`, each backend first loads and self-tests the bundle in a child process
    (see `seqcast.edge.model.isolation`); only a backend that passed there is loaded here, so
    one that crashes the process is reported like any other failure and the next one is tried.
    A bundle without a file (parsed from bytes) is tested in this process only.
    """
    reasons: list[str] = []
    for key in backend_keys(backend):
        attempt: Attempt | None = None
        if isolate:
            verdict = isolation.selftest_in_child(bundle, key, backend_module(key), num_threads)
            if verdict is not None and not verdict.passed:
                attempt = Attempt(None, None, verdict.reason, verdict.unavailable)
        if attempt is None:
            attempt = try_backend(bundle, key, num_threads)
        if attempt.model is not None and attempt.report is not None:
            return attempt.model, attempt.report
        reasons.append(f"{key}: {attempt.reason}")
        if attempt.unavailable:
            log.info("interpreter backend %s unavailable: %s", key, attempt.reason)
        else:
            log.warning("backend %s cannot run %s: %s", key, bundle.model_id, attempt.reason)
    raise NoBackendError(f"no backend can run {bundle.model_id}: " + "; ".join(reasons))
