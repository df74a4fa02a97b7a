"""The model bundle (`*.seqcast`): a zip with `manifest.json` and the TFLite models.

The trainer writes bundles with `write_bundle`; the device reads them with `read_bundle`, which
checks the format, the manifest's internal consistency and every file's sha256 before anything
runs. `run_selftest` then pushes the stored vectors through a real interpreter.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seqcast.edge import calendar, quantiles
from seqcast.edge.timegrid import Grid, GridError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
WINDOW_FILE = "window.tflite"
STEP_FILE = "step.tflite"
MAX_BUNDLE_BYTES = 256 * 1024 * 1024


class BundleError(ValueError):
    """A bundle that cannot be used; the message says what is wrong and where."""


@dataclass(frozen=True)
class Scaler:
    """Standardisation statistics fitted on the training split only."""

    feature_mean: list[float]
    feature_std: list[float]
    target_mean: list[float]
    target_std: list[float]

    def scale_features(self, x: np.ndarray) -> np.ndarray:
        scaled: np.ndarray = (x - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)
        return scaled

    def unscale_targets(self, y: np.ndarray) -> np.ndarray:
        unscaled: np.ndarray = y * np.asarray(self.target_std) + np.asarray(self.target_mean)
        return unscaled

    def to_json(self) -> dict[str, Any]:
        return {
            "features": {"mean": self.feature_mean, "std": self.feature_std},
            "targets": {"mean": self.target_mean, "std": self.target_std},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Scaler:
        return cls(
            feature_mean=[float(v) for v in d["features"]["mean"]],
            feature_std=[float(v) for v in d["features"]["std"]],
            target_mean=[float(v) for v in d["targets"]["mean"]],
            target_std=[float(v) for v in d["targets"]["std"]],
        )


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor of the step model, per stream: shape excludes the batch."""

    name: str
    shape: list[int]


@dataclass(frozen=True)
class Manifest:
    name: str
    created: str
    features: list[str]
    targets: list[str]
    seq_len: int
    horizon: int
    interval_s: float
    scaler: Scaler
    architecture: dict[str, Any]
    quantization: str
    state: list[StateSpec]
    min_history: int
    mask_value: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    selftest: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    format: int = FORMAT_VERSION
    # the exact step points (see edge/timegrid.py); None: the fixed grid of `interval_s` from 0
    grid_spec: dict[str, Any] | None = None
    max_fill: int = 0  # holes of up to this many steps were filled by linear interpolation
    # calendar features after the scaled features in the model's input (edge/calendar.py)
    calendar: list[str] = field(default_factory=list)
    # prediction intervals, ascending (edge/quantiles.py); [] in older bundles: point forecasts only
    quantiles: list[float] = field(default_factory=list)

    @property
    def grid(self) -> Grid:
        return Grid.from_json(self.grid_spec, self.interval_s)

    @property
    def input_width(self) -> int:
        """Columns of the model's input: the features, then the calendar's sin/cos pairs."""
        return len(self.features) + calendar.width(self.calendar)

    @property
    def output_columns(self) -> list[str]:
        """The model output's columns (and the payload's keys per step): each target, then its
        quantiles (`Demand`, `Demand_p10`, `Demand_p90`)."""
        return quantiles.columns(self.targets, self.quantiles)

    def output_scaling(self) -> tuple[np.ndarray, np.ndarray]:
        """(C,) mean and std that unscale each output column: its target's."""
        per = 1 + len(self.quantiles)
        s = self.scaler
        return (
            np.repeat(np.asarray(s.target_mean, np.float64), per),
            np.repeat(np.asarray(s.target_std, np.float64), per),
        )

    @property
    def has_step(self) -> bool:
        return STEP_FILE in self.files

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["scaler"] = self.scaler.to_json()
        d["grid"] = d.pop("grid_spec")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        try:
            fmt = int(d["format"])
            if fmt != FORMAT_VERSION:
                raise BundleError(
                    f"manifest.format: this seqcast reads format {FORMAT_VERSION}, got {fmt}"
                )
            m = cls(
                format=fmt,
                name=str(d["name"]),
                created=str(d["created"]),
                features=[str(f) for f in d["features"]],
                targets=[str(t) for t in d["targets"]],
                seq_len=int(d["seq_len"]),
                horizon=int(d["horizon"]),
                interval_s=float(d["interval_s"]),
                scaler=Scaler.from_json(d["scaler"]),
                architecture=dict(d["architecture"]),
                quantization=str(d["quantization"]),
                state=[StateSpec(str(s["name"]), [int(n) for n in s["shape"]]) for s in d["state"]],
                min_history=int(d.get("min_history", d["seq_len"])),
                mask_value=None if d.get("mask_value") is None else float(d["mask_value"]),
                metrics=dict(d.get("metrics", {})),
                selftest=dict(d.get("selftest", {})),
                files={str(k): str(v) for k, v in d["files"].items()},
                grid_spec=None if d.get("grid") is None else dict(d["grid"]),
                max_fill=int(d.get("max_fill", 0)),
                calendar=[str(c) for c in d.get("calendar", [])],
                quantiles=[float(q) for q in d.get("quantiles", [])],
            )
        except KeyError as e:
            raise BundleError(f"manifest.json: missing key {e.args[0]!r}") from None
        except (TypeError, ValueError, AttributeError) as e:
            if isinstance(e, BundleError):
                raise
            raise BundleError(f"manifest.json: malformed value ({e})") from None
        m.validate()
        return m

    def validate(self) -> None:
        """Cross-field rules; raises BundleError naming the offending key."""
        if not self.features:
            raise BundleError("manifest.features: must list at least one feature")
        if len(set(self.features)) != len(self.features):
            raise BundleError(f"manifest.features: duplicate names in {self.features}")
        if not self.targets:
            raise BundleError("manifest.targets: must list at least one target")
        if self.seq_len < 1:
            raise BundleError(f"manifest.seq_len: must be >= 1, got {self.seq_len}")
        if self.horizon < 1:
            raise BundleError(f"manifest.horizon: must be >= 1, got {self.horizon}")
        if not self.interval_s > 0:
            raise BundleError(f"manifest.interval_s: must be > 0, got {self.interval_s}")
        try:
            self.grid  # noqa: B018 - parses grid_spec
        except GridError as e:
            raise BundleError(f"manifest.{e}") from None
        try:
            calendar.check(self.calendar)
        except calendar.CalendarError as e:
            raise BundleError(f"manifest.calendar: {e}") from None
        try:
            ordered = quantiles.check(self.quantiles)
        except quantiles.QuantileError as e:
            raise BundleError(f"manifest.quantiles: {e}") from None
        if list(ordered) != list(self.quantiles):
            raise BundleError(f"manifest.quantiles: must be ascending, got {self.quantiles}")
        columns = self.output_columns
        if self.quantiles and (len(set(columns)) != len(columns) or "ts" in columns):
            raise BundleError(
                f"manifest.quantiles: the output names {columns} must be distinct and not 'ts' "
                "(a target is named like another target's quantile)"
            )
        if self.max_fill < 0:
            raise BundleError(f"manifest.max_fill: must be >= 0, got {self.max_fill}")
        if not 1 <= self.min_history <= self.seq_len:
            raise BundleError(
                f"manifest.min_history: must be 1..seq_len ({self.seq_len}), got {self.min_history}"
            )
        s = self.scaler
        for key, vals, n in (
            ("features.mean", s.feature_mean, len(self.features)),
            ("features.std", s.feature_std, len(self.features)),
            ("targets.mean", s.target_mean, len(self.targets)),
            ("targets.std", s.target_std, len(self.targets)),
        ):
            if len(vals) != n:
                raise BundleError(f"manifest.scaler.{key}: expected {n} values, got {len(vals)}")
            if not all(np.isfinite(vals)):
                raise BundleError(f"manifest.scaler.{key}: values must be finite")
        if any(v <= 0 for v in s.feature_std + s.target_std):
            raise BundleError("manifest.scaler: std values must be > 0")
        if WINDOW_FILE not in self.files:
            raise BundleError(f"manifest.files: {WINDOW_FILE} is required")
        if self.has_step and not self.state:
            raise BundleError("manifest.state: a bundle with step.tflite must describe its state")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle held in memory: the manifest plus the model files' bytes."""

    manifest: Manifest
    models: dict[str, bytes]
    sha256: str
    path: Path | None = None

    @property
    def model_id(self) -> str:
        """`name@<first 12 hex of the bundle's sha256>`, as published in every forecast."""
        return f"{self.manifest.name}@{self.sha256[:12]}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_bundle(path: str | Path, manifest: Manifest, models: dict[str, bytes]) -> Bundle:
    """Write atomically (temp file + rename); fills `manifest.files` with each file's sha256."""
    files = {name: _sha256(data) for name, data in sorted(models.items())}
    manifest = Manifest(**{**manifest.__dict__, "files": files})
    manifest.validate()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST_NAME, json.dumps(manifest.to_json(), indent=2, allow_nan=False))
        for name, data in sorted(models.items()):
            zf.writestr(name, data)
    data = buf.getvalue()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return Bundle(manifest=manifest, models=dict(models), sha256=_sha256(data), path=path)


def read_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle file; every failure is a BundleError naming file and problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BundleError(f"{path}: cannot read bundle ({e.strerror})") from None
    try:
        return parse_bundle(data, path)
    except BundleError as e:
        raise BundleError(f"{path}: {e}") from None


def parse_bundle(data: bytes, path: Path | None = None) -> Bundle:
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle is {len(data)} bytes, larger than {MAX_BUNDLE_BYTES}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise BundleError("not a seqcast bundle (not a zip file)") from None
    with zf:
        names = set(zf.namelist())
        if MANIFEST_NAME not in names:
            raise BundleError(f"{MANIFEST_NAME} is missing")
        try:
            raw = json.loads(zf.read(MANIFEST_NAME))
        except (json.JSONDecodeError, UnicodeDecodeError, zipfile.BadZipFile) as e:
            raise BundleError(f"{MANIFEST_NAME} is not valid JSON ({e})") from None
        if not isinstance(raw, dict):
            raise BundleError(f"{MANIFEST_NAME} must hold a JSON object")
        manifest = Manifest.from_json(raw)
        models: dict[str, bytes] = {}
        for name, digest in manifest.files.items():
            if name not in names:
                raise BundleError(f"{name} is listed in manifest.files but missing from the zip")
            try:
                blob = zf.read(name)
            except (zipfile.BadZipFile, OSError) as e:
                raise BundleError(f"{name}: cannot be read ({e})") from None
            if _sha256(blob) != digest:
                raise BundleError(f"{name}: sha256 does not match manifest.files (file corrupted?)")
            models[name] = blob
    return Bundle(manifest=manifest, models=models, sha256=_sha256(data), path=path)
