"""Home Assistant MQTT discovery (`[homeassistant]`, edge/service/homeassistant.py).

The real daemon (TensorFlow blocked), a real mosquitto and real `mosquitto_sub` clients: each
allowed stream's discovery config appears retained when the stream is first seen and names its
forecast topic; Home Assistant's birth message makes the daemon send every config again (and is
never counted as input); an evicted stream's config is removed with an empty retained payload;
another model (a reload) sends the standing configs again.
The templates are rendered with Jinja's sandbox (Home Assistant's template engine) against a
forecast the daemon published (and one the encoder makes with intervals), so the sensor's state
is the first step's value and its attributes the horizon with its intervals.
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from seqcast.edge.config import ConfigError, parse_config
from seqcast.edge.model.bundle import Manifest, read_bundle, write_bundle
from seqcast.edge.path.encode import encode_rounded
from seqcast.edge.path.streams import StreamTable
from seqcast.edge.service.homeassistant import attributes_template, safe_id, state_template
from tests.daemon_harness import DaemonProcess, publish_lines, write_config
from tests.test_time_parity import on_grid, payload

JINJA = ImmutableSandboxedEnvironment()


def render(template: str, message: bytes) -> str:
    """What Home Assistant does with a value or attributes template: `value_json` is the
    decoded payload."""
    return JINJA.from_string(template).render(
        value=message.decode(), value_json=json.loads(message)
    )


# -- without a broker ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"birth_topic": "homeassistant/#"}, "homeassistant.birth_topic: must not contain"),
        ({"prefix": "ha/+"}, "homeassistant.prefix: must be a topic prefix without wildcards"),
        ({"prefix": "ha/"}, "homeassistant.prefix: must be a topic prefix without wildcards"),
        ({"streams": [3]}, "homeassistant.streams: must be a string or an array of strings"),
        (
            {"enabled": True, "birth_topic": "sensors/ha/data"},
            'homeassistant.birth_topic: must not overlap input.topic "sensors/{stream}/data"',
        ),
    ],
)
def test_bad_homeassistant_settings_are_one_line_each(section: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"model": {"path": "m"}, "homeassistant": section}, "edge.toml")
    assert len(exc.value.errors) == 1, exc.value.errors
    assert str(exc.value).startswith(f"edge.toml: {expected}")


def test_settings_default_off_and_a_single_pattern_is_a_list() -> None:
    off = parse_config({"model": {"path": "m"}})
    assert off.homeassistant.enabled is False and off.birth_topic is None
    on = parse_config(
        {"model": {"path": "m"}, "homeassistant": {"enabled": True, "streams": "m-*"}}
    )
    assert on.homeassistant.streams == ("m-*",)
    assert on.birth_topic == "homeassistant/status"


def test_the_table_records_who_joined_and_left_only_when_watched() -> None:
    table = StreamTable(capacity=2, seq_len=2, n_features=1, state_shapes=[])
    table.lookup("a")
    assert table.take_changes() == []  # not watched: nothing kept
    table.watch()
    for s in ["b", "a", "c", "b"]:  # "c" evicts "b" (least recently used), "b" evicts "a"
        table.lookup(s)
    assert table.take_changes() == [
        ("b", True),
        ("b", False),
        ("c", True),
        ("a", False),
        ("b", True),
    ]
    assert table.take_changes() == []


def test_ids_keep_home_assistants_characters_and_stay_apart() -> None:
    assert safe_id("seqcast_edge-1_meter-7") == "seqcast_edge-1_meter-7"
    a, b = safe_id("site/a.b"), safe_id("site/a_b")
    assert a != b and a.startswith("site_a_b_") and b.startswith("site_a_b_")
    long = safe_id("x" * 200)
    assert len(long) <= 64 and long.replace("_", "").replace("-", "").isalnum()


def test_templates_read_the_first_step_and_the_horizon_with_intervals() -> None:
    # a forecast as the daemon encodes it: 3 steps of load, load_p10, load_p2.5 (a dotted name)
    values = np.array([[10.5, 9.0, 8.0], [11.25, 9.5, 8.5], [12.0, 10.0, 9.0]])
    message = encode_rounded(
        "m", 1e9, "x@abc", ("load", "load_p10", "load_p2.5"), 60.0, values.astype(np.float32)
    )
    assert render(state_template("load"), message) == "10.5"
    attrs = json.loads(render(attributes_template("load", ["p10", "p2.5"]), message))
    assert attrs["origin_ts"] == 1e9 and attrs["model"] == "x@abc"
    assert attrs["forecast"] == [
        {"ts": 1e9 + 60 * (k + 1), "value": v, "p10": lo, "p2.5": lower}
        for k, (v, lo, lower) in enumerate(values.tolist())
    ]


@pytest.mark.broker
def test_the_link_takes_birth_messages_apart_from_input(broker, unique_topic) -> None:
    from seqcast.edge.config import MqttConfig, TopicTemplate
    from seqcast.edge.mqtt import MqttLink

    birth = f"{unique_topic}/ha/status"
    link = MqttLink(
        MqttConfig(host=broker.host, port=broker.port, client_id=unique_topic.replace("/", "-")),
        TopicTemplate(f"{unique_topic}/{{stream}}/data"),
        status_topic=f"{unique_topic}/edge/status",
        birth_topic=birth,
    )
    link.start()
    try:
        assert link.wait_subscribed(5), link.last_error
        assert not link.births.take()
        broker.pub(birth, "offline", qos=1)  # Home Assistant's last will: not a birth
        broker.pub(birth, "online", qos=1)
        broker.pub(f"{unique_topic}/m-1/data", b'{"load": 1}', qos=1)
        [message] = link.next_batch(5.0, 10)  # the input; the birth messages came before it
        assert message.stream == "m-1"
        assert link.registry["hass_birth_messages"] == 2
        assert link.births.take() and not link.births.take()  # once per `online`
        assert link.registry["mqtt_received"] == 1 and link.registry["mqtt_unknown_topic"] == 0
    finally:
        link.stop(timeout=1)


# -- the real daemon -------------------------------------------------------------------------


def renamed(bundle: Path, name: str) -> None:
    """The same model under another name, written over `bundle`."""
    b = read_bundle(bundle)
    write_bundle(bundle, Manifest(**{**b.manifest.__dict__, "name": name}), b.models)


def _status_counters(broker, topic: str, until, timeout: float = 10.0) -> dict:
    """The retained status message's counters, once `until(counters)` holds (or the last)."""
    deadline = time.monotonic() + timeout
    while True:
        [(_, body)] = broker.sub(topic, 1, timeout=5)
        counters = json.loads(body)["counters"]
        if until(counters) or time.monotonic() > deadline:
            return counters
        time.sleep(0.2)


@pytest.mark.broker
@pytest.mark.tflite
@pytest.mark.slow
def test_discovery_first_sight_birth_and_eviction(
    broker, small_bundle, tmp_path, unique_topic
) -> None:
    prefix, ha = unique_topic, f"{unique_topic}/ha"
    bundle = Path(shutil.copy(small_bundle, tmp_path / "model.seqcast"))
    cfg = write_config(
        tmp_path / "edge.toml",
        broker,
        bundle,
        prefix,
        model={"watch": False},
        streams={"max_streams": 2, "align": "off"},
        homeassistant={
            "enabled": True,
            "prefix": ha,
            "birth_topic": f"{ha}/status",
            "streams": ["m-*"],
        },
    )
    node = f"seqcast_edge-{prefix.replace('/', '-')}"

    def topic(stream: str) -> str:
        return f"{ha}/device/{node}_{stream}/config"

    def send(stream: str, steps: range) -> None:
        lines = [payload(ts, v) for ts, v in on_grid(list(steps))]
        publish_lines(broker, f"{prefix}/sensors/{stream}/data", lines)

    daemon = DaemonProcess.start(cfg)
    try:
        with (
            broker.subscriber(f"{ha}/#", qos=1) as discovery,
            broker.subscriber(f"{prefix}/forecasts/+", qos=1) as forecasts,
        ):
            daemon.wait_for_log("seqcast-edge serving")
            send("m-a", range(10))
            send("m-b", range(1))
            first = dict(discovery.collect(2, timeout=15))
            assert set(first) == {topic("m-a"), topic("m-b")}, daemon.log()

            doc = json.loads(first[topic("m-a")])
            assert doc["dev"]["ids"] == [f"{node}_m-a"] and doc["dev"]["name"] == "m-a"
            assert doc["o"]["name"] == "seqcast"
            assert doc["state_topic"] == f"{prefix}/forecasts/m-a"
            assert doc["availability"] == [
                {"topic": f"{prefix}/status", "value_template": "{{ value_json.state }}"}
            ]
            [sensor] = doc["cmps"].values()
            assert sensor["p"] == "sensor" and sensor["unique_id"] == f"{node}_m-a_load"
            assert sensor["json_attributes_topic"] == f"{prefix}/forecasts/m-a"

            # the templates against a forecast the daemon published, and the status it keeps
            [(_, message)] = forecasts.collect(1, timeout=15)
            steps = json.loads(message)["forecast"]
            assert float(render(sensor["value_template"], message)) == steps[0]["load"]
            attrs = json.loads(render(sensor["json_attributes_template"], message))
            assert [r["value"] for r in attrs["forecast"]] == [s["load"] for s in steps]
            assert [r["ts"] for r in attrs["forecast"]] == [s["ts"] for s in steps]
            [(_, status)] = broker.sub(f"{prefix}/status", 1)
            assert render(doc["availability"][0]["value_template"], status) == "online"

            # Home Assistant (re)started: every config again, the same
            broker.pub(f"{ha}/status", "online", qos=1)
            assert dict(discovery.collect(3, timeout=3)) == {
                f"{ha}/status": b"online",
                **first,
            }

            # a third stream (not in the allowlist) evicts m-a: its config is removed
            send("zz", range(1))
            assert discovery.collect(1, timeout=15) == [(topic("m-a"), b"")]
            # m-c evicts m-b: removed, and m-c announced; zz never was
            send("m-c", range(1))
            last = dict(discovery.collect(2, timeout=15))
            assert set(last) == {topic("m-b"), topic("m-c")} and last[topic("m-b")] == b""

            # another model serves (SIGHUP): the standing config again, naming it
            renamed(bundle, "renamed")
            daemon.proc.send_signal(signal.SIGHUP)
            [(where, body)] = discovery.collect(1, timeout=30)
            assert where == topic("m-c") and json.loads(body)["dev"]["mdl"] == "renamed"
            last[where] = body

        # a client that subscribes now gets the one config left, retained
        with broker.subscriber(f"{ha}/device/+/config") as late:
            assert late.collect(3, timeout=1.0) == [(topic("m-c"), last[topic("m-c")])]
            assert late.retained == [True]

        counters = _status_counters(
            broker, f"{prefix}/status", lambda c: c["hass_configs_published"] >= 6
        )
        assert counters["hass_configs_published"] == 6  # 2, the same 2 again, m-c, m-c again
        assert counters["hass_configs_removed"] == 2
        assert counters["hass_birth_messages"] == 1
        assert counters["mqtt_unknown_topic"] == 0 and counters["bad_payloads"] == 0
        assert daemon.stop() == 0
    finally:
        daemon.kill()
    assert "Traceback" not in daemon.log()
