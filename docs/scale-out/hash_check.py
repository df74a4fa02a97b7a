"""Partition-function properties (pure Python, FNV-1a 32 as in nats-server subject_transform.go),
plus server verification of edge cases on the single node: ids differing only in high bits,
ids containing '.', multi-level topics, uuid ids.
Run: ./venv/bin/python hash_check.py
"""

import asyncio
import collections
import json
import os
import random
import uuid

import nats
from common import HERE, expected_partition, mqtt_pub_client, start_server, stop

res = {}
rnd = random.Random(1)


def bal(ids, n):
    c = collections.Counter(expected_partition(i, n) for i in ids)
    return [c.get(k, 0) for k in range(n)]


seq = [f"dev{i:03d}" for i in range(200)]
uu = [str(uuid.UUID(int=rnd.getrandbits(128))) for _ in range(200)]
macs = ["".join(rnd.choice("0123456789abcdef") for _ in range(12)) for _ in range(200)]
res["balance_200_ids"] = {
    "dev000..dev199 n=4": bal(seq, 4),
    "uuid4 n=4": bal(uu, 4),
    "hex12 n=4": bal(macs, 4),
    "dev000..dev199 n=5": bal(seq, 5),
    "uuid4 n=8": bal(uu, 8),
    "uuid4 n=7": bal(uu, 7),
}
# FNV-1a mod 2^k depends only on the low k bits of every byte:
pairs = [("a", "q"), ("A", "a"), ("roomA", "roomQ"), ("x1", "x5")]
res["high_bit_only_difference_same_partition_n4"] = {
    f"{a}/{b}": (expected_partition(a, 4), expected_partition(b, 4)) for a, b in pairs
}
res["same_pairs_n5"] = {
    f"{a}/{b}": (expected_partition(a, 5), expected_partition(b, 5)) for a, b in pairs
}
# ids whose chars differ only above bit 1 => all land in one partition with n=4
skew = [f"s{c}" for c in "aeimquy"]  # 0x61,0x65,... same low 2 bits
res["skew_example_n4"] = {s: expected_partition(s, 4) for s in skew}


async def server_checks():
    p = start_server(
        os.path.join(HERE, "conf/single.conf"),
        [14222, 11883],
        "hash_check.log",
        clean_dirs=["/tmp/nats-spike/data/single"],
    )
    try:
        nc = await nats.connect("nats://127.0.0.1:14222")
        got = []

        async def h(m):
            got.append(m.subject)

        await nc.subscribe(">", cb=h)
        await nc.flush()
        pub = mqtt_pub_client(11883, "hc-pub")
        ids = [a for pr in pairs for a in pr] + skew + uu[:20] + ["dev.1"]
        for i in ids:
            pub.publish(f"sensors/{i}", b"x", qos=0)
        pub.publish("sensors/a/b", b"x", qos=0)
        pub.publish("/sensors/lead", b"x", qos=0)
        await asyncio.sleep(0.5)
        disc = []
        pub.on_disconnect = lambda c, ud, f, rc, props=None: disc.append(str(rc))
        pub.publish(
            "sensors/dev 1", b"x", qos=0
        )  # space in topic: last, it may kill the connection
        await asyncio.sleep(1)
        res["space_in_topic_publisher_disconnected"] = disc
        subj = [s for s in got if not s.startswith("$")]
        m = {}
        for s in subj:
            t = s.split(".")
            if t[0] == "part":
                m[".".join(t[3:])] = int(t[1])
        res["server_subjects_for_edge_cases"] = [
            s for s in subj if not s.startswith("part") or "//" in s or " " in s
        ]
        res["server_vs_python_mismatch"] = [
            i for i in ids if i in m and m[i] != expected_partition(i)
        ]
        res["server_pairs_n4"] = {f"{a}/{b}": (m.get(a), m.get(b)) for a, b in pairs}
        res["server_skew_n4"] = {s: m.get(s) for s in skew}
        res["total_seen"] = len(subj)
        pub.loop_stop()
        await nc.close()
    finally:
        stop(p)


asyncio.run(server_checks())
print(json.dumps(res, indent=1))
