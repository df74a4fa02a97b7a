"""Benchmark 2: end to end through a real mosquitto, the daemon against the bare relay floor.

The daemon (or `bench/relay.py`) runs pinned to core 0; mosquitto, the publisher, the counting
subscriber and this orchestrator run on core 1. Runs alternate relay, daemon, relay, daemon, ...

Throughput: N streams are first warmed (each sends seq_len - 1 samples in one JSON array, so the
next sample of every stream yields a forecast), then a separate publisher process sends R rounds
of single-sample JSON messages as fast as it can. Rate = forecasts received / (last forecast -
first publish). The daemon's inbox is made large enough that nothing is dropped.

Latency: one process publishes at a fixed rate and subscribes to the forecasts, timing each
sample's publish to its forecast's arrival, matched by (stream, ts): no change to the payloads.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import LOAD_CORE, log, md_table, pin_self, summary, target
from bench.procs import Counter, Running, start_daemon, start_relay, tool

TS0 = 1.0e9  # 2001: far enough back that no run reaches the future-timestamp limit
BASE = B.BundleSpec(48, "lstm", "float32")


def _start(
    kind: str, port: int, bundle: Path, work: Path, qos: int, queue: int, root: Path | None = None
) -> Running:
    if kind == "relay":
        return start_relay(port, work, qos)
    return start_daemon(
        port, bundle, work, root=root, qos_in=qos, qos_out=qos, max_streams=10000, queue_size=queue
    )


def _warm(run: Running, port: int, streams: int, seq_len: int) -> None:
    """Every stream sends seq_len - 1 samples (one array each): the next sample forecasts."""
    if run.kind != "daemon":
        return
    before = run.counters().get("samples", 0)
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "streams": streams,
        "rounds": seq_len - 1,
        "per_message": seq_len - 1,
        "ts0": TS0,
        "interval": B.INTERVAL_S,
    }
    tool("flood", spec, timeout=120)
    if not run.wait_samples(before + streams * (seq_len - 1), timeout=300):
        raise RuntimeError(f"warm-up of {streams} streams did not finish:\n{run.log_tail()}")


def throughput(
    kind: str,
    port: int,
    bundle: Path,
    work: Path,
    streams: int,
    messages: int,
    qos: int,
    root: Path | None = None,
) -> dict[str, Any]:
    """One flood; `root`: the daemon's `edge` package comes from there (see bench/ab.py)."""
    run = _start(kind, port, bundle, work, qos, queue=2_000_000, root=root)
    try:
        _warm(run, port, streams, BASE.seq_len)
        rounds = max(1, messages // streams)
        total = rounds * streams
        before = run.counters() if kind == "daemon" else {}
        counter = Counter(port, expect=total, idle_s=10.0)
        cpu0 = run.cpu_s()
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "streams": streams,
            "rounds": rounds,
            "start_round": BASE.seq_len - 1,
            "ts0": TS0,
            "interval": B.INTERVAL_S,
            "qos": qos,
        }
        pub = tool("flood", spec, timeout=600)
        got = counter.result(timeout=total / 500 + 60)
        cpu = run.cpu_s() - cpu0
        after = run.counters() if kind == "daemon" else {}
    finally:
        code = run.stop()
    seconds = max(1e-9, (got["last_ns"] - pub["start_ns"]) / 1e9)
    samples = (
        after.get("samples", 0) - before.get("samples", 0) if kind == "daemon" else got["count"]
    )
    r = {
        "kind": kind,
        "streams": streams,
        "qos": qos,
        "messages": total,
        "received": got["count"],
        "seconds": seconds,
        "forecasts_per_s": got["count"] / seconds,
        "samples_per_s": samples / seconds,
        "publish_per_s": total / max(1e-9, (pub["end_ns"] - pub["start_ns"]) / 1e9),
        "cpu_us_per_msg": 1e6 * cpu / max(1, got["count"]),  # robust to a noisy neighbour
        "start_s": run.start_s,
        "exit_code": code,
    }
    if kind == "daemon":
        r["counters"] = {
            k: after.get(k, 0) - before.get(k, 0)
            for k in (
                "samples",
                "forecasts",
                "messages",
                "invokes",
                "mqtt_received",
                "mqtt_dropped_queue_full",
                "mqtt_outbox_overflow",
                "mqtt_publish_failed",
                "bad_payloads",
            )
        }
    log(
        f"e2e: {kind:6s} {streams:>6} streams qos {qos}: {r['forecasts_per_s']:>8.0f} forecasts/s "
        f"({got['count']}/{total} in {seconds:.2f} s; {r['cpu_us_per_msg']:.1f} µs CPU each; "
        f"publisher {r['publish_per_s']:.0f}/s)"
    )
    return r


def latency(
    kind: str,
    port: int,
    bundle: Path,
    work: Path,
    streams: int,
    rate: float,
    seconds: float,
    qos: int,
    root: Path | None = None,
) -> dict[str, Any]:
    run = _start(kind, port, bundle, work, qos, queue=10000, root=root)
    try:
        _warm(run, port, streams, BASE.seq_len)
        spec = {
            "host": "127.0.0.1",
            "port": port,
            "streams": streams,
            "rate": rate,
            "seconds": seconds,
            "start_round": BASE.seq_len - 1,
            "ts0": TS0,
            "interval": B.INTERVAL_S,
            "qos": qos,
            "filter": "forecasts/+",
        }
        res = tool("latency", spec, timeout=seconds + 60)
    finally:
        run.stop()
    ms = res["ms"]
    log(
        f"e2e: {kind:6s} latency at {rate:.0f}/s qos {qos}: p50 {ms['p50']} ms, p99 {ms['p99']} ms "
        f"({res['matched']}/{res['sent']} matched)"
    )
    return {"kind": kind, "streams": streams, "rate": rate, "qos": qos, **res}


def run(quick: bool, cache: Path) -> dict[str, Any]:
    from edge.localbroker import LocalMosquitto

    bundle = B.ensure([BASE], cache)[BASE]
    pinned = pin_self(LOAD_CORE)
    stream_counts = (1, 100) if quick else (1, 100, 1000, 10000)
    repeats, messages = (1, 6_000) if quick else (3, 100_000)  # ~3 s a flood: noise averages out
    rates, lat_s = ((1000.0,), 2.0) if quick else ((100.0, 1000.0, 5000.0), 3.0)
    thr: list[dict[str, Any]] = []
    lat: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-bench-") as tmp, LocalMosquitto() as broker:
        if broker.proc is not None and pinned is not None:
            os.sched_setaffinity(broker.proc.pid, {pinned})
        work, port = Path(tmp), broker.port
        for n in stream_counts:
            for _ in range(repeats):
                for kind in ("relay", "daemon"):
                    thr.append(throughput(kind, port, bundle, work, n, messages, qos=0))
        if not quick:
            for kind in ("relay", "daemon"):
                # 12,500 as before: a longer QoS 1 flood overflows paho's 10,000-message outbox
                thr.append(throughput(kind, port, bundle, work, 1000, 12_500, qos=1))
        for _ in range(repeats):  # interleaved too: one 3 s run's p99 is 30 samples
            for rate in rates:
                for kind in ("relay", "daemon"):
                    lat.append(latency(kind, port, bundle, work, 100, rate, lat_s, qos=1))
    summary_rows = summarize(thr)
    return {
        "name": "e2e",
        "orchestrator_core": pinned,
        "bundle": BASE.key,
        "repeats": repeats,
        "throughput": thr,
        "latency": lat,
        "summary": summary_rows,
        "targets": targets_of(summary_rows, lat, quick),
    }


def summarize(thr: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for n, qos in sorted({(r["streams"], r["qos"]) for r in thr}):
        rel = [
            r["forecasts_per_s"]
            for r in thr
            if (r["streams"], r["qos"], r["kind"]) == (n, qos, "relay")
        ]
        dae = [r for r in thr if (r["streams"], r["qos"], r["kind"]) == (n, qos, "daemon")]
        d_out = summary([r["forecasts_per_s"] for r in dae])
        d_in = summary([r["samples_per_s"] for r in dae])
        relay = summary(rel)
        ratio = d_out["median"] / relay["median"] if relay["n"] and d_out["n"] else None
        cpu = {
            kind: summary([r["cpu_us_per_msg"] for r in thr if "cpu_us_per_msg" in r
                           and (r["streams"], r["qos"], r["kind"]) == (n, qos, kind)])
            for kind in ("relay", "daemon")
        }
        out.append(
            {
                "streams": n,
                "qos": qos,
                "relay_per_s": relay,
                "daemon_forecasts_per_s": d_out,
                "daemon_samples_per_s": d_in,
                "daemon_over_relay": ratio,
                "relay_cpu_us": cpu["relay"],  # CPU time (all threads) per message
                "daemon_cpu_us": cpu["daemon"],
                "lost": sum(r["messages"] - r["received"] for r in dae),
            }
        )
    return out


def targets_of(rows: list[dict[str, Any]], lat: list[dict[str, Any]], quick: bool) -> list[dict]:
    head = next((r for r in rows if r["streams"] == 1000 and r["qos"] == 0), None)
    head = head or max((r for r in rows if r["qos"] == 0), key=lambda r: r["streams"], default=None)
    n = head["streams"] if head else 0
    ratio = head["daemon_over_relay"] if head else None
    rate = head["daemon_samples_per_s"]["median"] if head else None
    p99 = [
        x["ms"]["p99"]
        for x in lat
        if x["kind"] == "daemon" and x["rate"] == 1000.0 and x["ms"]["p99"]
    ]
    return [
        target(
            f"daemon / relay throughput ({n} streams, QoS 0)",
            None if ratio is None else 100 * ratio,
            90,
            ">=",
            "%",
        ),
        target(f"daemon samples/s on one core ({n} streams, QoS 0)", rate, 20000, ">=", "/s"),
        target(
            "daemon p99 latency at 1,000 samples/s (QoS 1)",
            statistics.median(p99) if p99 else None,
            2,
            "<",
            " ms",
        ),
    ]


def markdown(doc: dict[str, Any]) -> str:
    rows = []
    for r in doc["summary"]:
        rows.append(
            [
                r["streams"],
                r["qos"],
                f"{r['relay_per_s']['median']:,.0f}",
                _range(r["daemon_forecasts_per_s"]),
                f"{r['daemon_samples_per_s']['median']:,.0f}",
                "-" if r["daemon_over_relay"] is None else f"{100 * r['daemon_over_relay']:.0f}%",
                f"{_cpu(r, 'relay')} / {_cpu(r, 'daemon')}",
                r["lost"],
            ]
        )
    lrows = []
    for kind, rate, qos in sorted({(x["kind"], x["rate"], x["qos"]) for x in doc["latency"]},
                                  key=lambda k: (k[1], k[0] != "relay")):
        runs = [x for x in doc["latency"] if (x["kind"], x["rate"], x["qos"]) == (kind, rate, qos)]
        p99 = [x["ms"]["p99"] for x in runs if x["ms"]["p99"] is not None]
        lrows.append([
            kind,
            f"{rate:.0f}",
            qos,
            f"{statistics.median(x['achieved_rate'] for x in runs):.0f}",
            f"{sum(x['matched'] for x in runs)}/{sum(x['sent'] for x in runs)}",
            *(_ms(_median([x["ms"][k] for x in runs])) for k in ("p50", "p90", "p99")),
            f"{min(p99):.2f}–{max(p99):.2f}" if p99 else "-",
            _ms(max((x["ms"]["max"] for x in runs if x["ms"]["max"] is not None), default=None)),
        ])
    return "\n".join(
        [
            f"# End to end through mosquitto (median of {doc['repeats']} interleaved runs; "
            "daemon/relay on core 0, load on core 1)",
            "",
            "## Throughput (publisher floods; every sample of a warm stream yields one forecast)",
            "",
            md_table(
                ["streams", "QoS in/out", "relay msgs/s", "daemon forecasts/s (min–max)",
                 "daemon samples/s", "daemon / relay", "CPU µs/msg relay / daemon", "lost"],
                rows,
            ),
            "",
            f"## Latency, sensor publish -> forecast received (ms), 100 streams (median of "
            f"{doc['repeats']} runs)",
            "",
            md_table(
                ["process", "rate /s", "QoS in/out", "achieved /s", "matched", "p50", "p90", "p99",
                 "p99 min–max", "max"],
                lrows,
            ),
        ]
    )


def _range(s: dict[str, float]) -> str:
    return f"{s['median']:,.0f} ({s['min']:,.0f}–{s['max']:,.0f})"


def _cpu(row: dict[str, Any], kind: str) -> str:
    s = row.get(f"{kind}_cpu_us") or {}
    return f"{s['median']:.1f}" if s.get("n") else "-"


def _median(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        a1, a2 = fig.subplots(1, 2)
        rows = [r for r in doc["summary"] if r["qos"] == 0]
        xs = range(len(rows))
        a1.bar(
            [x - 0.2 for x in xs],
            [r["relay_per_s"]["median"] for r in rows],
            0.4,
            label="relay (floor)",
        )
        a1.bar(
            [x + 0.2 for x in xs],
            [r["daemon_forecasts_per_s"]["median"] for r in rows],
            0.4,
            label="daemon",
        )
        a1.axhline(20000, color="gray", ls=":", label="target 20k/s")
        a1.set_xticks(list(xs), [f"{r['streams']:,}" for r in rows])
        a1.set(xlabel="streams", ylabel="messages / s", title="throughput, QoS 0, one core")
        a1.legend(fontsize=7)
        for kind, color in (("relay", "tab:blue"), ("daemon", "tab:orange")):
            pts = sorted(
                (x["rate"], x["ms"]["p50"], x["ms"]["p99"])
                for x in doc["latency"]
                if x["kind"] == kind and x["ms"]["p50"] is not None
            )
            if pts:
                r, p50, p99 = zip(*pts, strict=True)
                a2.plot(r, p50, "o-", color=color, label=f"{kind} p50")
                a2.plot(r, p99, "s--", color=color, label=f"{kind} p99")
        a2.axhline(2, color="gray", ls=":", label="target p99 2 ms")
        a2.set(
            xscale="log",
            yscale="log",
            xlabel="samples / s",
            ylabel="ms",
            title="publish -> forecast latency, QoS 1",
        )
        a2.legend(fontsize=7)

    return draw
