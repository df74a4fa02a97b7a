"""Interleaved A/B of daemon variants against the relay floor, end to end through mosquitto.

    python -m bench.ab [--streams 1000] [--messages 25000] [--rounds 3] [--qos 0]
                       [--no-relay] [--latency RATE] NAME=DIR [NAME=DIR ...]

Each DIR holds `edge/` and `tools/` folders (e.g. the last commit's: `git worktree add
/tmp/ab/base HEAD`); `NAME=.` is this checkout. They run as `seqcast.edge` through a symlinked
view. Every round runs the relay and each variant once, the order of the variants rotating from
round to round, and the table gives the median, min and max forecasts/s per variant, and the
median CPU time the process under test used per forecast (user + system, all threads): on a
shared machine the throughput moves with the neighbours' load, the CPU time per message much less.
`--latency RATE`: instead of floods, sensor publish -> forecast latency at RATE messages/s on 100
streams for 3 s per run (the e2e benchmark's), p50 and p99 per run and their medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import CACHE, LOAD_CORE, ROOT, log, pin_self
from bench.e2e import BASE, latency, throughput


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.ab",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("variants", nargs="+", help="NAME=DIR holding an edge/ package")
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--messages", type=int, default=25000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--qos", type=int, default=0)
    p.add_argument("--no-relay", action="store_true")
    p.add_argument("--json", type=Path, help="also write every run here")
    p.add_argument("--latency", type=float, metavar="RATE", help="latency at RATE msgs/s")
    args = p.parse_args(argv)
    from seqcast.tools.localbroker import LocalMosquitto

    variants = []
    for v in args.variants:
        name, _, d = v.partition("=")
        root = ROOT if d in ("", ".") else Path(d).resolve()
        if not (root / "edge" / "cli.py").exists() or not (root / "tools").is_dir():
            p.error(f"{root} holds no edge/ package")
        variants.append((name, root))
    bundle = B.ensure([BASE], CACHE)[BASE]
    pinned = pin_self(LOAD_CORE)
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-ab-") as tmp, LocalMosquitto() as broker:
        if broker.proc is not None and pinned is not None:
            os.sched_setaffinity(broker.proc.pid, {pinned})
        work, port = Path(tmp), broker.port
        for rnd in range(args.rounds):
            k = rnd % len(variants)
            order = [("relay", None)] if not args.no_relay else []
            order += variants[k:] + variants[:k]
            for name, root in order:
                kind = "relay" if root is None else "daemon"
                if args.latency:
                    r = latency(kind, port, bundle, work, 100, args.latency, 3.0, args.qos, root)
                else:
                    r = throughput(
                        kind, port, bundle, work, args.streams, args.messages, args.qos, root=root
                    )
                    log(f"ab: round {rnd} {name}: {r['forecasts_per_s']:.0f}/s")
                r["variant"] = name
                runs.append(r)
    names = ([] if args.no_relay else ["relay"]) + [n for n, _ in variants]
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1, default=str) + "\n")
    if args.latency:
        rate = f"{args.latency:g} msgs/s"
        print(f"\n100 streams at {rate}, QoS {args.qos}, {args.rounds} rounds (ms)")
        print(f"{'variant':12s} {'p50':>7s} {'p99':>7s}  p99 per run")
        for n in names:
            mine = [r["ms"] for r in runs if r["variant"] == n]
            p50 = statistics.median(m["p50"] for m in mine)
            p99 = statistics.median(m["p99"] for m in mine)
            print(f"{n:12s} {p50:7.2f} {p99:7.2f}  " + " ".join(f"{m['p99']:.2f}" for m in mine))
        return 0
    print(f"\n{args.streams} streams, QoS {args.qos}, {args.rounds} rounds (forecasts/s)")
    print(f"{'variant':12s} {'median':>8s} {'min':>8s} {'max':>8s}  {'CPU µs/msg':>10s}  runs")
    for n in names:
        xs = [r["forecasts_per_s"] for r in runs if r["variant"] == n]
        cpu = statistics.median(r["cpu_us_per_msg"] for r in runs if r["variant"] == n)
        print(
            f"{n:12s} {statistics.median(xs):8.0f} {min(xs):8.0f} {max(xs):8.0f}  {cpu:10.1f}  "
            + " ".join(f"{x:.0f}" for x in xs)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
