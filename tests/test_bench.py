"""`python -m bench.run --quick` writes every result file with the documented structure
(structure only: timings depend on the machine, so that test asserts no number), and the fault
benchmark's judgement of a broker restart: which inputs a SIGKILLed broker lost, when the broker
itself stalled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.faults_broker import STALL_S, stalls
from bench.faults_judge import hole
from bench.faults_report import spans

ROOT = Path(__file__).resolve().parent.parent
S = 1800.0  # one step of the fault benchmark's grid


@pytest.mark.slow
@pytest.mark.broker
@pytest.mark.tflite
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
    for name in ("inference", "e2e", "scoring", "footprint", "faults"):
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
    } | {
        ("unaligned", 100),
        ("unscored", 100),
        ("scraped", 100),
    }  # align off, quality off, metrics on
    head = next(r for r in e2e["summary"] if r["streams"] == 100)
    assert head["aligned_over_unaligned"] > 0 and head["scored_over_unscored"] > 0
    assert head["scraped_over_default"] > 0  # [metrics] on and scraped
    assert all(r["scrapes"] >= 1 for r in e2e["throughput"] if r["kind"] == "scraped")
    assert any(t["name"].startswith("metrics' cost") for t in e2e["targets"])
    assert any(t["name"].startswith("aligning's cost") for t in e2e["targets"])
    assert any(t["name"].startswith("live scoring's cost") for t in e2e["targets"])
    for r in e2e["throughput"]:
        assert r["received"] == r["messages"] > 0 and r["forecasts_per_s"] > 0
    assert {r["kind"] for r in e2e["latency"]} == {"relay", "daemon"}
    assert all(r["matched"] > 0 and r["ms"]["p99"] is not None for r in e2e["latency"])
    assert {r["streams"] for r in e2e["summary"]} == {1, 100}

    scoring = docs["scoring"]  # every shape with [quality] on and off, each round measured
    cells = {(c["shape"], c["variant"]): c["us"] for c in scoring["cells"]}
    assert len(cells) == 6 and {v for _, v in cells} == {"scored", "unscored"}
    assert all(len(us) == scoring["rounds"] and min(us) > 0 for us in cells.values())
    assert scoring["targets"][0]["name"].startswith("live scoring's cost in process")

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
    broker = faults["scenarios"][1]
    assert [e["fault"] for e in broker["events"]] == ["broker SIGTERM", "broker SIGKILL"]
    assert all({"exit_s", "listen_s", "back_s", "db_bytes"} <= set(e) for e in broker["events"])
    assert broker["broker"]["probes"] > 0 and isinstance(broker["broker"]["stalls"], list)
    assert "## The broker itself (broker)" in (out / "faults.md").read_text()
    kinds = faults["bad_input"]["kinds"]
    assert len(kinds) >= 25 and all({"kind", "messages", "counted_as"} <= set(k) for k in kinds)

    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["targets"]) == sum(len(d["targets"]) for d in docs.values())


def test_spans_are_runs_of_steps() -> None:
    from bench.faults_report import TS0

    assert spans([TS0 + k * S for k in (7, 3, 4, 5, 9, 4)]) == [[3, 5], [7, 7], [9, 9]]
    assert spans([]) == []


def _hole(a: int, b: int, nxt: int, fits: set[tuple[int, int]]) -> tuple[int, int]:
    """`hole` in step numbers; `fits`: the (lo, hi) whose reference gives the next forecast."""
    lo, hi = hole(a * S, b * S, nxt * S, 47, 4 * S, lambda lo, hi: (lo / S, hi / S) in fits)
    return round(lo / S), round(hi / S)


def test_a_long_hole_ends_where_the_daemons_warm_up_began() -> None:
    # forecasts 1081-1122 lost, the next at 1169: the warm-up began at 1122, which it saw
    assert _hole(1081, 1122, 1169, {(1081, 1121)}) == (1081, 1121)
    # the next forecast one step later: 1122 was lost too
    assert _hole(1081, 1122, 1170, {(1081, 1122)}) == (1081, 1122)


def test_a_short_run_of_lost_forecasts_whose_inputs_the_daemon_saw_loses_no_input() -> None:
    # forecasts 824-826 lost with the broker, the inputs processed: only "none lost" fits
    assert _hole(824, 826, 827, {(827, 826)}) == (827, 826)
    # the daemon saw 824 only
    assert _hole(824, 826, 827, {(825, 826)}) == (825, 826)


def test_when_nothing_fits_every_input_of_the_run_counts_as_lost() -> None:
    assert _hole(824, 826, 827, set()) == (824, 826)
    # a long hole's partial starts are not tried: the stream restarts for each of them alike
    assert _hole(100, 200, 248, {(150, 200)}) == (100, 200)


def test_broker_stalls_are_named_and_a_clean_restart_is_not_one() -> None:
    clean = {"exit_s": 0.02, "listen_s": 0.06, "at_mono": 100.0}
    ok = {"longest_puback_wait_s": 0.3, "accepted": 20000, "inputs": 20000}
    assert stalls([clean], {"silences": []}, ok) == []
    restarting = {"exit_s": 0.5, "listen_s": STALL_S - 0.1, "at_mono": 100.0}
    down = {"silences": [(100.0, STALL_S + 1.0)]}  # 0.6 s past listening: the probe reconnecting
    assert stalls([restarting], down, ok) == []
    slow = clean | {"listen_s": STALL_S + 1}
    busy = {"silences": [(300.0, 7.5)]}  # silent long after any restart: stalled
    bad = {"longest_puback_wait_s": 114.7, "accepted": 18699, "inputs": 20000}
    found = stalls([slow], busy, bad)
    assert len(found) == 4
    assert any("listen_s" in x for x in found) and any("no PUBACK for 7.5 s" in x for x in found)
    assert any("18,699 of 20,000" in x for x in found) and any("114.7 s" in x for x in found)
