"""`seqcast-edge inspect`: show a bundle's manifest and prove it runs here (no TensorFlow)."""

from __future__ import annotations

import json
from typing import Any

from seqcast.edge.model.bundle import Bundle, read_bundle
from seqcast.edge.model.runtime import SelfTestReport, load_model


def _fmt_metrics(metrics: dict[str, Any]) -> list[str]:
    """One line per scored method: the model's first, then the baselines in the report's order."""
    scored = [k for k, v in metrics.items() if isinstance(v, dict) and "mae" in v and "rmse" in v]
    lines = []
    for method in sorted(scored, key=lambda k: k not in ("window", "stream")):
        lines.append(
            f"    {method:<20} MAE {metrics[method]['mae']:>10.3f}   "
            f"RMSE {metrics[method]['rmse']:>10.3f}"
        )
    return lines


def describe(bundle: Bundle, report: SelfTestReport) -> str:
    m = bundle.manifest
    size = {name: len(data) for name, data in bundle.models.items()}
    lines = [
        f"bundle      {bundle.path}",
        f"model       {bundle.model_id}   (created {m.created}, format {m.format})",
        f"features    {', '.join(m.features)}",
        f"targets     {', '.join(m.targets)}",
        "intervals   "
        + (", ".join(m.output_columns[1 : 1 + len(m.quantiles)]) or "none (point forecasts only)")
        + ("  (per target)" if m.quantiles and len(m.targets) > 1 else ""),
        f"seq_len     {m.seq_len}   horizon {m.horizon}   interval {m.interval_s:g} s   "
        f"min_history {m.min_history}",
        f"arch        {json.dumps(m.architecture)}",
        f"precision   {m.quantization}",
        "files       " + ", ".join(f"{n} ({s / 1024:.0f} KiB)" for n, s in size.items()),
        "state       "
        + (", ".join(f"{s.name}{s.shape}" for s in m.state) or "none (window mode only)"),
    ]
    if m.metrics:
        lines.append(f"test metrics ({m.metrics.get('origins', '?')} forecasts, original units):")
        lines += _fmt_metrics(m.metrics)
    step = "-" if report.step_max_error is None else f"{report.step_max_error:.2e}"
    verdict = "PASS" if report.passed else "FAIL"
    lines.append(
        f"self-test   {verdict} on {report.backend}: "
        f"max error window {report.window_max_error:.2e}, "
        f"step {step} (tolerance {report.tolerance:g})"
    )
    return "\n".join(lines)


def inspect(path: str, as_json: bool, backend: str = "auto") -> tuple[str, bool]:
    bundle = read_bundle(path)
    _, report = load_model(bundle, backend)
    if as_json:
        doc = bundle.manifest.to_json()
        doc.pop("selftest", None)
        doc["model_id"] = bundle.model_id
        doc["selftest_result"] = {
            "backend": report.backend,
            "passed": report.passed,
            "window_max_error": report.window_max_error,
            "step_max_error": report.step_max_error,
            "tolerance": report.tolerance,
        }
        return json.dumps(doc, indent=2), report.passed
    return describe(bundle, report), report.passed
