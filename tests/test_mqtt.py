"""edge/mqtt.py: topic templates, the link with a fake paho client and with real mosquitto."""

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
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
import pytest
from broker import Broker, BrokerError
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from edge.mqtt import InboundMessage, MqttLink, MqttSettings, TopicTemplate

REPO = Path(__file__).resolve().parents[1]
PROTOCOLS = ["3.1.1", "5"]

# -- TopicTemplate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "subscription"),
    [
        ("sensors/{stream}/data", "sensors/+/data"),
        ("{stream}", "+"),
        ("{stream}/x", "+/x"),
        ("a/b/c/{stream}", "a/b/c/+"),
        ("plant 1/{stream}/ünïcode", "plant 1/+/ünïcode"),
    ],
)
def test_template_subscription(template: str, subscription: str) -> None:
    assert TopicTemplate(template).subscription() == subscription


@pytest.mark.parametrize(
    ("template", "match"),
    [
        ("", "non-empty"),
        ("sensors/data", "exactly one"),
        ("{stream}/{stream}", "exactly one"),
        ("sensors/+/data", "wildcard"),
        ("sensors/{stream}/#", "wildcard"),
        ("sensors/x{stream}/data", "whole level"),
        ("sensors/{stream}/{other}", "whole level"),
        ("sensors/{stream", "whole level"),
        ("/sensors/{stream}", "empty"),
        ("sensors/{stream}/", "empty"),
        ("sensors//{stream}", "empty"),
        ("$SYS/{stream}", r"\$"),
        ("a\x00/{stream}", "NUL"),
    ],
)
def test_template_rejects(template: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TopicTemplate(template)


def test_template_rejects_non_string() -> None:
    with pytest.raises(ValueError, match="non-empty string"):
        TopicTemplate(None)  # type: ignore[arg-type]


def test_stream_of_and_topic_for() -> None:
    t = TopicTemplate("sensors/{stream}/data")
    assert t.stream_of("sensors/meter-7/data") == "meter-7"
    assert t.topic_for("meter-7") == "sensors/meter-7/data"
    for other in [
        "sensors/meter-7",
        "sensors/meter-7/data/x",
        "other/meter-7/data",
        "sensors//data",
    ]:
        assert t.stream_of(other) is None, other
    assert TopicTemplate("{stream}/x").stream_of("$SYS/x") is None
    for bad in ["", "a/b", "a+", "#", "x\x00"]:
        with pytest.raises(ValueError, match="stream name"):
            t.topic_for(bad)
    with pytest.raises(ValueError, match=r"\$"):
        TopicTemplate("{stream}/x").topic_for("$SYS")
    assert TopicTemplate("a/{stream}").topic_for("$ok") == "a/$ok"


def test_template_is_a_frozen_value() -> None:
    a, b = TopicTemplate("s/{stream}"), TopicTemplate("s/{stream}")
    assert a == b and hash(a) == hash(b) and str(a) == "s/{stream}"
    with pytest.raises(AttributeError):
        a.template = "x/{stream}"  # type: ignore[misc]


_stream_names = st.text(st.characters(codec="utf-8", exclude_characters="/+#\x00"), min_size=1)
_levels = st.sampled_from(["sensors", "data", "a", "b c", "ü", "x-1"])
_templates = st.builds(
    lambda before, after: "/".join([*before, "{stream}", *after]),
    st.lists(_levels, max_size=3),
    st.lists(_levels, max_size=3),
)


@given(_templates, _stream_names)
def test_topic_for_then_stream_of_round_trips(template: str, stream: str) -> None:
    t = TopicTemplate(template)
    if template.startswith("{stream}") and stream.startswith("$"):
        return  # a first-level '$' name would be a system topic; rejected by topic_for
    topic = t.topic_for(stream)
    assert t.stream_of(topic) == stream
    assert paho.topic_matches_sub(t.subscription(), topic)


_pieces = st.sampled_from(["a", "/", "+", "#", "{", "}", "{stream}", "stream", "$", " ", ""])


@given(st.lists(_pieces, max_size=12).map("".join))
@hsettings(max_examples=300)
def test_no_template_yields_a_bad_subscription(text: str) -> None:
    try:
        sub = TopicTemplate(text).subscription()
    except ValueError:
        return
    assert "#" not in sub
    assert sub.count("+") == 1
    assert "+" in sub.split("/")


# -- MqttSettings ------------------------------------------------------------------------------


def test_settings_hide_password_and_check_values() -> None:
    s = MqttSettings(username="u", password="hunter2")
    assert "hunter2" not in repr(s)
    with pytest.raises(ValueError, match="mqtt.protocol"):
        MqttSettings(protocol="3")
    with pytest.raises(ValueError, match="mqtt.qos_in"):
        MqttSettings(qos_in=3)
    with pytest.raises(ValueError, match="mqtt.status_topic"):
        MqttSettings(status_topic="seqcast/+/status")
    with pytest.raises(ValueError, match="mqtt.reconnect_max_s"):
        MqttSettings(reconnect_min_s=5, reconnect_max_s=1)


# -- MqttLink with a fake paho client ----------------------------------------------------------


class FakeClient:
    """Records what the link asks of paho; callbacks are driven by the test."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.published: list[tuple[str, Any, int, bool]] = []
        self.publish_rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self.on_connect: Any = None
        self.on_connect_fail: Any = None
        self.on_disconnect: Any = None
        self.on_subscribe: Any = None
        self.on_message: Any = None
        self.on_log: Any = None
        self.suppress_exceptions = False

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return record

    def called(self, name: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(a, k) for n, a, k in self.calls if n == name]

    def subscribe(self, topic: str, qos: int = 0) -> tuple[MQTTErrorCode, int]:
        self.calls.append(("subscribe", (topic,), {"qos": qos}))
        return MQTTErrorCode.MQTT_ERR_SUCCESS, 42

    def publish(self, topic: str, payload: Any, qos: int = 0, retain: bool = False) -> Any:
        self.published.append((topic, payload, qos, retain))
        return SimpleNamespace(rc=self.publish_rc)


def _connack(name: str) -> ReasonCode:
    return ReasonCode(PacketTypes.CONNACK, name)


def _fake_link(
    maxsize: int = 0, **settings: Any
) -> tuple[MqttLink, FakeClient, queue.Queue[InboundMessage]]:
    made: list[FakeClient] = []

    def factory(**kwargs: Any) -> FakeClient:
        made.append(FakeClient(**kwargs))
        return made[0]

    inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize)
    link = MqttLink(MqttSettings(**settings), TopicTemplate("s/{stream}/d"), inbox, factory)  # type: ignore[arg-type]
    return link, made[0], inbox


def test_fake_client_is_configured_before_connecting() -> None:
    link, fake, _ = _fake_link(
        username="u", password="p", tls_enabled=True, tls_ca_file="ca.pem", tls_insecure=True
    )
    assert fake.kwargs["callback_api_version"] == paho.CallbackAPIVersion.VERSION2
    assert fake.kwargs["clean_session"] is False and fake.kwargs["protocol"] == paho.MQTTv311
    ((args, kwargs),) = fake.called("will_set")
    assert args[0] == "seqcast/seqcast-edge/status" and json.loads(args[1]) == {"state": "offline"}
    assert kwargs == {"qos": 1, "retain": True}
    assert fake.called("username_pw_set") == [(("u", "p"), {})]
    assert fake.called("tls_set")[0][1]["ca_certs"] == "ca.pem"
    assert fake.called("tls_insecure_set") == [((True,), {})]
    assert not fake.called("connect_async")
    link.start()
    ((args, kwargs),) = fake.called("connect_async")
    assert args == ("localhost", 1883) and "properties" not in kwargs
    assert fake.called("loop_start")


def test_fake_mqtt5_asks_for_a_persistent_session() -> None:
    link, fake, _ = _fake_link(protocol="5", session_expiry_s=123)
    assert "clean_session" not in fake.kwargs and fake.kwargs["protocol"] == paho.MQTTv5
    link.start()
    ((_, kwargs),) = fake.called("connect_async")
    assert kwargs["clean_start"] is False
    assert kwargs["properties"].SessionExpiryInterval == 123


def test_fake_refused_connection_is_not_connected(caplog: pytest.LogCaptureFixture) -> None:
    link, fake, _ = _fake_link(username="u", password="s3cret")
    fake.on_connect(fake, None, None, _connack("Not authorized"), None)
    assert not link.connected and not link.subscribed
    assert not fake.called("subscribe")
    assert link.last_error == "connection refused: Not authorized"
    assert link.counters.connect_failures == 1 and link.counters.connects == 0
    assert "Not authorized" in caplog.text and "s3cret" not in caplog.text
    fake.on_connect(fake, None, None, _connack("Not authorized"), None)  # rate-limited
    assert caplog.text.count("refused") == 1


def test_fake_connect_subscribes_then_publishes_online() -> None:
    link, fake, _ = _fake_link(qos_in=2)
    fake.on_connect(fake, None, SimpleNamespace(session_present=False), _connack("Success"), None)
    assert link.connected and not link.subscribed and link.last_error is None
    assert fake.called("subscribe") == [(("s/+/d",), {"qos": 2})]
    fake.on_subscribe(fake, None, 42, [ReasonCode(PacketTypes.SUBACK, "Granted QoS 2")], None)
    assert link.subscribed and link.wait_subscribed(0)
    topic, payload, qos, retain = fake.published[-1]
    assert (topic, qos, retain) == ("seqcast/seqcast-edge/status", 1, True)
    assert json.loads(payload)["state"] == "online"
    fake.on_disconnect(
        fake, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None
    )
    assert not link.connected and not link.subscribed and link.counters.disconnects == 1


def test_fake_messages_unknown_topics_full_inbox_and_garbage() -> None:
    link, fake, inbox = _fake_link(maxsize=1)

    def deliver(topic: bytes, payload: bytes) -> None:
        msg = paho.MQTTMessage(topic=topic)
        msg.payload = payload
        fake.on_message(fake, None, msg)

    deliver(b"s/m1/d", b"\x00\xff")
    deliver(b"s/m2/d", b"dropped")
    deliver(b"s//d", b"empty stream level")
    deliver(b"s/\xff/d", b"not utf-8")
    fake.on_message(fake, None, object())  # must not raise
    got = inbox.get_nowait()
    assert (got.stream, got.topic, got.payload) == ("m1", "s/m1/d", b"\x00\xff")
    assert abs(got.received_at - time.time()) < 5
    c = link.counters.as_dict()
    assert (c["received"], c["dropped_queue_full"], c["unknown_topic"]) == (5, 1, 2)
    assert c["callback_errors"] == 1


def test_fake_publish_reports_what_was_not_queued() -> None:
    link, fake, _ = _fake_link()
    assert link.publish("f/a", b"x", qos=1)
    fake.publish_rc = MQTTErrorCode.MQTT_ERR_NO_CONN
    assert link.publish("f/a", b"x", qos=1)  # paho keeps QoS>0 for after the reconnect
    assert not link.publish("f/a", b"x", qos=0)
    fake.publish_rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
    assert not link.publish("f/a", b"x", qos=1)
    assert (link.counters.published, link.counters.publish_failed) == (2, 2)
    with pytest.raises(ValueError, match="state"):
        link.publish_status("sleepy")


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
        s = MqttSettings(host=broker.host, port=broker.port, **settings)
        inbox: queue.Queue[InboundMessage] = queue.Queue(maxsize)
        link = MqttLink(s, TopicTemplate(template), inbox)
        links.append(link)
        return link, inbox

    yield make
    for link in links:
        link.stop(timeout=1)


def _wait(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


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
    assert online["state"] == "online" and online["counters"]["connects"] == 1
    assert abs(online["ts"] - time.time()) < 30
    link.stop(timeout=3)
    assert not link.connected
    with broker.subscriber(status_topic) as sub:
        [(_, payload)] = sub.collect(1, timeout=3)
        assert sub.retained == [True]
    assert json.loads(payload)["state"] == "offline"


_CHILD = textwrap.dedent(
    """
    import queue, sys, time
    from edge.mqtt import MqttLink, MqttSettings, TopicTemplate
    host, port, client_id, status_topic, template, protocol = sys.argv[1:]
    s = MqttSettings(host=host, port=int(port), client_id=client_id, status_topic=status_topic,
                     protocol=protocol)
    link = MqttLink(s, TopicTemplate(template), queue.Queue())
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
def test_full_inbox_counts_drops(broker: Broker, unique_topic: str, make_link: Any) -> None:
    link, inbox = make_link(broker, unique_topic + "/{stream}", maxsize=2)
    link.start()
    assert link.wait_subscribed(5), link.last_error
    for i in range(5):
        broker.pub(f"{unique_topic}/s{i}", str(i), qos=1)
    assert _wait(lambda: link.counters.received == 5)
    assert link.counters.dropped_queue_full == 3
    assert [inbox.get_nowait().stream for _ in range(2)] == ["s0", "s1"]


@pytest.mark.broker
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_credentials_are_not_connected(
    make_broker: Callable[..., Broker],
    unique_topic: str,
    make_link: Any,
    protocol: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.mqtt")
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
