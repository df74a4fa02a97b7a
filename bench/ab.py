"""Interleaved A/B of daemon variants against the relay floor, end to end through mosquitto.

    python -m bench.ab [--streams 1000] [--messages 25000] [--rounds 3] [--qos 0]
                       [--no-relay] [--latency RATE] [--metrics NAME ...] NAME=DIR [NAME=DIR ...]

Each DIR holds `edge/` and `tools/` folders (e.g. the last commit's: `git worktree add
/tmp/ab/base HEAD`); `NAME=.` is this checkout. They run as `seqcast.edge` through a symlinked
view. Every round runs the relay and each variant once, the order of the variants rotating from
round to round, and the table gives the median, min and max forecasts/s per variant, and the
median CPU time the process under test used per forecast (user + system, all threads): on a
shared machine the throughput moves with the neighbours' load, the CPU time per message much less.
`--latency RATE`: instead of floods, sensor publish -> forecast latency at RATE messages/s on 100
streams for 3 s per run (the e2e benchmark's), p50 and p99 per run and their medians.
`--unscored NAME`: variant NAME runs with `[quality] enabled = false` (live scoring's cost:
`base=. unscored=. --unscored unscored`).
`--metrics NAME`: variant NAME runs with `[metrics] listen` on a free port, scraped every
`--scrape-s` seconds (1) by a thread of this process for as long as it runs (NAME=DIR may name
the same DIR as another variant: `base=. metrics=. --metrics metrics`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench.common import CACHE, LOAD_CORE, ROOT, log, pin_self
from bench.e2e import BASE, latency, throughput


class Scraper:
    """GET http://127.0.0.1:PORT/metrics every `every_s` seconds on a thread until closed."""

    def __init__(self, port: int, every_s: float) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.every_s = every_s
        self.scrapes = 0
        self.bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    self.bytes += len(r.read())
                self.scrapes += 1
            except OSError:  # not up yet, or gone
                continue

    def close(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.scrapes


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
    p.add_argument("--metrics", action="append", default=[], metavar="NAME")
    p.add_argument("--unscored", action="append", default=[], metavar="NAME")
    p.add_argument("--scrape-s", type=float, default=1.0)
    args = p.parse_args(argv)
    from seqcast.tools.localbroker import LocalMosquitto, free_port

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
                kind = "unscored" if name in args.unscored else kind
                if args.latency:
                    r = latency(kind, port, bundle, work, 100, args.latency, 3.0, args.qos, root)
                else:
                    listen, scraper = "", None
                    if name in args.metrics:
                        scraped = free_port()
                        listen, scraper = f"127.0.0.1:{scraped}", Scraper(scraped, args.scrape_s)
                    try:
                        r = throughput(
                            kind, port, bundle, work, args.streams, args.messages, args.qos,
                            root=root, metrics_listen=listen,
                        )  # fmt: skip
                    finally:
                        scrapes = scraper.close() if scraper is not None else None
                    r["scrapes"] = scrapes
                    log(f"ab: round {rnd} {name}: {r['forecasts_per_s']:.0f}/s; scrapes {scrapes}")
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
    # (a --metrics variant's runs also record how many scrapes each saw: --json)
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
