"""`python -m bench.run --quick` writes every result file with the documented structure.

Structure only: timings depend on the machine, so nothing here asserts a number.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.broker, pytest.mark.tflite]

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_write_results(tmp_path: Path) -> None:
    from broker import mosquitto_available

    if not mosquitto_available():
        pytest.skip("mosquitto is not installed")
    out = tmp_path / "results"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:" + os.environ.get("PATH", "")}
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]

    docs = {}
    for name in ("inference", "e2e", "footprint", "faults"):
        for ext in ("json", "md", "png"):
            path = out / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 0, path
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        doc = json.loads((out / f"{name}.json").read_text())
        docs[name] = doc
        assert doc["name"] == name and doc["quick"] is True
        assert {"cpu", "cores", "python", "numpy", "ai_edge_litert", "date"} <= set(doc["machine"])
        for t in doc["targets"]:
            assert {"name", "target", "measured", "met", "unit"} <= set(t)
        assert "| target |" in (out / f"{name}.md").read_text()

    inf = docs["inference"]
    levels = {(r["level"], r["mode"]) for r in inf["results"]}
    assert {
        ("model", "stream"),
        ("model", "window"),
        ("engine", "stream"),
        ("pipeline", "stream"),
        ("keras", "predict"),
    } <= levels
    for r in inf["results"]:
        assert {"median", "p25", "p75", "min", "max", "n"} == set(r["us_per_sample"])
    assert {d["batch"] for d in inf["derived"]} == {1, 64}
    assert all(d["stream_over_window"] is not None for d in inf["derived"])

    e2e = docs["e2e"]
    assert {(r["kind"], r["streams"]) for r in e2e["throughput"]} == {
        (k, n) for k in ("relay", "daemon") for n in (1, 100)
    } | {("unaligned", 100)}  # the aligner's cost, beside the daemon with align = "off"
    head = next(r for r in e2e["summary"] if r["streams"] == 100)
    assert head["aligned_over_unaligned"] > 0
    assert any(t["name"].startswith("aligning's cost") for t in e2e["targets"])
    for r in e2e["throughput"]:
        assert r["received"] == r["messages"] > 0 and r["forecasts_per_s"] > 0
    assert {r["kind"] for r in e2e["latency"]} == {"relay", "daemon"}
    assert all(r["matched"] > 0 and r["ms"]["p99"] is not None for r in e2e["latency"])
    assert {r["streams"] for r in e2e["summary"]} == {1, 100}

    fp = docs["footprint"]
    assert [m["streams"] for m in fp["rss"]] == [10, 1000]
    assert all(m["rss_mb"] > 0 and m["samples"] == m["streams"] * 48 for m in fp["rss"])
    assert {c["backend"] for c in fp["cold_start"]} == {"litert", "tflite_runtime"}
    assert any(c["available"] and c["seconds"]["n"] >= 1 for c in fp["cold_start"])
    assert all(c["reason"] for c in fp["cold_start"] if not c["available"])

    faults = docs["faults"]
    names = [s["name"] for s in faults["scenarios"]]
    assert names == ["kill", "broker", "big", "burst", "bad input"]
    columns = {"expected", "received", "lost", "wrong", "duplicated", "redelivered", "seconds"}
    assert all(columns <= set(s) and s["expected"] > 0 for s in faults["scenarios"])
    assert [e["fault"] for e in faults["scenarios"][1]["events"]] == [
        "broker SIGTERM",
        "broker SIGKILL",
    ]
    kinds = faults["bad_input"]["kinds"]
    assert len(kinds) >= 25 and all({"kind", "messages", "counted_as"} <= set(k) for k in kinds)

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["targets"]) == sum(len(d["targets"]) for d in docs.values())
