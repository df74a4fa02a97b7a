"""The floor: a minimal paho relay that decodes each JSON payload and republishes a small JSON.

    python -m bench.relay --port P [--qos 0] [--client-id ID]

Subscribes to `sensors/+/data`; for each message, `json.loads` the payload and publish
`{"stream": ..., "ts": ...}` to `forecasts/<stream>`. Prints `ready` once subscribed. Everything
runs in paho's network loop, which is as little as any paho-based daemon can do per message.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--qos", type=int, default=0)
    p.add_argument("--client-id", default="bench-relay")
    p.add_argument("--input", default="sensors/+/data")
    p.add_argument("--output", default="forecasts/")
    args = p.parse_args()
    qos, out = args.qos, args.output
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=args.client_id, protocol=paho.MQTTv311)

    def on_connect(client, userdata, flags, rc, props):  # noqa: ANN001
        client.subscribe(args.input, qos=qos)

    def on_subscribe(client, userdata, mid, rcs, props):  # noqa: ANN001
        print("ready", flush=True)

    def on_message(client, userdata, msg):  # noqa: ANN001
        doc = json.loads(msg.payload)
        stream = msg.topic.split("/")[1]
        client.publish(out + stream, json.dumps({"stream": stream, "ts": doc["ts"]}), qos=qos)

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    signal.signal(signal.SIGTERM, lambda *_: c.disconnect())
    c.connect(args.host, args.port, keepalive=60)
    c.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
