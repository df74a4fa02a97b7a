"""edge/mqtt: MqttLink settings and callbacks, driven through a fake paho client (no broker)."""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_clients import make_mqtt_link
from seqcast.edge.config import ConfigError, parse_config
from seqcast.edge.mqtt import InboundMessage, MqttLink

# -- the [mqtt] settings the link is given -------------------------------------------------------


def test_link_hides_password_and_its_settings_are_checked_by_the_config() -> None:
    link = make_mqtt_link("s/{stream}/d", username="u", password="hunter2")
    assert "hunter2" not in repr(link.cfg) and "hunter2" not in repr(vars(link))
    model = {"path": "m.seqcast"}
    for section, match in [
        ({"mqtt": {"protocol": "3"}}, "mqtt.protocol"),
        ({"mqtt": {"qos_in": 3}}, "mqtt.qos_in"),
        ({"status": {"topic": "seqcast/+/status"}}, "status.topic"),
        ({"mqtt": {"reconnect_min_s": 5, "reconnect_max_s": 1}}, "mqtt.reconnect_max_s"),
    ]:
        with pytest.raises(ConfigError, match=match):
            parse_config({"model": model, **section})


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

    link = make_mqtt_link("s/{stream}/d", maxsize=maxsize, factory=factory, **settings)
    return link, made[0], link.inbox


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
