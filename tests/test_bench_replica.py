"""The `[state] replicate` benchmark's pure parts (bench/replica.py): paired ratios, targets and
the table from runs, and the worker config that turns the copy on."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from bench.replica import COPY, LOCAL, markdown, summarize, targets_of
from bench.workers import worker_config


def _thr(rnd: int, name: str, rate: float, lost: int = 0) -> dict[str, Any]:
    return {
        "variant": name,
        "round": rnd,
        "forecasts_per_s": rate,
        "lost": lost,
        "cpu_us_per_forecast": {"workers": 80.0, "broker": 10.0, "load": 5.0},
    }


def _lat(rnd: int, name: str, p50: float, p99: float) -> dict[str, Any]:
    return {"variant": name, "round": rnd, "ms": {"p50": p50, "p99": p99}}


def test_ratios_are_paired_by_round_and_targets_judge_them() -> None:
    thr = [
        _thr(0, LOCAL.name, 10_000),
        _thr(0, COPY.name, 9_000),
        _thr(1, COPY.name, 4_000),  # a slow round hits both variants of that round
        _thr(1, LOCAL.name, 5_000),
        _thr(2, LOCAL.name, 12_000),  # no partner: not paired
    ]
    lat = [_lat(0, LOCAL.name, 2.0, 4.0), _lat(0, COPY.name, 3.5, 9.0)]
    s = summarize(thr, lat)
    assert [round(x, 12) for x in s["throughput_ratios"]] == [0.9, 0.8]
    assert s["variants"][LOCAL.name]["forecasts_per_s"] == 10_000
    assert s["variants"][COPY.name]["p50_ms"] == 3.5
    ts = {t["name"]: t for t in targets_of(s, quick=False)}
    ratio = next(t for n, t in ts.items() if n.startswith("forecasts/s"))
    assert abs(ratio["measured"] - 0.85) < 1e-12 and ratio["met"] is True
    added = next(t for n, t in ts.items() if "latency" in n)
    assert added["measured"] == 1.5 and added["met"] is True
    thr.append(_thr(3, COPY.name, 1_000, lost=3))
    thr.append(_thr(3, LOCAL.name, 10_000))
    lost = next(t for t in targets_of(summarize(thr, lat), False) if "lost" in t["name"])
    assert lost["measured"] == 3 and lost["met"] is False
    doc = {
        "summary": s,
        "rounds": 2,
        "latency_rounds": 1,
        "messages": 1000,
        "streams": 10,
        "latency_spec": {"rate": 1000.0, "streams": 100, "seconds": 5.0},
    }
    md = markdown(doc)
    assert "state copied to JetStream" in md and "0.90, 0.80" in md


def test_the_copy_variant_names_the_server_in_state_replicate(tmp_path: Path) -> None:
    url = "nats://127.0.0.1:4222"
    conf = worker_config(
        tmp_path / "edge.toml", 1883, tmp_path / "m.seqcast", partitioned=True, qos=1,
        queue_size=10, replicate=url,
    )  # fmt: skip
    assert tomllib.loads(conf.read_text())["state"]["replicate"] == [url]
    plain = worker_config(
        tmp_path / "plain.toml", 1883, tmp_path / "m.seqcast", partitioned=True, qos=1,
        queue_size=10,
    )  # fmt: skip
    assert tomllib.loads(plain.read_text())["state"]["replicate"] == []
    assert COPY.name == "nats-1+copy" and LOCAL.name == "nats-1"
