"""Q3: 3-node cluster, publish QoS1 via node A, subscribe partition 2 via node B (MQTT, persistent
session, QoS1), SIGKILL the third node mid-stream; count loss / dups / reorder.
Run: ./venv/bin/python cluster_fail.py nonleader|leader
  nonleader: kill a node that is NOT the $MQTT_msgs stream leader
  leader:    kill the node that IS the $MQTT_msgs stream leader (clients on the two others)
"""

import asyncio
import collections
import json
import os
import signal
import sys
import time

import nats
from common import (
    CL,
    MqttSub,
    expected_partition,
    http_json,
    mqtt_pub_client,
    restart_node,
    start_cluster,
    stop,
    wait_js_healthy,
)

SCEN = sys.argv[1] if len(sys.argv) > 1 else "nonleader"
NID, ROUNDS, RATE = 200, 40, 1000  # 8000 msgs at ~1000/s
KILL_AT = 3.0


async def leader_of(nc, stream):
    js = nc.jetstream()
    si = await js.stream_info(stream)
    return si.cluster.leader if si.cluster else None, si.config.num_replicas


async def main():
    res = {"scenario": SCEN}
    procs = start_cluster()
    try:
        warm = mqtt_pub_client(CL["n1"][1], "warmup")  # creates the $MQTT_* streams
        time.sleep(1.0)
        nc = await nats.connect(f"nats://127.0.0.1:{CL['n1'][0]}")
        lead, reps = await leader_of(nc, "$MQTT_msgs")
        res["MQTT_msgs_leader_before"], res["MQTT_msgs_replicas"] = lead, reps
        res["MQTT_sess_leader_before"] = (await leader_of(nc, "$MQTT_sess"))[0]
        res["meta_leader_before"] = (
            http_json(CL["n1"][2], "/jsz").get("meta_cluster", {}).get("leader")
        )
        await nc.close()
        warm.disconnect()
        warm.loop_stop()
        C = None
        if SCEN == "leader":
            kill = lead
            A, B = [n for n in CL if n != kill]
        elif SCEN == "subnode":  # kill the node the worker is connected to; worker reconnects to C
            A = lead  # publisher on the stream leader's node (leader survives)
            B, C = [n for n in CL if n != A]
            kill = B
        else:
            kill = [n for n in CL if n != lead][-1]
            A, B = [n for n in CL if n != kill]
        res.update(kill=kill, pub_node=A, sub_node=B, sub_reconnect_node=C)
        # subscriber on B: MQTT QoS1 persistent + NATS core observer
        sub = MqttSub(CL[B][1], "worker-p2", ["part/2/sensors/+"], qos=1, clean_session=False)
        sub.subscribed.wait(10)
        res["suback"] = sub.granted
        arrivals = []
        sub.extra_on_msg = lambda: arrivals.append(time.monotonic())
        ncB = await nats.connect(
            f"nats://127.0.0.1:{CL[A][0]}"
        )  # core observer on the publisher's node
        core = []

        async def hc(m):
            core.append(m.data)

        await ncB.subscribe("part.2.>", cb=hc)
        await ncB.flush()
        time.sleep(0.5)
        pub = mqtt_pub_client(CL[A][1], "pub-A")
        disc = []
        pub.on_disconnect = lambda c, ud, f, rc, props=None: disc.append(str(rc))
        infos, sent_p2 = [], 0
        t0 = time.monotonic()
        killed_at = None
        n = 0
        for r in range(ROUNDS):
            for i in range(NID):
                sid = f"dev{i:03d}"
                infos.append(pub.publish(f"sensors/{sid}", f"{sid}:{r}".encode(), qos=1))
                sent_p2 += expected_partition(sid) == 2
                n += 1
                target = t0 + n / RATE
                now = time.monotonic()
                if target > now:
                    time.sleep(target - now)
                if killed_at is None and now - t0 >= KILL_AT:
                    procs[kill].send_signal(signal.SIGKILL)
                    killed_at = now - t0
                    if C:
                        sub.c.loop_stop()  # old connection is dead; stop its auto-reconnect to B
                        sub = MqttSub(
                            CL[C][1],
                            "worker-p2",
                            [],
                            qos=1,
                            clean_session=False,
                            msgs=sub.msgs,
                            on_msg=lambda: arrivals.append(time.monotonic()),
                            connect_timeout=40,
                        )
                        res["session_present_on_C"] = sub.session_present
                        res["worker_reconnect_to_C_s"] = round(sub.connect_secs, 2)
                await asyncio.sleep(0) if n % 500 == 0 else None
        pub_end = time.monotonic() - t0
        acked = 0
        deadline = time.monotonic() + 20
        for inf in infos:
            try:
                inf.wait_for_publish(max(0.01, deadline - time.monotonic()))
                acked += inf.is_published()
            except Exception:
                pass
        res.update(
            published=len(infos),
            puback_received=acked,
            publish_secs=round(pub_end, 2),
            killed_at_s=round(killed_at, 2),
            pub_disconnects=disc,
        )
        # wait for stragglers until stable
        last, stable = -1, 0
        t_wait = time.monotonic()
        stable_ticks = int(float(os.environ.get("STABLE_S", "6")) / 0.2)
        while stable < stable_ticks:
            await asyncio.sleep(0.2)
            stable = stable + 1 if len(sub.msgs) == last else 0
            last = len(sub.msgs)
        res["waited_for_stragglers_s"] = round(time.monotonic() - t_wait, 1)
        got = [m[1].decode() for m in sub.msgs]
        cnt = collections.Counter(got)
        expected = {
            f"dev{i:03d}:{r}"
            for r in range(ROUNDS)
            for i in range(NID)
            if expected_partition(f"dev{i:03d}") == 2
        }
        last_seq, viol = {}, 0
        for g in got:
            s, q = g.rsplit(":", 1)
            q = int(q)
            if s in last_seq and q < last_seq[s]:
                viol += 1
            last_seq[s] = max(q, last_seq.get(s, -1))
        gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
        res["arrivals_after_publish_end_plus_10s"] = sum(
            1 for a in arrivals if a - t0 > pub_end + 10
        )
        res["mqtt_sub"] = dict(
            expected=len(expected),
            received=len(got),
            unique=len(cnt),
            duplicates=sum(v - 1 for v in cnt.values()),
            missing=len(expected - set(cnt)),
            order_violations=viol,
            max_gap_s=round(max(gaps), 3) if gaps else None,
        )
        core_set = collections.Counter(d.decode() for d in core)
        res["nats_core_sub"] = dict(
            received=len(core), unique=len(core_set), missing=len(expected - set(core_set))
        )
        res["sub_disconnects"] = None
        # after: stream leaders / health of survivors
        ncA = await nats.connect(f"nats://127.0.0.1:{CL[A][0]}")
        try:
            res["MQTT_msgs_leader_after"] = (await leader_of(ncA, "$MQTT_msgs"))[0]
        except Exception as e:
            res["MQTT_msgs_leader_after"] = repr(e)
        # restart the killed node, check it rejoins and the worker keeps working
        restart_node(procs, kill)
        t1 = time.time()
        try:
            wait_js_healthy(list(CL), timeout=30)
            res["killed_node_rejoin_healthy_s"] = round(time.time() - t1, 2)
        except TimeoutError:
            res["killed_node_rejoin_healthy_s"] = "not healthy in 30s"
        before = len(sub.msgs)
        for i in range(NID):
            pub.publish(f"sensors/dev{i:03d}", f"dev{i:03d}:999".encode(), qos=1).wait_for_publish(
                5
            )
        await asyncio.sleep(2)
        res["after_rejoin_p2_received"] = len(sub.msgs) - before
        sub.close()
        pub.disconnect()
        pub.loop_stop()
        await ncA.close()
        await ncB.close()
    finally:
        for p in procs.values():
            stop(p)
    print(json.dumps(res, indent=1, default=str))


asyncio.run(main())
