"""edge/mqtt: MqttLink against a real mosquitto (delivery, status/will, reconnects, auth)."""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import Broker, BrokerError
from mqtt_clients import make_mqtt_link
from seqcast.edge.mqtt import InboundMessage, MqttLink
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = ["3.1.1", "5"]

# -- against a real mosquitto ------------------------------------------------------------------


@pytest.fixture
def make_link() -> Iterator[Callable[..., tuple[MqttLink, queue.Queue[InboundMessage]]]]:
    links: list[MqttLink] = []

    def make(
        broker: Broker, template: str, maxsize: int = 0, **settings: Any
    ) -> tuple[MqttLink, queue.Queue[InboundMessage]]:
        settings.setdefault("client_id", f"test-{uuid.uuid4().hex[:10]}")
        settings.setdefault("reconnect_min_s", 0.1)
        settings.setdefault("reconnect_max_s", 0.5)
        link = make_mqtt_link(
            template, maxsize=maxsize, host=broker.host, port=broker.port, **settings
        )
        links.append(link)
        return link, link.inbox

    yield make
    for link in links:
        link.stop(timeout=1)


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    return eventually(cond, timeout)


def _status(broker: Broker, topic: str) -> dict[str, Any]:
    [(_, payload)] = broker.sub(topic, 1, timeout=3)
    return json.loads(payload)


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_messages_arrive_with_their_stream(
    broker: Broker, unique_topic: str, make_link: Any, protocol: str
) -> None:
    link, inbox = make_link(broker, unique_topic + "/{stream}/data", protocol=protocol)
    link.start()
    assert link.wait_subscribed(5), link.last_error
    assert link.connected
    broker.pub(f"{unique_topic}/meter-7/data", b'{"Demand": 1.5}', qos=1)
    broker.pub(f"{unique_topic}/meter-8/data", bytes(range(256)), qos=0)
    broker.pub(f"{unique_topic}/meter-7/other", b"not subscribed", qos=1)
    broker.pub(f"{unique_topic}//data", b"matches +, but no stream", qos=1)
    got = [inbox.get(timeout=5), inbox.get(timeout=5)]
    assert {(m.stream, m.topic, m.payload) for m in got} == {
        ("meter-7", f"{unique_topic}/meter-7/data", b'{"Demand": 1.5}'),
        ("meter-8", f"{unique_topic}/meter-8/data", bytes(range(256))),
    }
    assert _wait(lambda: link.counters.unknown_topic == 1)
    assert inbox.empty() and link.counters.received == 3


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_status_online_then_offline_after_stop(
    broker: Broker, unique_topic: str, make_link: Any, protocol: str
) -> None:
    status_topic = unique_topic + "/status"
    link, _ = make_link(
        broker, unique_topic + "/{stream}", protocol=protocol, status_topic=status_topic
    )
    link.start()
    assert link.wait_subscribed(5), link.last_error
    assert _wait(lambda: broker.sub(status_topic, 1, timeout=1) != [])
    online = _status(broker, status_topic)
    assert online["state"] == "online" and online["counters"]["mqtt_connects"] == 1
    assert abs(online["ts"] - time.time()) < 30
    link.stop(timeout=3)
    assert not link.connected
    with broker.subscriber(status_topic) as sub:
        [(_, payload)] = sub.collect(1, timeout=3)
        assert sub.retained == [True]
    assert json.loads(payload)["state"] == "offline"


_CHILD = textwrap.dedent(
    """
    import sys, time
    from seqcast.edge.config import MqttConfig, TopicTemplate
    from seqcast.edge.mqtt import MqttLink
    host, port, client_id, status_topic, template, protocol = sys.argv[1:]
    cfg = MqttConfig(host=host, port=int(port), client_id=client_id, protocol=protocol)
    link = MqttLink(cfg, TopicTemplate(template), status_topic=status_topic)
    link.start()
    print("ready" if link.wait_subscribed(10) else "timeout", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_last_will_says_offline_when_the_process_dies(
    broker: Broker, unique_topic: str, protocol: str
) -> None:
    status_topic = unique_topic + "/status"
    args = [broker.host, str(broker.port), f"child-{uuid.uuid4().hex[:8]}", status_topic]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    with broker.subscriber(status_topic) as sub:
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, *args, unique_topic + "/{stream}", protocol],
            stdout=subprocess.PIPE,
            env=env,
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            [(_, online)] = sub.collect(1, timeout=5)
            assert json.loads(online)["state"] == "online"
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            if child.stdout is not None:
                child.stdout.close()
        [(_, will)] = sub.collect(1, timeout=5)
    assert json.loads(will) == {"state": "offline"}
    assert _status(broker, status_topic) == {"state": "offline"}  # and it is retained


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reconnects_and_resubscribes_after_broker_restart(
    fresh_broker: Broker, unique_topic: str, make_link: Any, protocol: str
) -> None:
    link, inbox = make_link(fresh_broker, unique_topic + "/{stream}", protocol=protocol)
    link.start()
    assert link.wait_subscribed(5), link.last_error
    fresh_broker.pub(f"{unique_topic}/before", b"1", qos=1)
    assert inbox.get(timeout=5).stream == "before"
    fresh_broker.restart(hard=True)  # no persistence: the broker forgets the subscription
    assert _wait(lambda: link.counters.disconnects == 1)
    assert link.wait_subscribed(10), link.last_error
    fresh_broker.pub(f"{unique_topic}/after", b"2", qos=1)
    assert inbox.get(timeout=5).stream == "after"
    assert link.connected and link.counters.connects == 2


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_stop_input_leaves_qos1_messages_to_the_next_session(
    broker: Broker, unique_topic: str, make_link: Any, protocol: str
) -> None:
    client_id, status_topic = f"persistent-{uuid.uuid4().hex[:8]}", unique_topic + "/status"
    opts = {"protocol": protocol, "client_id": client_id, "status_topic": status_topic}
    first, inbox = make_link(broker, unique_topic + "/{stream}/d", **opts)
    first.start()
    assert first.wait_subscribed(5), first.last_error
    broker.pub(f"{unique_topic}/a/d", b"taken", qos=1)
    taken = inbox.get(timeout=5)
    assert taken.payload == b"taken" and taken.qos == 1
    first.publish_batch([], [taken], qos=1, retain=False)  # processed: acknowledged
    first.stop_input()
    broker.pub(f"{unique_topic}/b/d", b"later 1", qos=1)
    broker.pub(f"{unique_topic}/c/d", b"later 2", qos=1)
    assert _wait(lambda: first.counters.dropped_stopping == 2)
    assert inbox.empty()
    first.publish_status("offline", {"daemon_counter": 7})  # as the daemon does before stop()
    first.stop(timeout=3)
    assert _status(broker, status_topic)["counters"] == {"daemon_counter": 7}
    second, inbox2 = make_link(broker, unique_topic + "/{stream}/d", **opts)
    second.start()
    got = sorted(inbox2.get(timeout=5).payload for _ in range(2))
    assert got == [b"later 1", b"later 2"]


@pytest.mark.broker
def test_full_inbox_drops_and_counts_qos0_only(
    broker: Broker, unique_topic: str, make_link: Any
) -> None:
    """QoS 0 beyond the inbox bound is dropped and counted; QoS 1 is never dropped there (the
    broker's in-flight window bounds it, and it is acknowledged only once processed)."""
    link, inbox = make_link(broker, unique_topic + "/{stream}", maxsize=2)
    link.start()
    assert link.wait_subscribed(5), link.last_error
    for i in range(5):
        broker.pub(f"{unique_topic}/s{i}", str(i), qos=0)
    assert _wait(lambda: link.counters.received == 5)
    assert link.counters.dropped_queue_full == 3
    assert [inbox.get_nowait().stream for _ in range(2)] == ["s0", "s1"]
    for i in range(5):
        broker.pub(f"{unique_topic}/q{i}", str(i), qos=1)
    assert _wait(lambda: link.counters.received == 10)
    assert link.counters.dropped_queue_full == 3 and link.counters.acked == 0
    assert [inbox.get_nowait().stream for _ in range(5)] == [f"q{i}" for i in range(5)]


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_credentials_are_not_connected(
    make_broker: Callable[..., Broker],
    unique_topic: str,
    make_link: Any,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="seqcast.edge.mqtt")
    secured = make_broker(allow_anonymous=False, users={"sensor": "right-pw"})
    template = unique_topic + "/{stream}"
    bad, _ = make_link(secured, template, protocol=protocol, username="sensor", password="wrong-pw")
    bad.start()
    assert _wait(lambda: bad.counters.connect_failures >= 1)
    assert not bad.connected and not bad.wait_subscribed(0.3)
    assert bad.last_error is not None and bad.last_error.startswith("connection refused: ")
    assert "refused the connection" in caplog.text and "wrong-pw" not in caplog.text
    good, inbox = make_link(
        secured, template, protocol=protocol, username="sensor", password="right-pw"
    )
    good.start()
    assert good.wait_subscribed(5), good.last_error
    secured.pub(f"{unique_topic}/x", b"ok", qos=1, username="sensor", password="right-pw")
    assert inbox.get(timeout=5).payload == b"ok"


@pytest.mark.broker
def test_broker_helper_reports_startup_failure() -> None:
    b = Broker(["this_is_not_an_option 1"])
    try:
        with pytest.raises(BrokerError, match="(?s)exited.*this_is_not_an_option"):
            b.start()
    finally:
        b.close()
