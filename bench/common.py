"""Shared benchmark helpers: core pinning, statistics, machine info, JSON/markdown/PNG writers."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CACHE = RESULTS / ".cache"
PY = sys.executable
# child processes import this checkout first, then what the caller put on the path (a package
# view of this worktree: without it `seqcast.*` is whatever checkout the venv has installed)
PYTHONPATH = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

DAEMON_CORE = 0  # the daemon (or the relay) runs here
LOAD_CORE = 1  # publishers, subscribers, mosquitto and the orchestrator run here


# -- pinning -----------------------------------------------------------------------------------


_CORES = sorted(os.sched_getaffinity(0))  # before `pin_self` narrows this process to one core


def cores() -> list[int]:
    """The cores this machine lets us use (as found at start, whatever pinning happened since)."""
    return list(_CORES)


def core(want: int) -> int | None:
    """`want` if this machine has it, else the last core (or None on a single core)."""
    have = cores()
    if want in have:
        return want
    return have[-1] if len(have) > 1 else None


def pin_self(want: int) -> int | None:
    """Pin this process to one core; returns the core, or None when pinning is not possible."""
    c = core(want)
    if c is not None:
        os.sched_setaffinity(0, {c})
    return c


def taskset(want: int) -> list[str]:
    """A command prefix that runs a program on one core (`taskset -c N`), or nothing."""
    c = core(want)
    exe = shutil.which("taskset")
    return [exe, "-c", str(c)] if exe and c is not None else []


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread: interquartile range (p25..p75), min, max, n."""
    vals = [float(v) for v in values]
    if not vals:
        return {
            "median": float("nan"),
            "p25": float("nan"),
            "p75": float("nan"),
            "min": float("nan"),
            "max": float("nan"),
            "n": 0,
        }
    return {
        "median": statistics.median(vals),
        "p25": percentile(vals, 25),
        "p75": percentile(vals, 75),
        "min": min(vals),
        "max": max(vals),
        "n": len(vals),
    }


def spread(s: dict[str, float], fmt: str = "{:.3g}") -> str:
    """`median (p25-p75)` for tables."""
    if not s.get("n"):
        return "-"
    return f"{fmt.format(s['median'])} ({fmt.format(s['p25'])}–{fmt.format(s['p75'])})"


def now_ns() -> int:
    return time.perf_counter_ns()


# -- machine -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # noqa: BLE001 - any lookup failure means "not installed"
        return None


def _mosquitto_version() -> str | None:
    from seqcast.tools.localbroker import mosquitto_path

    exe = mosquitto_path()
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-h"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    first = out.splitlines()[0] if out else ""
    return first.replace("mosquitto version", "").strip() or None


def machine_info() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(cores()),
        "arch": platform.machine(),
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "ai_edge_litert": _version("ai-edge-litert"),
        "paho_mqtt": _version("paho-mqtt"),
        "tensorflow": _version("tensorflow-cpu") or _version("tensorflow"),
        "mosquitto": _mosquitto_version(),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def machine_line(m: dict[str, Any]) -> str:
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Linux {m['kernel']}, "
        f"Python {m['python']}, numpy {m['numpy']}, ai-edge-litert {m['ai_edge_litert']}, "
        f"paho-mqtt {m['paho_mqtt']}, mosquitto {m['mosquitto']}; {m['date']}"
    )


# -- targets -----------------------------------------------------------------------------------


def target(
    name: str, measured: float | None, limit: float, op: str, unit: str = "", note: str = ""
) -> dict[str, Any]:
    """A target the benchmark reports (not a test): `measured op limit`, op is '<=' or '>='."""
    if measured is None or measured != measured:  # None or NaN
        met = None
    else:
        met = {
            "<=": measured <= limit,
            "<": measured < limit,
            ">=": measured >= limit,
            ">": measured > limit,
        }[op]
    return {
        "name": name,
        "target": f"{op} {limit:g}{unit}",
        "measured": measured,
        "unit": unit,
        "met": met,
        "note": note,
    }


def targets_table(targets: list[dict[str, Any]]) -> str:
    rows = []
    for t in targets:
        m = t["measured"]
        shown = "-" if m is None else f"{m:.4g}{t['unit']}"
        verdict = {True: "met", False: "**missed**", None: "n/a"}[t["met"]]
        rows.append(
            [t["name"], t["target"], shown, verdict + (f" ({t['note']})" if t["note"] else "")]
        )
    return md_table(["target", "goal", "measured", "verdict"], rows)


# -- writers -----------------------------------------------------------------------------------


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    out: Path, name: str, doc: dict[str, Any], markdown: str, plot: Callable[[Any], None] | None
) -> dict[str, Path]:
    """bench/results/<name>.json, .md and .png (matplotlib Agg); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{name}.json", "md": out / f"{name}.md", "png": out / f"{name}.png"}
    paths["json"].write_text(json.dumps(doc, indent=1, default=_jsonable) + "\n")
    paths["md"].write_text(markdown.rstrip() + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 4.5))
    try:
        if plot is not None:
            plot(fig)
        fig.tight_layout()
        fig.savefig(paths["png"], dpi=90)
    finally:
        plt.close(fig)
    return paths


def _jsonable(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)
