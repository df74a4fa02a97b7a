"""Q5: mosquitto vs nats-server MQTT listener (single node, partition mapping). Each run < 30 s.
  latency : QoS1 pub at 1000 msg/s for 5 s (5000 msgs over 200 ids), QoS1 subscriber -> p50/p99
  thrpt   : QoS0 flood of 100k msgs, QoS0 subscriber -> msgs/s (received / (last recv - first send))
Medians of 3 runs. Run: ./venv/bin/python bench.py [RUNS] [LAT_N] [THR_N]
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from common import HERE, NATS_BIN, stop, wait_port

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
LAT_N = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
THR_N = int(sys.argv[3]) if len(sys.argv) > 3 else 100000
PY = os.path.join(HERE, "venv/bin/python")
BC = os.path.join(HERE, "bench_client.py")

BROKERS = {
    "mosquitto": dict(
        cmd=["/usr/sbin/mosquitto", "-c", os.path.join(HERE, "conf/mosquitto.conf")],
        port=11999,
        topic="sensors/+",
    ),
    "nats-mqtt(mapped)": dict(
        cmd=[NATS_BIN, "-c", os.path.join(HERE, "conf/single.conf")],
        port=11883,
        topic="part/+/sensors/+",
        clean="/tmp/nats-spike/data/single",
    ),
    "nats-mqtt->nats-py sub": dict(
        cmd=[NATS_BIN, "-c", os.path.join(HERE, "conf/single.conf")],
        port=11883,
        topic="part.*.sensors.*",
        kind="natspy",
        nport=14222,
        clean="/tmp/nats-spike/data/single",
    ),
}


def one(b, qos, n, rate, idle):
    if b.get("clean"):
        shutil.rmtree(b["clean"], ignore_errors=True)
    with open(os.path.join(HERE, "logs", "bench_broker.log"), "a") as log:
        bp = subprocess.Popen(b["cmd"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(b["port"])
        time.sleep(0.3)
        sport = b.get("nport", b["port"])
        s = subprocess.Popen(
            [
                PY,
                BC,
                "sub",
                str(sport),
                b["topic"],
                str(qos),
                str(n),
                str(idle),
                b.get("kind", "mqtt"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert s.stdout.readline().strip() == "READY"
        time.sleep(0.3)
        p = subprocess.run(
            [PY, BC, "pub", str(b["port"]), str(qos), str(n), str(rate)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        pr = json.loads(p.stdout.strip().splitlines()[-1])
        so, _ = s.communicate(timeout=60)
        sr = json.loads(so.strip().splitlines()[-1])
        r = dict(
            sent=pr["sent"],
            acked=pr["acked"],
            received=sr["received"],
            p50_ms=sr["p50_ms"],
            p99_ms=sr["p99_ms"],
            max_ms=sr["max_ms"],
        )
        if sr["last_ns"]:
            r["recv_rate"] = sr["received"] / ((sr["last_ns"] - pr["start_ns"]) / 1e9)
            r["pub_rate"] = pr["sent"] / ((pr["end_ns"] - pr["start_ns"]) / 1e9)
        return r
    finally:
        stop(bp)


def med(rs, k):
    v = [r[k] for r in rs if r.get(k) is not None]
    return round(statistics.median(v), 3) if v else None


out = {"runs": RUNS, "lat_n": LAT_N, "thr_n": THR_N, "results": {}}
for name, b in BROKERS.items():
    lat = [one(b, 1, LAT_N, 1000, 2) for _ in range(RUNS)]
    thr = [one(b, 0, THR_N, 0, 2) for _ in range(RUNS)]
    out["results"][name] = {
        "lat_qos1_1000ps": {
            "p50_ms_median": med(lat, "p50_ms"),
            "p99_ms_median": med(lat, "p99_ms"),
            "received": [r["received"] for r in lat],
            "raw": lat,
        },
        "thr_qos0_flood": {
            "recv_msgs_per_s_median": med(thr, "recv_rate"),
            "pub_msgs_per_s_median": med(thr, "pub_rate"),
            "received": [r["received"] for r in thr],
            "raw": thr,
        },
    }
    print(
        name,
        json.dumps(
            {
                k: {kk: vv for kk, vv in v.items() if kk != "raw"}
                for k, v in out["results"][name].items()
            }
        ),
        flush=True,
    )
with open(os.path.join(HERE, "logs", "bench_results.json"), "w") as f:
    json.dump(out, f, indent=1)
