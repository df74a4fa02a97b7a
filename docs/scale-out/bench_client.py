"""One benchmark client process (publisher or subscriber). CLOCK_MONOTONIC timestamps in payloads.
sub:  bench_client.py sub  PORT TOPIC QOS N IDLE_S [mqtt|natspy]
pub:  bench_client.py pub  PORT QOS N RATE(0=flood) [NIDS]
"""

import json
import os
import sys
import threading
import time

import paho.mqtt.client as mqtt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


class Quiet:
    """Called every 0.1 s: True once the count stopped moving for `idle` s (60 s before the
    first message)."""

    def __init__(self, cnt, idle):
        self.cnt, self.idle = cnt, idle
        self.prev, self.since = -1, time.monotonic()

    def __call__(self):
        if self.cnt[0] != self.prev:
            self.prev, self.since = self.cnt[0], time.monotonic()
            return False
        return time.monotonic() - self.since > (self.idle if self.cnt[0] > 0 else 60)


def sub(port, topic, qos, n, idle, kind="mqtt"):
    lat, cnt, first, last = [], [0], [None], [None]
    done = threading.Event()

    def record(payload):
        now = time.monotonic_ns()
        ts = int(payload.split(b"|", 2)[1])
        lat.append((now - ts) / 1e6)
        if first[0] is None:
            first[0] = now
        last[0] = now
        cnt[0] += 1
        if cnt[0] >= n:
            done.set()

    if kind == "natspy":
        import asyncio

        import nats

        async def run():
            nc = await nats.connect(f"nats://127.0.0.1:{port}", pending_size=512 * 1024 * 1024)

            async def cb(m):
                record(m.data)

            await nc.subscribe(
                topic, cb=cb, pending_msgs_limit=1_000_000, pending_bytes_limit=512 * 1024 * 1024
            )
            await nc.flush()
            print("READY", flush=True)
            quiet = Quiet(cnt, idle)
            while not done.is_set() and not quiet():
                await asyncio.sleep(0.1)
            await nc.close()

        asyncio.run(run())
    else:
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bsub{os.getpid()}", protocol=mqtt.MQTTv311
        )
        c.max_inflight_messages_set(1000)
        ready = threading.Event()
        c.on_connect = lambda cl, ud, f, rc, p=None: cl.subscribe(topic, qos)
        c.on_subscribe = lambda *a: ready.set()
        c.on_message = lambda cl, ud, m: record(m.payload)
        c.connect("127.0.0.1", port, 60)
        c.loop_start()
        ready.wait(10)
        print("READY", flush=True)
        quiet = Quiet(cnt, idle)
        while not done.is_set() and not quiet():
            time.sleep(0.1)
        c.disconnect()
        c.loop_stop()
    out = dict(
        received=cnt[0],
        first_ns=first[0],
        last_ns=last[0],
        p50_ms=pct(lat, 50),
        p99_ms=pct(lat, 99),
        max_ms=max(lat) if lat else None,
    )
    print(json.dumps(out), flush=True)


def pub(port, qos, n, rate, nids=200):
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bpub{os.getpid()}", protocol=mqtt.MQTTv311
    )
    c.max_inflight_messages_set(1000)
    ev = threading.Event()
    c.on_connect = lambda *a: ev.set()
    c.connect("127.0.0.1", port, 60)
    c.loop_start()
    ev.wait(10)
    topics = [f"sensors/dev{i:03d}" for i in range(nids)]
    pad = b"x" * 32
    t0 = time.monotonic()
    t0ns = time.monotonic_ns()
    infos = []
    for k in range(n):
        if rate:
            target = t0 + k / rate
            d = target - time.monotonic()
            if d > 0:
                time.sleep(d)
        payload = b"%d|%d|" % (k, time.monotonic_ns()) + pad
        inf = c.publish(topics[k % nids], payload, qos=qos)
        if qos:
            infos.append(inf)
        elif not rate and k % 5000 == 4999:
            pass
    for inf in infos:
        inf.wait_for_publish(30)
    t1ns = time.monotonic_ns()
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    print(
        json.dumps(
            dict(sent=n, start_ns=t0ns, end_ns=t1ns, acked=sum(i.is_published() for i in infos))
        ),
        flush=True,
    )


if __name__ == "__main__":
    a = sys.argv
    if a[1] == "sub":
        sub(int(a[2]), a[3], int(a[4]), int(a[5]), float(a[6]), a[7] if len(a) > 7 else "mqtt")
    else:
        pub(int(a[2]), int(a[3]), int(a[4]), float(a[5]), int(a[6]) if len(a) > 6 else 200)
