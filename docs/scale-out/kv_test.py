"""Q4: JetStream KV on the 3-node cluster: put/get a ~50 KB state blob, put latency (R3 vs R1),
then SIGKILL the KV stream leader and check the blob survives and puts resume.
Run: ./venv/bin/python kv_test.py [N_PUTS]
"""

import asyncio
import hashlib
import json
import os
import signal
import sys
import time

import nats
from common import CL, start_cluster, stop

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def put_lat(kv, key, blob, n):
    lat = []
    for _ in range(n):
        t = time.perf_counter()
        await kv.put(key, blob)
        lat.append((time.perf_counter() - t) * 1000)
    return dict(
        n=n, p50_ms=round(pct(lat, 50), 2), p99_ms=round(pct(lat, 99), 2), max_ms=round(max(lat), 2)
    )


async def main():
    res = {}
    procs = start_cluster()
    try:
        servers = [f"nats://127.0.0.1:{CL[n][0]}" for n in CL]
        nc = await nats.connect(
            servers=servers, dont_randomize=True, reconnect_time_wait=0.2, max_reconnect_attempts=-1
        )
        js = nc.jetstream(timeout=10)
        blob = os.urandom(50 * 1024)
        digest = hashlib.sha256(blob).hexdigest()
        kv3 = await js.create_key_value(bucket="state3", replicas=3, history=1)
        kv1 = await js.create_key_value(bucket="state1", replicas=1, history=1)
        await kv3.put("stream.dev042", blob)
        e = await kv3.get("stream.dev042")
        res["get_roundtrip_ok"] = hashlib.sha256(e.value).hexdigest() == digest
        res["value_bytes"] = len(e.value)
        res["put_R3"] = await put_lat(kv3, "stream.dev042", blob, N)
        res["put_R1"] = await put_lat(kv1, "stream.dev042", blob, N)
        t = []
        for _ in range(N):
            t0 = time.perf_counter()
            await kv3.get("stream.dev042")
            t.append((time.perf_counter() - t0) * 1000)
        res["get_R3"] = dict(p50_ms=round(pct(t, 50), 2), p99_ms=round(pct(t, 99), 2))
        # many keys (one per stream) -> check
        for i in range(200):
            await kv3.put(f"stream.dev{i:03d}", blob[:-1] + bytes([i]))
        si = await js.stream_info("KV_state3")
        leader = si.cluster.leader
        res["kv_stream_leader"] = leader
        res["R1_bucket_leader_before"] = (await js.stream_info("KV_state1")).cluster.leader
        res["client_connected_to"] = nc.connected_url.port
        kv3fast = await nc.jetstream(timeout=1).key_value("state3")
        # kill the leader of the KV stream
        procs[leader].send_signal(signal.SIGKILL)
        tk = time.perf_counter()
        first_ok, errors = None, []
        while time.perf_counter() - tk < 30:
            try:
                await kv3fast.put("stream.dev042", blob)
                first_ok = time.perf_counter() - tk
                break
            except Exception as ex:
                errors.append(type(ex).__name__)
                await asyncio.sleep(0.2)
        res["after_kill"] = {
            "killed": leader,
            "first_successful_put_s": round(first_ok, 2) if first_ok else None,
            "errors_before": dict((k, errors.count(k)) for k in set(errors)),
            "client_now_on_port": nc.connected_url.port,
        }
        e = await kv3.get("stream.dev042")
        ok = hashlib.sha256(e.value).hexdigest() == digest
        allok = True
        for i in range(200):
            if i != 42 and (await kv3.get(f"stream.dev{i:03d}")).value[-1] != i:
                allok = False
        si = await js.stream_info("KV_state3")
        res["after_kill"].update(
            blob_intact=ok,
            all_200_keys_intact=allok,
            new_leader=si.cluster.leader,
            put_R3_2nodes=await put_lat(kv3, "stream.dev042", blob, min(N, 100)),
        )
        # R1 bucket: was its only replica on the killed node?
        try:
            si1 = await asyncio.wait_for(js.stream_info("KV_state1"), 5)
            res["R1_bucket_leader"] = si1.cluster.leader if si1.cluster else None
        except Exception as ex:
            res["R1_bucket_leader"] = "stream_info failed: " + type(ex).__name__
        try:
            await asyncio.wait_for(kv1.get("stream.dev042"), 5)
            res["R1_get_after_kill"] = "ok"
        except Exception as ex:
            res["R1_get_after_kill"] = type(ex).__name__
        await nc.close()
    finally:
        for p in procs.values():
            stop(p)
    print(json.dumps(res, indent=1, default=str))


asyncio.run(main())
