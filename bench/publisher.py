"""Load generators and probes, each run as its own process:

    python -m bench.publisher flood   SPEC_JSON   pre-encode N streams x R rounds, send flat out
    python -m bench.publisher count   SPEC_JSON   count PUBLISHes on a filter, print timings
    python -m bench.publisher latency SPEC_JSON   publish at a fixed rate and time each forecast

Each prints one JSON line with its result on stdout (`count` first prints `ready`). Times are
`time.monotonic_ns()` (CLOCK_MONOTONIC, comparable between processes on one machine).
Payloads follow the MQTT contract: `{"ts": ..., "load": ..., "temp": ...}` (or arrays of them).
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any

from bench.common import percentile
from bench.mqttraw import PUBLISH, RawClient, parse_publish, publish_packet

CHUNK = 256 * 1024


def stream_name(i: int) -> str:
    return f"m{i:06d}"


def sample(stream: int, rnd: int, ts0: float, interval: float) -> bytes:
    """One sample of stream `stream` at round `rnd` (values follow a daily cycle)."""
    phase = 2 * math.pi * ((rnd + 7 * stream) % 48) / 48
    return b'{"ts":%r,"load":%.3f,"temp":%.2f}' % (
        ts0 + rnd * interval,
        100 + 30 * math.sin(phase),
        20 + 5 * math.sin(phase - 1.0),
    )


def encode_messages(spec: dict[str, Any]) -> list[bytes]:
    """Round-major order: every stream's sample of round r before any of round r + 1.
    `per_message` > 1 packs that many consecutive rounds of one stream into a JSON array."""
    tpl = spec.get("topic", "sensors/{stream}/data")
    lo, hi = spec.get("stream_lo", 0), spec["streams"]
    r0, rounds, per = spec.get("start_round", 0), spec["rounds"], spec.get("per_message", 1)
    ts0, interval = spec["ts0"], spec["interval"]
    qos = spec.get("qos", 0)
    topics = {s: tpl.replace("{stream}", stream_name(s)).encode() for s in range(lo, hi)}
    out, pid = [], 0
    for r in range(r0, r0 + rounds, per):
        for s in range(lo, hi):
            if per == 1:
                body = sample(s, r, ts0, interval)
            else:
                body = (
                    b"["
                    + b",".join(
                        sample(s, k, ts0, interval) for k in range(r, min(r + per, r0 + rounds))
                    )
                    + b"]"
                )
            pid = pid % 65535 + 1
            out.append(publish_packet(topics[s], body, qos, pid))
    return out


def flood(spec: dict[str, Any]) -> dict[str, Any]:
    packets = encode_messages(spec)
    chunks, cur, size = [], [], 0
    for p in packets:
        cur.append(p)
        size += len(p)
        if size >= CHUNK:
            chunks.append(b"".join(cur))
            cur, size = [], 0
    if cur:
        chunks.append(b"".join(cur))
    c = RawClient(spec["host"], spec["port"], f"bench-pub-{time.monotonic_ns() % 10**9}")
    c.sock.settimeout(None)
    if spec.get("qos", 0):
        c.drain_in_background()
    start = time.monotonic_ns()
    for chunk in chunks:
        c.send(chunk)
    end = time.monotonic_ns()
    deadline = time.monotonic() + 120
    if spec.get("qos", 0):  # every PUBACK back: the broker has taken every message
        while c.drained < 4 * len(packets) and time.monotonic() < deadline:
            time.sleep(0.01)
    else:
        time.sleep(0.2)  # let the broker read everything before DISCONNECT
    c.close()
    return {"sent": len(packets), "bytes": sum(map(len, chunks)), "start_ns": start, "end_ns": end}


def count(spec: dict[str, Any]) -> dict[str, Any]:
    """Count PUBLISH packets on `filter` until `expect` arrived, or `idle_s` without any."""
    c = RawClient(spec["host"], spec["port"], f"bench-count-{time.monotonic_ns() % 10**9}")
    c.subscribe(spec["filter"], 0)
    c.sock.settimeout(spec.get("idle_s", 5.0))
    print("ready", flush=True)
    expect, n, first, last = spec["expect"], 0, 0, 0
    try:
        for head, _ in c.packets():
            if head >> 4 == PUBLISH:
                n += 1
                last = time.monotonic_ns()
                if n == 1:
                    first = last
                if n >= expect:
                    break
    except TimeoutError:
        pass
    c.close()
    return {"count": n, "first_ns": first, "last_ns": last}


def latency(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish round-robin over the streams at `rate` per second for `seconds`; match each
    forecast to its sample by (stream, ts) and time publish -> receipt in this one process."""
    host, port, qos = spec["host"], spec["port"], spec.get("qos", 0)
    tpl, n_streams = spec.get("topic", "sensors/{stream}/data"), spec["streams"]
    r0, ts0, interval = spec["start_round"], spec["ts0"], spec["interval"]
    total = int(spec["rate"] * spec["seconds"])
    sent_at: dict[tuple[str, float], int] = {}
    got: dict[tuple[str, float], int] = {}
    sub = RawClient(host, port, f"bench-lat-sub-{time.monotonic_ns() % 10**9}")
    sub.subscribe(spec["filter"], 0)
    sub.sock.settimeout(None)

    def receive() -> None:
        try:
            for head, body in sub.packets():
                if head >> 4 == PUBLISH:
                    t = time.perf_counter_ns()
                    doc = json.loads(parse_publish(head, body)[1])
                    got[(doc["stream"], float(doc["ts"]))] = t
        except (OSError, ValueError):
            pass

    reader = threading.Thread(target=receive, daemon=True)
    reader.start()
    pub = RawClient(host, port, f"bench-lat-pub-{time.monotonic_ns() % 10**9}")
    pub.sock.settimeout(None)
    if qos:
        pub.drain_in_background()
    plan = []
    for i in range(total):
        s, r = i % n_streams, r0 + i // n_streams
        name = stream_name(s)
        plan.append(
            (
                (name, ts0 + r * interval),
                publish_packet(
                    tpl.replace("{stream}", name), sample(s, r, ts0, interval), qos, i % 65535 + 1
                ),
            )
        )
    period = 1e9 / spec["rate"]
    t0 = time.perf_counter_ns() + 50_000_000
    for i, (key, packet) in enumerate(plan):
        due = t0 + int(i * period)
        while (left := due - time.perf_counter_ns()) > 0:
            if left > 300_000:
                time.sleep((left - 200_000) / 1e9)
        sent_at[key] = time.perf_counter_ns()
        pub.send(packet)
    send_s = (time.perf_counter_ns() - t0) / 1e9
    deadline = time.monotonic() + 3.0
    while len(got) < total and time.monotonic() < deadline:
        time.sleep(0.05)
    while qos and pub.drained < 4 * total and time.monotonic() < deadline + 2.0:
        time.sleep(0.01)
    pub.close()
    sub.close()
    lat = [(got[k] - t) / 1e6 for k, t in sent_at.items() if k in got]
    return {
        "sent": total,
        "matched": len(lat),
        "rate": spec["rate"],
        "achieved_rate": total / send_s if total else 0.0,
        "ms": {
            q: percentile(lat, float(q[1:].replace("_", "."))) if lat else None
            for q in ("p50", "p90", "p99", "p99_9")
        }
        | {"max": max(lat) if lat else None},
    }


if __name__ == "__main__":
    cmd, spec = sys.argv[1], json.loads(sys.argv[2])
    result = {"flood": flood, "count": count, "latency": latency}[cmd](spec)
    print(json.dumps(result), flush=True)
