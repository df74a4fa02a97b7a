"""seqcast.edge.config: defaults, every rule's message, passwords, the commented example."""

from __future__ import annotations

import os
import tomllib
from dataclasses import FrozenInstanceError, fields, is_dataclass
from pathlib import Path
from typing import get_type_hints

import pytest

from seqcast.edge.config import (
    ConfigError,
    EdgeConfig,
    MqttConfig,
    dump_default_config,
    load_config,
    parse_config,
    read_password,
)
from seqcast.edge.config import files as cfgmod
from seqcast.edge.config.files import default_client_id

EXAMPLE = Path(__file__).resolve().parents[1] / "edge" / "edge.example.toml"
MINIMAL = '[model]\npath = "/var/lib/seqcast/model.seqcast"\n'


def write(tmp_path: Path, text: str, name: str = "edge.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.model.path == Path("/var/lib/seqcast/model.seqcast")
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.protocol) == ("localhost", 1883, "3.1.1")
    assert cfg.mqtt.client_id == default_client_id() and cfg.mqtt.keepalive == 60
    assert cfg.mqtt.username is None and cfg.mqtt.password_file is None
    assert cfg.mqtt.clean_session is False and cfg.mqtt.qos_in == 1
    assert cfg.mqtt.tls.enabled is False and cfg.mqtt.tls.ca_file is None
    assert (cfg.model.mode, cfg.model.backend, cfg.model.num_threads) == ("auto", "auto", 1)
    assert cfg.input.topic == "sensors/{stream}/data" and cfg.input.format == "auto"
    assert cfg.output.topic == "forecasts/{stream}" and cfg.output.retain is False
    assert cfg.streams.max_gap == 4.0 and cfg.streams.out_of_order == "drop"
    assert cfg.status_topic == f"seqcast/{default_client_id()}/status"
    assert cfg.state.dir == Path("/var/lib/seqcast") and cfg.state.snapshot_interval_s == 300.0
    assert cfg.log.level == "info"
    assert isinstance(cfg.mqtt.reconnect_min_s, float)


def all_keys(cls: type = EdgeConfig, prefix: str = "") -> list[tuple[str, dict]]:
    """(dotted key, field metadata) for every leaf setting."""
    hints = get_type_hints(cls)
    out = []
    for f in fields(cls):
        if is_dataclass(hints[f.name]):
            out += all_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, dict(f.metadata)))
    return out


def test_config_is_frozen_and_every_field_has_help() -> None:
    cfg = parse_config({"model": {"path": "m.seqcast"}})
    with pytest.raises(FrozenInstanceError):
        cfg.mqtt.port = 1  # type: ignore[misc]
    keys = all_keys()
    assert len(keys) >= 40 and ("mqtt.tls.key_file" in dict(keys))
    for key, meta in keys:
        assert meta.get("help"), f"{key} has no help"


def test_ints_are_accepted_for_floats_and_values_kept() -> None:
    cfg = parse_config(
        {
            "model": {"path": "m", "mode": "stream"},
            "mqtt": {"reconnect_min_s": 2, "reconnect_max_s": 2, "protocol": "5", "port": 8883},
            "streams": {"max_gap": 1},
            "status": {"topic": "edge/{client_id}/state"},
        }
    )
    assert cfg.mqtt.reconnect_min_s == 2.0 and isinstance(cfg.mqtt.reconnect_min_s, float)
    assert cfg.mqtt.protocol == "5" and cfg.mqtt.port == 8883 and cfg.model.mode == "stream"
    assert cfg.status_topic == f"edge/{default_client_id()}/state"


def test_tls_file_implies_enabled_unless_explicitly_false() -> None:
    on = parse_config({"model": {"path": "m"}, "mqtt": {"tls": {"ca_file": "/etc/ca.pem"}}})
    assert on.mqtt.tls.enabled is True and on.mqtt.tls.ca_file == Path("/etc/ca.pem")
    off = parse_config(
        {"model": {"path": "m"}, "mqtt": {"tls": {"ca_file": "ca.pem", "enabled": False}}}
    )
    assert off.mqtt.tls.enabled is False
    both = parse_config(
        {"model": {"path": "m"}, "mqtt": {"tls": {"cert_file": "c.pem", "key_file": "c.key"}}}
    )
    assert both.mqtt.tls.enabled is True


M = {"path": "m"}

BAD = [
    ({"model": M, "mqtt": {"port": 70000}}, "mqtt.port: must be 1..65535, got 70000"),
    ({"model": M, "mqtt": {"port": 0}}, "mqtt.port: must be 1..65535, got 0"),
    ({"model": M, "mqtt": {"port": "x"}}, 'mqtt.port: must be an integer, got string "x"'),
    ({"model": M, "mqtt": {"port": True}}, "mqtt.port: must be an integer, got boolean true"),
    ({"model": M, "mqtt": {"port": 1.5}}, "mqtt.port: must be an integer, got float 1.5"),
    ({"model": M, "bogus": 1}, "bogus: unknown key"),
    ({"model": M, "mqt": {}}, 'mqt: unknown key (did you mean "mqtt"?)'),
    ({"model": M, "mqtt": {"prot": 1}}, 'mqtt.prot: unknown key (did you mean "port"?)'),
    ({"model": M, "mqtt": {"tls": {"x": 1}}}, "mqtt.tls.x: unknown key"),
    ({"model": M, "mqtt": 5}, "mqtt: must be a table, got integer 5"),
    ({}, "model.path: missing required key"),
    ({"model": {"path": ""}}, 'model.path: must be a non-empty string without NUL, got ""'),
    ({"model": {"path": 3}}, "model.path: must be a string, got integer 3"),
    (
        {"model": {"path": "m", "mode": "batch"}},
        'model.mode: must be one of "auto", "stream", "window", got "batch"',
    ),
    ({"model": {"path": "m", "num_threads": 65}}, "model.num_threads: must be 1..64, got 65"),
    ({"model": {"path": "m", "watch": 1}}, "model.watch: must be a boolean, got integer 1"),
    ({"model": M, "mqtt": {"protocol": 5}}, 'mqtt.protocol: must be one of "3.1.1", "5", got 5'),
    ({"model": M, "mqtt": {"keepalive": 4}}, "mqtt.keepalive: must be 5..3600, got 4"),
    ({"model": M, "mqtt": {"qos_in": 3}}, "mqtt.qos_in: must be 0..2, got 3"),
    (
        {"model": M, "mqtt": {"client_id": "a/b"}},
        "mqtt.client_id: must not contain '+', '#' or '/', got \"a/b\"",
    ),
    (
        {"model": M, "mqtt": {"client_id": "x" * 129}},
        "mqtt.client_id: must be at most 128 characters",
    ),
    (
        {"model": M, "mqtt": {"reconnect_min_s": 10, "reconnect_max_s": 5}},
        "mqtt.reconnect_max_s: must be >= reconnect_min_s (10.0), got 5.0",
    ),
    ({"model": M, "mqtt": {"reconnect_min_s": 0}}, "mqtt.reconnect_min_s: must be > 0, got 0.0"),
    (
        {"model": M, "mqtt": {"tls": {"cert_file": "c.pem"}}},
        "mqtt.tls.key_file: cert_file and key_file must be given together",
    ),
    (
        {"model": M, "mqtt": {"tls": {"key_file": "c.key"}}},
        "mqtt.tls.cert_file: cert_file and key_file must be given together",
    ),
    (
        {"model": M, "input": {"topic": "sensors/+/{stream}"}},
        "input.topic: must not contain the MQTT wildcards '+' or '#', got \"sensors/+/{stream}\"",
    ),
    (
        {"model": M, "input": {"topic": "sensors/data"}},
        'input.topic: must contain {stream} exactly once, got "sensors/data"',
    ),
    (
        {"model": M, "input": {"topic": "{stream}/{stream}"}},
        'input.topic: must contain {stream} exactly once, got "{stream}/{stream}"',
    ),
    (
        {"model": M, "input": {"topic": "sensors/x-{stream}"}},
        "input.topic: {stream} must fill a whole topic level",
    ),
    (
        {"model": M, "output": {"topic": "out/{site}/{stream}"}},
        "output.topic: unknown placeholder {site} (only {stream} and {partition} are allowed)",
    ),
    (
        {"model": M, "output": {"topic": "out/{stream"}},
        "output.topic: has an unbalanced '{' or '}'",
    ),
    (
        {"model": M, "output": {"topic": "sensors/{stream}/data"}},
        'output.topic: must not overlap input.topic "sensors/{stream}/data"',
    ),
    (
        {"model": M, "status": {"topic": "s/{stream}/status"}},
        "status.topic: unknown placeholder {stream} (only {client_id} is allowed)",
    ),
    ({"model": M, "status": {"topic": "s/#"}}, "status.topic: must not contain the MQTT"),
    ({"model": M, "status": {"interval_s": 0}}, "status.interval_s: must be > 0, got 0.0"),
    ({"model": M, "input": {"format": "xml"}}, 'input.format: must be one of "auto", "json"'),
    (
        {"model": M, "input": {"max_payload_bytes": 8}},
        "input.max_payload_bytes: must be 16..16777216, got 8",
    ),
    ({"model": M, "input": {"max_future_s": -1}}, "input.max_future_s: must be >= 0, got -1.0"),
    ({"model": M, "streams": {"max_gap": float("nan")}}, "streams.max_gap: must be > 0, got nan"),
    ({"model": M, "streams": {"max_streams": 0}}, "streams.max_streams: must be >= 1, got 0"),
    (
        {"model": M, "state": {"snapshot_interval_s": -5}},
        "state.snapshot_interval_s: must be >= 0, got -5.0",
    ),
    ({"model": M, "state": {"queue_size": 0}}, "state.queue_size: must be >= 1, got 0"),
    (
        {"model": M, "log": {"level": "trace"}},
        'log.level: must be one of "info", "debug", "warning", "error", got "trace"',
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[e.split(":")[0] for _, e in BAD])
def test_each_rule_names_file_key_rule_and_value(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "edge.toml")
    assert len(exc.value.errors) == 1, exc.value.errors
    assert str(exc.value).startswith(f"edge.toml: {expected}")


def test_exact_message_and_all_errors_reported(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "[mqtt]\nport = 70000\nhots = 'x'\n[log]\nlevel = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.errors == [
        f'{path}: mqtt.hots: unknown key (did you mean "host"?)',
        f"{path}: mqtt.port: must be 1..65535, got 70000",
        f'{path}: log.level: must be one of "info", "debug", "warning", "error", got 1',
    ]
    assert isinstance(exc.value, ValueError)


def test_missing_file_and_syntax_error_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^\S*nope\.toml: cannot read: No such file") as exc:
        load_config(tmp_path / "nope.toml")
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"edge\.toml: TOML syntax error: .*line 2") as exc:
        load_config(write(tmp_path, "[model]\npath = \n"))
    assert "\n" not in str(exc.value)
    (tmp_path / "bin.toml").write_bytes(b'[model]\npath = "\xff"\n')
    with pytest.raises(ConfigError, match=r"bin\.toml: not valid UTF-8"):
        load_config(tmp_path / "bin.toml")


def test_config_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read: Is a directory"):
        load_config(tmp_path)


# -- passwords -----------------------------------------------------------------------------------


def mqtt_with(password_file: str | None) -> MqttConfig:
    mqtt = {"password_file": password_file} if password_file else {}
    return parse_config({"model": M, "mqtt": mqtt}).mqtt


def secret(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def test_no_password_file_gives_none() -> None:
    assert read_password(mqtt_with(None), environ={}) is None


def test_password_from_absolute_file_strips_one_newline(tmp_path: Path) -> None:
    path = secret(tmp_path / "pw", b"s3cret\n\n")
    assert read_password(mqtt_with(str(path)), environ={}) == "s3cret\n"
    secret(path, b"s3cret\r\n")
    assert read_password(mqtt_with(str(path)), environ={}) == "s3cret"
    secret(path, b" s3cret ")
    assert read_password(mqtt_with(str(path)), environ={}) == " s3cret "


def test_password_via_credentials_directory(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    secret(creds / "mqtt-password", b"from-systemd\n", 0o400)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_password(mqtt_with("mqtt-password"), environ=env) == "from-systemd"
    # An absolute path ignores $CREDENTIALS_DIRECTORY.
    other = secret(tmp_path / "abs", b"absolute")
    assert read_password(mqtt_with(str(other)), environ=env) == "absolute"


def test_relative_password_without_credentials_directory_uses_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret(tmp_path / "pw", b"here")
    monkeypatch.chdir(tmp_path)
    assert read_password(mqtt_with("pw"), environ={}) == "here"


def test_missing_password_file_names_the_file(tmp_path: Path) -> None:
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    with pytest.raises(ConfigError) as exc:
        read_password(mqtt_with("mqtt-password"), environ=env)
    assert str(exc.value) == (
        f"mqtt.password_file: {tmp_path / 'mqtt-password'}: No such file or directory"
    )


def test_world_readable_password_file_is_refused(tmp_path: Path) -> None:
    path = secret(tmp_path / "pw", b"topsecret", 0o644)
    with pytest.raises(ConfigError) as exc:
        read_password(mqtt_with(str(path)), environ={})
    assert str(exc.value) == (
        f"mqtt.password_file: {path}: group or others may access it (mode 0644); chmod 600 {path}"
    )
    assert "topsecret" not in str(exc.value)


@pytest.mark.parametrize("mode", [0o640, 0o660, 0o604, 0o610])
def test_group_readable_password_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = secret(tmp_path / "pw", b"topsecret", mode)
    with pytest.raises(ConfigError) as exc:
        read_password(mqtt_with(str(path)), environ={})
    assert str(exc.value) == (
        f"mqtt.password_file: {path}: group or others may access it (mode {mode:04o}); "
        f"chmod 600 {path}"
    )
    assert "\n" not in str(exc.value) and "topsecret" not in str(exc.value)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_owner_only_password_file_is_accepted(tmp_path: Path, mode: int) -> None:
    path = secret(tmp_path / "pw", b"topsecret\n", mode)
    assert read_password(mqtt_with(str(path)), environ={}) == "topsecret"


def test_credentials_directory_modes_are_systemds_business(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    secret(creds / "mqtt-password", b"from-systemd", 0o440)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert read_password(mqtt_with("mqtt-password"), environ=env) == "from-systemd"
    assert read_password(mqtt_with(str(creds / "mqtt-password")), environ=env) == "from-systemd"
    # Outside it (an absolute path elsewhere, or a way out with '..') the rule holds.
    outside = secret(tmp_path / "pw", b"x", 0o640)
    for name in (str(outside), "../pw"):
        with pytest.raises(ConfigError, match=r"\(mode 0640\); chmod 600"):
            read_password(mqtt_with(name), environ=env)


def test_unreadable_password_file_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = secret(tmp_path / "pw", b"topsecret", 0o000)
    if os.geteuid() == 0:  # root reads mode 000 files: simulate the kernel's refusal

        def refuse(*args: object, **kwargs: object) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(cfgmod.os, "open", refuse)
    with pytest.raises(ConfigError) as exc:
        read_password(mqtt_with(str(path)), environ={})
    assert str(exc.value) == f"mqtt.password_file: {path}: Permission denied"


def test_password_file_that_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="dir: not a regular file"):
        read_password(mqtt_with(str(tmp_path / "dir")), environ={})
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo, 0o600)  # must not block waiting for a writer
    with pytest.raises(ConfigError, match="fifo: not a regular file"):
        read_password(mqtt_with(str(fifo)), environ={})


def test_password_errors_never_leak_content(tmp_path: Path) -> None:
    path = secret(tmp_path / "pw", b"\xffsecret\xfe")
    with pytest.raises(ConfigError) as exc:
        read_password(mqtt_with(str(path)), environ={})
    assert str(exc.value) == f"mqtt.password_file: {path}: not valid UTF-8"
    secret(path, b"x" * (cfgmod.MAX_PASSWORD_BYTES + 1))
    with pytest.raises(ConfigError, match="larger than"):
        read_password(mqtt_with(str(path)), environ={})


# -- the commented example -----------------------------------------------------------------------


def test_example_file_matches_dump_and_parses() -> None:
    text = dump_default_config()
    assert EXAMPLE.read_text(encoding="utf-8") == text, "regenerate edge/edge.example.toml"
    cfg = load_config(EXAMPLE)
    defaults = parse_config({"model": {"path": str(cfg.model.path)}})
    assert cfg == defaults


def test_dump_mentions_every_key() -> None:
    text = dump_default_config()
    data = tomllib.loads(text)
    for key, meta in all_keys():
        *sections, name = key.split(".")
        table = data
        for section in sections:
            table = table[section]
        if name in table:
            assert f"# {meta['help']}" in text, key
        else:  # unset by default: shown commented out with an example
            assert f"\n# {name} = " in text, key
