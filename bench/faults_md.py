"""Benchmark 5 (faults), the report: targets, the markdown tables and the plot, from the results
`bench.faults` collected (judged by `bench.faults_report`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import md_table, target

COLUMNS = ("expected", "received", "lost", "wrong", "duplicated", "redelivered", "seconds")
SHOWN = ("samples", "forecasts", "bad_payloads", "streams_dropped_duplicate",
         "streams_dropped_late", "streams_held", "streams_dropped_stale", "streams_filled",
         "state_journal_replayed", "mqtt_outbox_overflow", "mqtt_dropped_queue_full",
         "mqtt_backpressure", "mqtt_connects")  # fmt: skip


def targets_of(sc: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lost, lost_d = sum(s["lost"] for s in sc), sum(s["lost_daemon"] for s in sc)
    wrong, wrong_d = sum(s["wrong"] for s in sc), sum(s["wrong_daemon"] for s in sc)
    inputs = sum(s["lost_inputs"] for s in sc)
    bad_dups = sum(s["duplicated"] for s in sc if not s["faults"])
    bad_dups += sum(s["duplicates_differing"] for s in sc)
    n, w = f"the broker lost {inputs} acknowledged inputs" if inputs else "", "<="
    g = n and "given the inputs it got"
    stalled = [s["name"] for s in sc if stalls(s)]
    fair = "; ".join(f"{s}: the broker stalled, see its section" for s in stalled)
    return [
        target("broker stalls (a scenario the broker itself spoiled)", len(stalled), 0, w,
               note=fair),
        target("forecasts lost, all scenarios", lost, 0, w, note=n),
        target("forecasts lost by the daemon", lost_d, 0, w, note=g),
        target("wrong forecasts (vs the uninterrupted reference)", wrong, 0, w),
        target("wrong forecasts by the daemon", wrong_d, 0, w, note=g),
        target("duplicates QoS 1 does not allow", bad_dups, 0, "<=",
               note="in fault-free scenarios, or with a different payload"),
    ]  # fmt: skip


def stalls(s: dict[str, Any]) -> list[str]:
    """What the broker did wrong in scenario `s` (only the broker scenario watches it)."""
    return list(s.get("broker", {}).get("stalls", []))


def _broker(s: dict[str, Any]) -> str:
    return "-" if "broker" not in s else f"**stalled** ({len(stalls(s))})" if stalls(s) else "ok"


def _broker_section(sc: list[dict[str, Any]]) -> list[str]:
    out = []
    for s in (s for s in sc if "broker" in s):
        b = s["broker"]
        out += ["", f"## The broker itself ({s['name']})", "",
                f"Database in `{b['database_dir']}`. A QoS 1 probe every 0.1 s on a topic "
                f"nobody reads: {b['probes']:,} PUBACKs, round trip p50 {b['rtt_ms_p50']} ms, "
                f"max {b['rtt_ms_max']} ms; longest silence {b['longest_silence_s']} s "
                f"(restarts included). The publisher's longest wait for PUBACKs after a "
                f"reconnect: {s['longest_puback_wait_s']} s; inputs accepted "
                f"{s['accepted']:,} of {s['inputs']:,}.", ""]  # fmt: skip
        out += [f"- stalled: {x}" for x in stalls(s)] or ["No broker stall (none over 2 s)."]
    return out


def _counted(diff: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:+d}" for k, v in sorted(diff.items())) or "nothing"


def markdown(doc: dict[str, Any]) -> str:
    sc = doc["scenarios"]

    def part(s: dict[str, Any], key: str) -> str:
        fair = s.get("broker_lost_forecasts")  # judged again without what the broker lost
        return f"{s[key]:,}" + (f" (daemon {s[key + '_daemon']:,})" if fair else "")

    rows = [[s["name"], s["what"], f"{s['expected']:,}", f"{s['received']:,}", part(s, "lost"),
             part(s, "wrong"), s["duplicated"], s["redelivered"], f"{s['seconds']:.1f}",
             _broker(s)]
            for s in sc]  # fmt: skip
    crow = [[s["name"], *(f"{s['counters'].get(k, 0):,}" for k in SHOWN)] for s in sc]
    out = [
        "# Faults: forecasts expected / received / lost / wrong / duplicated",
        "",
        f"Broker: mosquitto, `{'`, `'.join(doc['broker_config'])}` (`autosave_interval 1`: a "
        "save every 2 s; the broker scenario's database on tmpfs, see its section). Daemon: "
        "defaults except broker, topics, state dir and `status.interval_s`. QoS 1 in and out; "
        f"seed {doc['seed']}. Reference: offline, one sample at a time (float32 equality). "
        "(daemon N): when a SIGKILLed broker lost forecasts and inputs, what is lost or wrong "
        "against the reference without the inputs the daemon never saw (`bench/faults_judge.py`"
        "). broker: whether the broker itself stalled (only the broker scenario watches it).",
        "",
        md_table(["scenario", "what", "expected", "received", "lost", "wrong", "duplicated",
                  "of them redelivered", "seconds", "broker"], rows),
        "",
        "## Recovery",
        "",
        md_table(["scenario", "#", "fault", "at s", "broker exit s", "broker listen s",
                  "back in s", "detail"],
                 [[s["name"], i + 1, e["fault"], e["at_s"], e.get("exit_s", "-"),
                   e.get("listen_s", "-"), e["back_s"], e.get("detail", "")]
                  for s in sc for i, e in enumerate(s.get("events", []))]),
        "",
        "Back in: daemon SIGKILL → the restarted daemon's `online` status; broker restart: "
        "listening again → the daemon's `online` status. Broker exit: signal → exited (a "
        "SIGTERMed mosquitto saves its database first); listen: started → listening (it loads "
        "the database first).",
        *_broker_section(sc),
        "",
        "## Daemon counters (status topic; kill: summed over its runs, each as last reported)",
        "",
        md_table(["scenario", *SHOWN], crow),
    ]  # fmt: skip
    bad = doc.get("bad_input")
    if bad:
        krows = []
        for k in bad["kinds"]:
            st = k["stream"] or {}
            its = f"{st['expected']} / {st['lost']} / {st['wrong']}" if st else "-"
            krows.append([k["kind"], k["group"], k["messages"], _counted(k["counted_as"]), its])
        out += [
            "",
            f"## Bad input: {bad['messages']:,} messages, {len(bad['kinds'])} kinds",
            "",
            "Counted as: the daemon's counter changes for one probe message of the kind "
            "(status topic). Its stream: the good stream that received that kind between its "
            "own samples, forecasts expected / lost / wrong.",
            "",
            md_table(["kind", "group", "messages", "counted as", "its stream"], krows),
            "",
            f"Whole corpus, counter changes: {_counted(bad['corpus_counters'])}.",
        ]
    return "\n".join(out)


def plot(doc: dict[str, Any]) -> Callable[[Any], None]:
    def draw(fig: Any) -> None:
        ax, sc = fig.subplots(), doc["scenarios"]
        keys = ("lost", "lost_daemon", "wrong", "wrong_daemon", "duplicated")
        bars = {k.replace("_", ", ") + ("'s" * k.endswith("n")): [s[k] for s in sc] for k in keys}
        for j, (label, values) in enumerate(bars.items()):
            b = ax.bar(np.arange(len(sc)) + (j - 2) * 0.17, values, 0.17, label=label)
            ax.bar_label(b, fontsize=7)
        ax.set_xticks(range(len(sc)), [f"{s['name']}\n{s['expected']:,} expected" for s in sc])
        ax.set(yscale="symlog", ylabel="forecasts", title="faults: goal 0 lost, 0 wrong")
        ax.legend(fontsize=7)

    return draw
