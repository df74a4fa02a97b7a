"""`[mqtt] fallback_brokers`: parsing, and the link moving between real mosquittos.

The three-node cluster that loses nothing when a node dies is tests/test_nats_cluster.py; here
each rule's one line, and the reconnect loop trying the next broker when one cannot be reached.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker import Broker, free_port
from mqtt_clients import make_mqtt_link
from seqcast.edge.cli import main
from seqcast.edge.config import ConfigError, MqttConfig, parse_config
from seqcast.edge.mqtt import MqttLink
from seqcast.edge.mqtt.failover import Brokers
from tests.waiting import eventually

M = {"path": "m.seqcast"}
RULE = 'must be "host:port" (e.g. "nats-2:1883", "[fd00::2]:1883")'


def mqtt(**settings: Any) -> MqttConfig:
    cfg: MqttConfig = parse_config({"model": M, "mqtt": settings}).mqtt
    return cfg


# -- the option ----------------------------------------------------------------------------------


def test_no_fallback_by_default() -> None:
    assert MqttConfig().fallback_brokers == ()
    assert mqtt(host="a", port=1884).brokers == [("a", 1884)]


def test_fallbacks_follow_host_and_port_in_order() -> None:
    cfg = mqtt(host="n1", fallback_brokers=["n2:1883", "[fd00::3]:1884", "10.0.0.4:65535"])
    assert cfg.fallback_brokers == ("n2:1883", "[fd00::3]:1884", "10.0.0.4:65535")
    assert cfg.brokers == [("n1", 1883), ("n2", 1883), ("fd00::3", 1884), ("10.0.0.4", 65535)]
    assert mqtt(fallback_brokers="n2:1883").brokers == [("localhost", 1883), ("n2", 1883)]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("n2", f'{RULE}, got "n2"'),
        (["n2:1883", "n3"], f'{RULE}, got "n3"'),
        ("n2:0", f'{RULE}, got "n2:0"'),
        ("n2:65536", f'{RULE}, got "n2:65536"'),
        ("n2:x", f'{RULE}, got "n2:x"'),
        (":1883", f'{RULE}, got ":1883"'),
        ("fd00::2:1883", f'{RULE}, got "fd00::2:1883"'),
        ("[]:1883", f'{RULE}, got "[]:1883"'),
        ("n 2:1883", f'{RULE}, got "n 2:1883"'),
        ("", 'must be a non-empty string without NUL, got ""'),
        ([1883], "must be a string or an array of strings: must be a string, got integer 1883"),
        ({"host": "n2"}, "must be a string or an array of strings: must be a string, got a table"),
    ],
)
def test_each_bad_fallback_is_one_line(value: Any, error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"model": M, "mqtt": {"fallback_brokers": value}})
    assert exc.value.errors == [f"<config>: mqtt.fallback_brokers: {error}"]


def test_a_bad_fallback_stops_the_daemon_at_start_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[mqtt]\nfallback_brokers = ["n2:1883", "n3"]\n[model]\npath = "m"\n')
    assert main(["run", "-c", str(config)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f'seqcast-edge: error: {config}: mqtt.fallback_brokers: {RULE}, got "n3"']


# -- the order the link tries them in ------------------------------------------------------------


class Attempts:
    """Stands for the paho client: where its next `reconnect()` would go."""

    _host, _port = "n1", 1883


def test_brokers_go_round_the_list_and_point_the_client_at_each() -> None:
    brokers, client = (
        Brokers(mqtt(host="n1", fallback_brokers=["n2:1884", "[::1]:1885"])),
        Attempts(),
    )
    assert str(brokers) == "n1:1883 (then n2:1884, [::1]:1885)"
    seen = []
    for _ in range(4):
        seen.append((brokers.current.host, brokers.current.port, brokers.retry_text()))
        brokers.advance(client)
        assert (client._host, client._port) == (brokers.current.host, brokers.current.port)
    assert seen == [
        ("n1", 1883, "trying n2:1884 next"),
        ("n2", 1884, "trying [::1]:1885 next"),
        ("::1", 1885, "trying n1:1883 next"),
        ("n1", 1883, "trying n2:1884 next"),
    ]
    # everything else of [mqtt] goes along to each broker
    assert {(t.client_id, t.keepalive, t.tls) for t in brokers.targets} == {
        (brokers.targets[0].client_id, 60, brokers.targets[0].tls)
    }


def test_one_broker_is_retried_as_before() -> None:
    brokers, client = Brokers(mqtt(host="n1")), Attempts()
    assert (str(brokers), brokers.retry_text()) == ("n1:1883", "retrying with backoff")
    brokers.advance(client)
    assert (client._host, brokers.current.host) == ("n1", "n1")


# -- against real brokers ------------------------------------------------------------------------


@pytest.fixture
def links() -> Iterator[Callable[..., MqttLink]]:
    made: list[MqttLink] = []

    def make(host_port: tuple[str, int], fallbacks: list[str], topic: str) -> MqttLink:
        link = make_mqtt_link(
            topic + "/{stream}",
            host=host_port[0],
            port=host_port[1],
            fallback_brokers=tuple(fallbacks),
            client_id=f"failover-{uuid.uuid4().hex[:8]}",
            reconnect_min_s=0.1,
            reconnect_max_s=0.4,
        )
        made.append(link)
        return link  # type: ignore[no-any-return]

    yield make
    for link in made:
        link.stop(timeout=1)


def _at(b: Broker) -> str:
    return f"{b.host}:{b.port}"


@pytest.mark.broker
def test_an_unreachable_host_moves_the_link_to_the_fallback(
    make_broker: Callable[..., Broker],
    links: Callable[..., MqttLink],
    unique_topic: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    live = make_broker()
    dead = ("127.0.0.1", free_port())  # nobody listens there
    link = links(dead, [_at(live)], unique_topic)
    with caplog.at_level(logging.INFO, logger="seqcast.edge.mqtt.link"):
        link.start()
        assert link.wait_subscribed(10), link.last_error
    assert link.broker == _at(live)
    text = caplog.text
    assert f"connecting to 127.0.0.1:{dead[1]} (then {_at(live)})" in text
    assert f"cannot reach MQTT broker 127.0.0.1:{dead[1]}: " in text
    assert f"(trying {_at(live)} next)" in text
    assert f"connected to MQTT broker {_at(live)}" in text
    live.pub(f"{unique_topic}/meter-1", b"1", qos=1)
    assert link.inbox.get(timeout=5).stream == "meter-1"


@pytest.mark.broker
def test_a_killed_broker_moves_the_link_round_the_list(
    make_broker: Callable[..., Broker], links: Callable[..., MqttLink], unique_topic: str
) -> None:
    first, second = make_broker(), make_broker()
    link = links((first.host, first.port), [_at(second)], unique_topic)
    link.start()
    assert link.wait_subscribed(10), link.last_error
    assert link.broker == _at(first)
    for dying, next_one in ((first, second), (second, first)):
        dying.kill()  # SIGKILL: the connection drops, the same broker refuses the next attempt
        if not next_one.running:
            next_one.start()
        assert _until(lambda b=next_one: link.subscribed and link.broker == _at(b)), link.last_error
        next_one.pub(f"{unique_topic}/meter-2", b"2", qos=1)
        assert link.inbox.get(timeout=5).stream == "meter-2"
    counts = link.counters.as_dict()
    assert (counts["connects"], counts["disconnects"]) == (3, 2), counts
    assert counts["connect_failures"] >= 2  # each dead broker was tried once more first


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    return eventually(cond, timeout)
