"""`seqcast-train auto`: try a small grid (seq_len x cell x units) within a time budget, pick by
validation, and write the picked candidate's bundle (as trained, not retrained) with its report.

The plan and the budget are train/grid.py's; training and measuring a candidate is
train/candidate.py's, the verdict train/compare.py's (the sweep's rules: lowest validation MAE
among the candidates that beat the naive baselines, then the cheapest per sample within 2 %).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcast.edge.model.backends import first_backend
from seqcast.edge.model.bundle import Bundle, read_bundle
from seqcast.edge.model.runtime import LoadedModel
from seqcast.train import data as D
from seqcast.train.auto_report import auto_doc, format_auto, plot_auto
from seqcast.train.candidate import batch_seconds, train_and_measure
from seqcast.train.compare import Decision, SweepRow, decide
from seqcast.train.evaluate import format_table, predict
from seqcast.train.grid import Candidate, Outcome, Space, check_budget, plan_for, run_budget
from seqcast.train.options import FitOptions
from seqcast.train.prepare import Prepared, prepare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kept:
    """What the written bundle's report needs of its training run."""

    history: dict[str, list[float]]
    scaler: D.FittedScaler
    prepared: Prepared
    season: int


def candidates_dir_for(out: Path) -> Path:
    return out.with_name(out.stem + ".candidates")


def auto(
    options: FitOptions,
    space: Space,
    budget_minutes: float,
    work_dir: Path | None = None,
    clock: Callable[[], float] = time.monotonic,
    planned: tuple[list[Candidate], Prepared] | None = None,
) -> tuple[SweepRow, Bundle]:
    """Train the plan within the budget, print the table, write auto.json, auto.png and the
    picked bundle to `options.out`; -> (the picked row, the written bundle). `planned` is
    `plan_for(options, space)` when the caller already checked the data."""
    check_budget(budget_minutes)
    plan, checked = planned or plan_for(options, space)
    longest = max(c.seq_len for c in plan)
    need = longest + options.horizon  # every candidate trains on the same segments
    width = len(checked.series.feature_names) + 2 * len(checked.calendar)
    out = Path(options.out)
    work_dir = work_dir or candidates_dir_for(out)
    work_dir.mkdir(parents=True, exist_ok=True)
    print(f"auto: {len(plan)} candidates in this order, within {budget_minutes:g} min: "
          + ", ".join(c.label for c in plan))  # fmt: skip
    kept: dict[Candidate, _Kept] = {}

    def train(c: Candidate, n: int) -> SweepRow:
        o = dataclasses.replace(
            options,
            seq_len=c.seq_len,
            cell=c.cell,
            units=c.units,
            out=str(work_dir / f"{c.slug}.seqcast"),
            report=False,
            name=options.name or out.stem,  # so the picked file is the final bundle as it is
        )
        log.info("auto: training %s (candidate %d)", c.label, n)
        label = f"{c.label} (candidate {n}): test-split error by method (original units)"
        prepared = prepare(o, need)
        row, result = train_and_measure(o, label, prepared, longest)
        season = int(result.metrics["season_steps"])
        kept[c] = _Kept(result.history, result.scaler, prepared, season)
        log.info("auto: %s: validation MAE %.4f in %.0f s", c.label, row.val_mae, row.seconds)
        return row

    started = clock()  # the measurement below is part of the budget
    per_batch = batch_seconds(options, plan, width, len(checked.series.target_names))
    shown = {f"{c.cell} {','.join(map(str, c.units))}": s for c, s in per_batch.items()}
    costs = ", ".join(f"{name} {s * 1e3:.0f} ms" for name, s in shown.items())
    print(f"auto: one training batch takes {costs} (measured in {clock() - started:.0f} s)")
    outcome = run_budget(
        plan, budget_minutes * 60, train, per_batch.__getitem__, clock, started=started
    )
    d = decide(outcome.rows)
    picked = d.cheapest or d.lowest
    print(format_auto(outcome, d, picked))
    bundle = publish(picked, kept[Candidate.of(picked)], options)
    doc = auto_doc(options, plan, outcome, d, picked, bundle.manifest.metrics)
    (work_dir / "auto.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    plot_auto(outcome.rows, picked, work_dir / "auto.png")
    print(f"wrote {work_dir / 'auto.json'}, {work_dir / 'auto.png'} and the candidates' bundles")
    for line in closing_lines(outcome, d, picked, bundle.manifest.metrics):
        print(line)
    return picked, bundle


def publish(picked: SweepRow, kept: _Kept, options: FitOptions) -> Bundle:
    """Copy the picked candidate's bundle to --out (it was trained under the final name) and
    write its normal report beside it."""
    out = Path(options.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(picked.bundle, out)
    bundle = read_bundle(out)
    print(f"{Candidate.of(picked).label}: test-split error by method (original units)")
    print(format_table(bundle.manifest.metrics))
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB, {bundle.model_id})")
    if options.report:
        from seqcast.train.report import write_report

        splits = kept.prepared.splits
        before_test = kept.prepared.series.slice(0, len(splits.train) + len(splits.val))
        model = LoadedModel(bundle, first_backend())
        seasons = bundle.manifest.metrics.get("baselines", {}).get("seasons", [kept.season])
        preds = predict(
            model, kept.scaler, before_test, splits.test, seasons, options.baselines == "all"
        )
        print(f"report: {write_report(out, bundle, kept.history, preds)}/")
    return bundle


def _versus(mae: float, others: dict[str, float]) -> str:
    beaten = [k for k, v in others.items() if mae < v]
    said = ", ".join(f"{k} {v:.3f}" for k, v in others.items())
    verdict = (
        "beats them all"
        if len(beaten) == len(others)
        else "beats none of them"
        if not beaten
        else f"beats only {', '.join(beaten)}"
    )
    return f"{said} ({verdict})"


def closing_lines(
    outcome: Outcome, d: Decision, picked: SweepRow, test: dict[str, Any]
) -> list[str]:
    """What the written candidate beat: on validation the naive baselines and the other
    candidates; on test (looked at only now) the baselines of the fit report."""
    val_naive = {"persistence": picked.val_mae_persistence,
                 "seasonal_naive": picked.val_mae_seasonal_naive}  # fmt: skip
    others = [r for r in outcome.rows if r is not picked]
    lines = [
        f"auto: wrote {Candidate.of(picked).label} ({Candidate.of(picked).flags}): validation "
        f"{picked.mode} MAE {picked.val_mae:.3f} vs {_versus(picked.val_mae, val_naive)}"
    ]
    if others:
        beaten = sum(r.val_mae > picked.val_mae for r in others)
        nearest = min(others, key=lambda r: r.val_mae)
        lines.append(
            f"  it beat {beaten} of the {len(others)} other candidates on validation MAE (the "
            f"best of them: {Candidate.of(nearest).label}, {nearest.val_mae:.3f})"
        )
    if d.recommended is None:
        lines.append("  warning: no candidate beat the naive baselines on validation")
    mode = "stream" if "stream" in test else "window"
    models = ("stream", "window")
    baselines = {k: float(v["mae"]) for k, v in test.items()
                 if isinstance(v, dict) and "mae" in v and k not in models}  # fmt: skip
    lines.append(
        f"  test MAE: {mode} {test[mode]['mae']:.3f} vs {_versus(test[mode]['mae'], baselines)}"
    )
    return lines
