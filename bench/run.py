"""`python -m bench.run [--quick] [--only NAME] [--out bench/results]`

NAME: inference, e2e, scoring, footprint, faults, workers or replica (repeatable).

Runs the benchmarks (`workers` and `replica` only when named: `make bench-workers`, `make
bench-replica`), prints their tables,
writes `<name>.json`, `<name>.md` and `<name>.png` for each into the output folder, and
`summary.json` / `summary.md` with every target (measured vs goal) from whatever results the
folder holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from bench.common import (
    CACHE,
    RESULTS,
    log,
    machine_info,
    machine_line,
    targets_table,
    write_results,
)

NAMES = ("inference", "e2e", "scoring", "footprint", "faults")
# run only when named (`--only workers`, `make bench-workers`, `make bench-replica`): they need
# more than the default set
EXTRA = ("workers", "replica")


def _module(name: str) -> Any:
    import importlib

    return importlib.import_module(f"bench.{name}")


def run_one(name: str, quick: bool, out: Path, cache: Path) -> dict[str, Any]:
    mod = _module(name)
    t0 = time.monotonic()
    doc = mod.run(quick, cache)
    doc = {
        "name": name,
        "quick": quick,
        "machine": machine_info(),
        **doc,
        "elapsed_s": round(time.monotonic() - t0, 1),
    }
    md = mod.markdown(doc) + "\n\n## Targets\n\n" + targets_table(doc["targets"])
    md += f"\n\nMachine: {machine_line(doc['machine'])}. Took {doc['elapsed_s']:.0f} s"
    md += " (--quick)." if quick else "."
    write_results(out, name, doc, md, mod.plot(doc))
    print(md + "\n", flush=True)
    return doc


def write_summary(out: Path) -> dict[str, Any]:
    docs = {}
    for name in (*NAMES, *EXTRA):
        p = out / f"{name}.json"
        if p.exists():
            docs[name] = json.loads(p.read_text())
    targets = [dict(t, benchmark=n) for n, d in docs.items() for t in d.get("targets", [])]
    machine = next((d["machine"] for d in docs.values()), machine_info())
    summary = {
        "machine": machine,
        "targets": targets,
        "runs": {
            n: {
                "quick": d.get("quick"),
                "elapsed_s": d.get("elapsed_s"),
                "date": d["machine"]["date"],
            }
            for n, d in docs.items()
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    md = [
        "# seqcast benchmarks: targets",
        "",
        targets_table(targets),
        "",
        f"Machine: {machine_line(machine)}.",
    ]
    md += [
        f"- {n}: {'--quick, ' if r['quick'] else ''}{r['elapsed_s']:.0f} s, {r['date']}"
        for n, r in summary["runs"].items()
    ]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="a small version of each (under a minute)")
    p.add_argument(
        "--only", choices=(*NAMES, *EXTRA), action="append", help="run only this one (repeatable)"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder ({RESULTS})")
    p.add_argument("--cache", type=Path, default=CACHE, help=f"bundle cache ({CACHE})")
    args = p.parse_args(argv)
    t0 = time.monotonic()
    failed = []
    for name in args.only or NAMES:
        log(f"{name}: start{' (--quick)' if args.quick else ''}")
        try:
            run_one(name, args.quick, args.out, args.cache)
        except Exception:  # noqa: BLE001 - report, then go on with the next benchmark
            traceback.print_exc()
            failed.append(name)
        log(f"{name}: done at {time.monotonic() - t0:.0f} s")
    summary = write_summary(args.out)
    print(targets_table(summary["targets"]))
    log(
        f"all done in {time.monotonic() - t0:.0f} s; results in {args.out}"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
