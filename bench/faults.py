"""Benchmark 5: faults (see bench/README.md). Each scenario has its own mosquitto, daemon (core 0,
own state dir), QoS 1 persistent-session collector and publishers; every forecast is checked
against the uninterrupted reference (`bench.faults_report`)."""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import bundles as B
from bench import faults_broker as W
from bench import faults_judge as J
from bench import faults_report as F
from bench.common import CACHE, LOAD_CORE, log, pin_self
from bench.faults_md import markdown, plot, targets_of  # noqa: F401 - bench.run reads them here
from bench.faults_rig import BROKER_CONF, Rig, diff
from seqcast.edge.config import StreamsConfig

SEED = 9
BASE = B.BundleSpec(48, "lstm", "float32")
# `autosave_on_changes true` (a save after every change) is not used: mosquitto 2.0 reads one
# packet per client per loop and rewrites its whole database after each, so once a restart leaves
# a backlog the broker falls below the replay's rate and the backlog only grows (bench/README.md)
DURABLE: list[str] = []
SAVE_S = 2.0  # `autosave_interval 1`: mosquitto saves once more than 1 whole second has passed
GAP_S = StreamsConfig().max_gap * F.STEP  # a longer gap restarts a stream's warm-up


FULL = dict(streams=10, samples=2000, rate=500.0, faults=5,  # kill and broker: a steady replay
            big_messages=100, big_streams=10, big_samples=500, publishers=8, per_publisher=4000,
            bad_total=10_000, bad_good=120)  # fmt: skip
QUICK = dict(FULL, samples=120, rate=300.0, faults=2, big_messages=6, big_streams=5,
             per_publisher=150, bad_total=2500, bad_good=55)  # fmt: skip


def _singles(data: dict[str, list[F.Sample]]) -> list[tuple[str, bytes, Any]]:
    """Round-major single-sample messages, keyed (stream, ts)."""
    n = max(len(s) for s in data.values())
    rounds = ((s, data[s][r]) for r in range(n) for s in data if r < len(data[s]))
    return [(F.topic(s), F.payload(*smp), (s, smp[0])) for s, smp in rounds]


# -- scenarios ---------------------------------------------------------------------------------


def _fault(rig: Rig, t: float, sig: signal.Signals, daemon: bool) -> dict[str, Any]:
    """SIGKILL and restart the daemon (back: its `online`), or send `sig` to the broker and
    start it again (back: broker listening -> the daemon's `online`, its reconnect)."""
    if daemon:
        rig.daemon.kill()
        replayed = rig.daemon.start().get("counters", {}).get("state_journal_replayed")
        return {"back_s": round(time.monotonic() - t, 2), "detail": f"journal replayed {replayed}"}
    return W.restart(rig, sig)


def replay(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    """A steady replay; at random (seeded) times daemon SIGKILLs, or broker SIGTERM / SIGKILL
    (its database on tmpfs when there is one; the broker itself watched, `bench.faults_broker`)."""
    data = {f"s{i:02d}": F.series(i, z["samples"]) for i in range(z["streams"])}
    ref, msgs = F.reference(bundle, data), _singles(data)
    label, act = ("daemon", "SIGKILLs") if name == "kill" else ("broker", "restarts")
    span = len(msgs) / z["rate"]
    times = sorted(rng.uniform(min(2.0, span / 4), 0.9 * span) for _ in range(z["faults"]))
    broker = name == "broker"

    def rebuild(gone: list[Any], seen: dict[Any, Any]) -> tuple[F.Reference, list[Any]]:
        """The reference without the inputs the broker lost (those the daemon never saw)."""
        lost = set(J.lost_inputs(bundle, data, gone, seen, GAP_S))
        kept = {s: [x for x in v if (s, x[0]) not in lost] for s, v in data.items()}
        return F.reference(bundle, kept, GAP_S), sorted(lost)

    place = W.data_dir() if broker else None
    with Rig(name, work, bundle, conf=DURABLE if broker else (), data_dir=place) as rig:
        sender, ping = rig.sender(), W.Ping(rig.broker.port) if broker else None
        t0, events, windows = rig.feed([(sender, msgs)], z["rate"]), [], []
        for j, at in enumerate(times):
            sig = signal.SIGKILL if name == "kill" or j % 2 else signal.SIGTERM
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            t = time.monotonic()
            ev = {"fault": f"{label} {sig.name}", "at_s": round(t - t0, 1), "at_mono": t}
            events.append(ev | _fault(rig, t, sig, name == "kill"))
            if broker and sig == signal.SIGKILL:
                windows.append((t - SAVE_S, t))  # inputs it accepted since its last save
        at = {k: ts for k, ts, _ in sender.sent}
        res = rig.finish([sender], ref, t0, accepted_at=at, broker_windows=windows, rebuild=rebuild)
        if ping is not None:
            ping.close()
            res["broker"] = ping.summary() | {"database_dir": str(place or tempfile.gettempdir())}
            res["broker"]["stalls"] = W.stalls(events, res["broker"], res)
    for ev in events:
        del ev["at_mono"]
    what = f"{len(events)} {label} {act}, {len(msgs):,} samples at {z['rate']:g}/s"
    return {"name": name, "what": what, "faults": True, "events": events, **res}


def flood(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    """Flat out: big, 500-sample arrays; burst, single samples from several publishers."""
    if name == "big":
        per, n, k = z["big_messages"] // z["big_streams"], z["big_samples"], 1
        what = f"{z['big_messages']} messages of {n} samples, {z['big_streams']} streams"
        data = {f"b{i:02d}": F.series(i, per * n) for i in range(z["big_streams"])}
        mine = [[(F.topic(s), json.dumps([{"ts": t, "load": v[0], "temp": v[1]} for t, v in c])
                  .encode(), (s, m)) for m in range(per) for s in data
                 if (c := data[s][m * n : (m + 1) * n])]]  # fmt: skip
    else:
        k = z["publishers"]
        what = f"{k} publishers x {z['per_publisher']:,} single-sample messages"
        data = {f"u{i:02d}": F.series(i, z["per_publisher"] // 2) for i in range(2 * k)}
        mine = [_singles({s: data[s] for s in list(data)[2 * i : 2 * i + 2]}) for i in range(k)]
    ref = F.reference(bundle, data)
    with Rig(name, work, bundle) as rig:
        senders = [rig.sender() for _ in range(k)]
        res = rig.finish(senders, ref, rig.feed(list(zip(senders, mine, strict=True)), 0))
    return {"name": name, "what": what, "faults": False, **res}


def _handled(status: dict[str, Any]) -> int:  # input messages the daemon is done with
    c = status.get("counters", {})
    return sum(c.get(k, 0) for k in ("messages", "mqtt_unknown_topic", "mqtt_stream_id_too_long"))


def bad(work: Path, bundle: Path, z: dict[str, Any], rng: random.Random, name: str) -> dict:
    corpus = F.corpus(z["bad_total"], z["bad_good"], rng.randrange(2**31))
    ref = F.reference(bundle, corpus["data"])
    counted: dict[str, dict[str, int]] = {}
    with Rig("bad", work, bundle, status_s=0.1) as rig:
        sender, w = rig.sender(), rig.daemon.watcher or rig.daemon.watch()
        n = _handled(w.latest) + 2 * len(corpus["probes"])
        for topic, body in (m for p in corpus["probes"] for m in p["prime"]):
            sender.send(topic, body, None)  # one fresh stream per kind, two good samples
        if w.wait(lambda s: _handled(s) >= n, 60) is None:
            raise RuntimeError("the probe streams were not primed")
        for p in corpus["probes"]:  # one message of each kind: what did the daemon count?
            time.sleep(0.12)  # the status interval: the daemon reports right after the message
            before = w.latest
            sender.send(*p["message"], p["kind"])
            b = _handled(before) + p["sent"]  # a message outside the filter never reaches it
            after = w.wait(lambda s, b=b: _handled(s) >= b, 10) or w.latest
            counted[p["kind"]] = diff(after.get("counters", {}), before.get("counters", {}))
        base = dict(w.latest.get("counters", {}))
        msgs = [(topic, body, i) for i, (topic, body, _) in enumerate(corpus["messages"])]
        res = rig.finish([sender], ref, rig.feed([(sender, msgs)], 0))
    of = {k: s for s, k in corpus["stream_kind"].items()}
    kinds = [{"kind": k.name, "group": k.group, "messages": corpus["count"][k.name], "counted_as":
              counted.get(k.name, {}), "stream": res["per_stream"].get(of.get(k.name, ""))}
             for k in F.KINDS]  # fmt: skip
    counters = diff(rig.daemon.runs[-1], base)
    res["bad_input"] = {"messages": len(msgs), "kinds": kinds, "corpus_counters": counters}
    what = f"{len(msgs):,} messages, {len(F.KINDS)} kinds of bad input between good samples"
    return {"name": "bad input", "what": what, "faults": False, **res}


SCENARIOS = ("kill", "broker", "big", "burst", "bad")


def run_scenario(name: str, quick: bool, cache: Path, work: Path) -> dict[str, Any]:
    """One scenario by name, with its own seeded random generator (as in the full run)."""
    bundle = B.ensure([BASE], cache)[BASE]
    k = SCENARIOS.index(name)
    scenario = replay if k < 2 else flood if k < 4 else bad
    return scenario(work, bundle, QUICK if quick else FULL, random.Random(SEED + k), name)


def run(quick: bool, cache: Path) -> dict[str, Any]:
    pinned, z = pin_self(LOAD_CORE), QUICK if quick else FULL
    scenarios: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="seqcast-faults-") as tmp:
        for name in SCENARIOS:
            log(f"faults: {name} ...")
            scenarios.append(run_scenario(name, quick, cache, Path(tmp)))
    bad_input = scenarios[-1].pop("bad_input")
    return {"name": "faults", "orchestrator_core": pinned, "bundle": BASE.key, "seed": SEED,
            "sizes": z, "broker_config": [*BROKER_CONF, "max_queued_messages 0"],
            "scenarios": scenarios, "bad_input": bad_input,
            "targets": targets_of(scenarios)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.faults SCENARIO [--repeat N] [--quick] [--keep DIR]`: one scenario alone,
    N times; one JSON line per run on stdout (figures, recovery, broker stalls, counters)."""
    p = argparse.ArgumentParser(prog="python -m bench.faults", description=main.__doc__)
    p.add_argument("scenario", choices=SCENARIOS)
    p.add_argument("--repeat", type=int, default=1, help="runs, one after the other (1)")
    p.add_argument("--quick", action="store_true", help="the --quick sizes")
    p.add_argument("--keep", type=Path, help="keep each run's logs and state here (run-N/)")
    p.add_argument("--cache", type=Path, default=CACHE, help=f"bundle cache ({CACHE})")
    args = p.parse_args(argv)
    pin_self(LOAD_CORE)
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="seqcast-faults-") as tmp:
            work = Path(tmp) if args.keep is None else args.keep / f"run-{i + 1}"
            work.mkdir(parents=True, exist_ok=True)
            res = run_scenario(args.scenario, args.quick, args.cache, work)
        res.pop("bad_input", None)
        res.pop("per_stream", None)
        print(json.dumps({"run": i + 1, **res}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
