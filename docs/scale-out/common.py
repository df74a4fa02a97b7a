"""Shared helpers for the NATS MQTT partitioning spike."""

import json as _json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
NATS_BIN = os.environ.get("NATS_BIN", os.path.join(HERE, "venv/bin/nats-server"))


def fnv1a32(b: bytes) -> int:
    h = 0x811C9DC5
    for c in b:
        h ^= c
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def expected_partition(stream_id: str, n: int = 4) -> int:
    # nats-server subject_transform.go getHashPartition: fnv32a(concat(tokens)) % n
    return fnv1a32(stream_id.encode()) % n


def wait_port(port, host="127.0.0.1", timeout=15):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"port {port} not up")


def start_server(conf, ports, logname, bin_=None, clean_dirs=()):
    for d in clean_dirs:
        shutil.rmtree(d, ignore_errors=True)
    with open(os.path.join(HERE, "logs", logname), "w") as log:  # the child keeps its copy
        p = subprocess.Popen([bin_ or NATS_BIN, "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    for port in ports:
        wait_port(port)
    return p


def stop(p, sig=signal.SIGTERM):
    if p and p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


os.makedirs(os.path.join(HERE, "logs"), exist_ok=True)


class MqttSub:
    """paho MQTT 3.1.1 subscriber collecting (topic, payload, qos, retain)."""

    def __init__(
        self,
        port,
        client_id,
        topics,
        qos=1,
        clean_session=True,
        host="127.0.0.1",
        msgs=None,
        on_msg=None,
        connect_timeout=10,
    ):
        self.msgs = msgs if msgs is not None else []
        self.extra_on_msg = on_msg
        self.lock = threading.Lock()
        self.granted = None
        self.subscribed = threading.Event()
        self.connected = threading.Event()
        self.c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=clean_session,
        )
        self.topics, self.qos = topics, qos
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.session_present = None
        self.c.connect(host, port, keepalive=30)
        self.c.loop_start()
        t0 = time.monotonic()
        if not self.connected.wait(connect_timeout):
            raise TimeoutError("mqtt connect")
        self.connect_secs = time.monotonic() - t0

    def _on_connect(self, c, ud, flags, rc, props=None):
        self.session_present = flags.session_present
        self.connected.set()
        if self.topics:
            c.subscribe([(t, self.qos) for t in self.topics])

    def _on_subscribe(self, c, ud, mid, rcs, props=None):
        self.granted = [int(r.value) if hasattr(r, "value") else int(r) for r in rcs]
        self.subscribed.set()

    def _on_message(self, c, ud, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload, m.qos, m.retain))
        if self.extra_on_msg:
            self.extra_on_msg()

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def mqtt_pub_client(port, client_id, host="127.0.0.1"):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    ev = threading.Event()
    c.on_connect = lambda *a, **k: ev.set()
    c.connect(host, port, keepalive=30)
    c.loop_start()
    if not ev.wait(10):
        raise TimeoutError("mqtt pub connect")
    return c


def wait_count(getter, n, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if getter() >= n:
            return True
        time.sleep(0.05)
    return False


CL = {  # node -> (client port, mqtt port, http port)
    "n1": (14231, 11891, 18231),
    "n2": (14232, 11892, 18232),
    "n3": (14233, 11893, 18233),
}


def http_json(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
        return _json.loads(r.read())


def wait_js_healthy(nodes, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        ok = 0
        for n in nodes:
            try:
                h = http_json(CL[n][2], "/healthz")
                ok += h.get("status") == "ok"
            except Exception:
                pass
        if ok == len(nodes):
            return time.time() - t0
        time.sleep(0.2)
    raise TimeoutError("cluster not healthy")


def start_cluster(nodes=("n1", "n2", "n3"), clean=True):
    procs = {}
    for n in nodes:
        if clean:
            shutil.rmtree(f"/tmp/nats-spike/data/{n}", ignore_errors=True)
        procs[n] = spawn_node(n)
    for n in nodes:
        wait_port(CL[n][0])
        wait_port(CL[n][1])
    wait_js_healthy(nodes)
    return procs


def spawn_node(n):
    with open(os.path.join(HERE, "logs", f"{n}.log"), "a") as log:  # the child keeps its copy
        return subprocess.Popen(
            [NATS_BIN, "-c", os.path.join(HERE, f"conf/{n}.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def restart_node(procs, n):
    procs[n] = spawn_node(n)
    wait_port(CL[n][0])
    return procs[n]
