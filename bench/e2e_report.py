"""Benchmark 2, analysis: summary, targets, markdown tables and the plot of `bench.e2e`."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from bench.common import md_table, summary, target


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
            kind: summary(
                [
                    r["cpu_us_per_msg"]
                    for r in thr
                    if "cpu_us_per_msg" in r
                    and (r["streams"], r["qos"], r["kind"]) == (n, qos, kind)
                ]
            )
            for kind in ("relay", "daemon")
        }
        without = {}
        # the daemon with one feature off, or (scraped) with [metrics] on (bench/e2e.py):
        # the ratio is always with the feature / without it
        for kind in ("unaligned", "unscored", "scraped"):
            runs = [r for r in thr if (r["streams"], r["qos"], r["kind"]) == (n, qos, kind)]
            k_out = summary([r["forecasts_per_s"] for r in runs])
            k_cpu = summary([r["cpu_us_per_msg"] for r in runs if "cpu_us_per_msg" in r])
            ratio_k = None
            if k_out["n"] and d_out["n"]:
                with_, without_ = (k_out, d_out) if kind == "scraped" else (d_out, k_out)
                ratio_k = with_["median"] / without_["median"]
            without[kind] = (k_out, k_cpu, ratio_k)
        out.append(
            {
                "streams": n,
                "qos": qos,
                "unaligned_forecasts_per_s": without["unaligned"][0],  # streams.align = "off"
                "unaligned_cpu_us": without["unaligned"][1],
                "aligned_over_unaligned": without["unaligned"][2],
                "unscored_forecasts_per_s": without["unscored"][0],  # [quality] enabled = false
                "unscored_cpu_us": without["unscored"][1],
                "scored_over_unscored": without["unscored"][2],
                "scraped_forecasts_per_s": without["scraped"][0],  # [metrics] on, scraped 1/s
                "scraped_cpu_us": without["scraped"][1],
                "scraped_over_default": without["scraped"][2],
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
    aligned = head.get("aligned_over_unaligned") if head else None
    scored = head.get("scored_over_unscored") if head else None
    scraped = head.get("scraped_over_default") if head else None
    return [
        target(
            f"metrics' cost: throughput with / without ([metrics] scraped every second / off, "
            f"{n} streams)",
            None if scraped is None else 100 * scraped,
            95,
            ">=",
            "%",
        ),
        target(
            f"live scoring's cost: throughput with / without ([quality] on / off, {n} streams)",
            None if scored is None else 100 * scored,
            95,
            ">=",
            "%",
        ),
        target(
            f"aligning's cost: throughput with / without (align = mean / off, {n} streams)",
            None if aligned is None else 100 * aligned,
            90,
            ">=",
            "%",
        ),
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
    for kind, rate, qos in sorted(
        {(x["kind"], x["rate"], x["qos"]) for x in doc["latency"]},
        key=lambda k: (k[1], k[0] != "relay"),
    ):
        runs = [x for x in doc["latency"] if (x["kind"], x["rate"], x["qos"]) == (kind, rate, qos)]
        p99 = [x["ms"]["p99"] for x in runs if x["ms"]["p99"] is not None]
        lrows.append(
            [
                kind,
                f"{rate:.0f}",
                qos,
                f"{statistics.median(x['achieved_rate'] for x in runs):.0f}",
                f"{sum(x['matched'] for x in runs)}/{sum(x['sent'] for x in runs)}",
                *(_ms(_median([x["ms"][k] for x in runs])) for k in ("p50", "p90", "p99")),
                f"{min(p99):.2f}–{max(p99):.2f}" if p99 else "-",
                _ms(
                    max((x["ms"]["max"] for x in runs if x["ms"]["max"] is not None), default=None)
                ),
            ]
        )
    return "\n".join(
        [
            f"# End to end through mosquitto (median of {doc['repeats']} interleaved runs; "
            "daemon/relay on core 0, load on core 1)",
            "",
            "## Throughput (publisher floods; every sample of a warm stream yields one forecast)",
            "",
            md_table(
                [
                    "streams",
                    "QoS in/out",
                    "relay msgs/s",
                    "daemon forecasts/s (min–max)",
                    "daemon samples/s",
                    "daemon / relay",
                    "CPU µs/msg relay / daemon",
                    "lost",
                ],
                rows,
            ),
            "",
            "Aligning (`streams.align`, on by default) against the same daemon with `align = "
            '"off"`, same floods, interleaved: '
            + "; ".join(
                f"{r['streams']} streams: {r['daemon_forecasts_per_s']['median']:,.0f} vs "
                f"{r['unaligned_forecasts_per_s']['median']:,.0f} forecasts/s "
                f"({100 * r['aligned_over_unaligned']:.0f}%), CPU "
                f"{r['daemon_cpu_us']['median']:.1f} vs {r['unaligned_cpu_us']['median']:.1f} "
                "µs/msg"
                for r in doc["summary"]
                if r.get("aligned_over_unaligned")
            )
            + ".",
            "",
            "Live scoring (`[quality]`, on by default) against the same daemon with `enabled = "
            "false`, same floods, interleaved: "
            + "; ".join(
                f"{r['streams']} streams: {r['daemon_forecasts_per_s']['median']:,.0f} vs "
                f"{r['unscored_forecasts_per_s']['median']:,.0f} forecasts/s "
                f"({100 * r['scored_over_unscored']:.0f}%), CPU "
                f"{r['daemon_cpu_us']['median']:.1f} vs {r['unscored_cpu_us']['median']:.1f} "
                "µs/msg"
                for r in doc["summary"]
                if r.get("scored_over_unscored")
            )
            + ".",
            "",
            "Prometheus metrics (`[metrics] listen`, off by default) on and scraped every second, "
            "against the same daemon without them, same floods, interleaved: "
            + "; ".join(
                f"{r['streams']} streams: {r['scraped_forecasts_per_s']['median']:,.0f} vs "
                f"{r['daemon_forecasts_per_s']['median']:,.0f} forecasts/s "
                f"({100 * r['scraped_over_default']:.0f}%), CPU "
                f"{r['scraped_cpu_us']['median']:.1f} vs {r['daemon_cpu_us']['median']:.1f} "
                "µs/msg"
                for r in doc["summary"]
                if r.get("scraped_over_default")
            )
            + ".",
            "",
            f"## Latency, sensor publish -> forecast received (ms), 100 streams (median of "
            f"{doc['repeats']} runs)",
            "",
            md_table(
                [
                    "process",
                    "rate /s",
                    "QoS in/out",
                    "achieved /s",
                    "matched",
                    "p50",
                    "p90",
                    "p99",
                    "p99 min–max",
                    "max",
                ],
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
