"""`[input] partition` and `{partition}` (issue 14): a daemon serves one partition, named in the
config or with `--partition P` (what `seqcast-edge@P.service` passes). Without a partition
nothing changes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from seqcast.edge.cli import EXIT_USAGE, main
from seqcast.edge.config import ConfigError, TopicTemplate, load_config, parse_config

M = {"path": "/var/lib/seqcast/model.seqcast"}
TOPIC = "part/{partition}/sensors/{stream}"
CLIENT = "seqcast-part-{partition}"


def partitioned(partition: str | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "model": M,
        "mqtt": {"client_id": CLIENT},
        "input": {"topic": TOPIC},
        "state": {"dir": "/srv/seqcast"},
    }
    if partition is not None:
        data["input"]["partition"] = partition
    for key, values in sections.items():
        data.setdefault(key, {}).update(values)
    return data


def test_the_partition_fills_topics_client_id_and_state_dir() -> None:
    cfg = parse_config(partitioned("3"), "edge.toml")
    assert cfg.input.partition == "3"
    assert cfg.input.topic == "part/3/sensors/{stream}"
    assert TopicTemplate(cfg.input.topic).subscription() == "part/3/sensors/+"
    assert cfg.mqtt.client_id == "seqcast-part-3"
    assert cfg.status_topic == "seqcast/seqcast-part-3/status"
    assert cfg.state.dir == Path("/srv/seqcast/partition-3")
    assert cfg.output.topic == "forecasts/{stream}"  # shared by every partition by default
    assert cfg.resolved() == cfg  # done once


def test_the_output_topic_may_carry_the_partition() -> None:
    cfg = parse_config(partitioned("0", output={"topic": "part/{partition}/forecasts/{stream}"}))
    assert cfg.output.topic == "part/0/forecasts/{stream}"


def test_the_command_line_partition_wins(tmp_path: Path) -> None:
    assert parse_config(partitioned("3"), partition="0").input.topic == "part/0/sensors/{stream}"
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[model]\npath = "m.seqcast"\n[mqtt]\nclient_id = "{CLIENT}"\n'
        f'[input]\ntopic = "{TOPIC}"\n[state]\ndir = "{tmp_path}"\n'
    )
    cfg = load_config(path, partition="12")
    assert (cfg.mqtt.client_id, cfg.state.dir) == ("seqcast-part-12", tmp_path / "partition-12")


def test_a_config_without_partition_is_unchanged() -> None:
    data = {"model": M, "state": {"dir": "/srv/seqcast"}, "mqtt": {"client_id": "edge-1"}}
    cfg = parse_config(data)
    assert cfg.input.partition == ""
    assert (cfg.input.topic, cfg.mqtt.client_id) == ("sensors/{stream}/data", "edge-1")
    assert cfg.state.dir == Path("/srv/seqcast")
    assert cfg.resolved() is cfg


BAD = [
    (
        partitioned(),
        "input.partition: must be set (here or with --partition P) when input.topic contains "
        "{partition}",
    ),
    (
        {"model": M, "mqtt": {"client_id": CLIENT}},
        "input.partition: must be set (here or with --partition P) when mqtt.client_id contains "
        "{partition}",
    ),
    (
        {"model": M, "output": {"topic": "p/{partition}/{stream}"}},
        "input.partition: must be set (here or with --partition P) when output.topic contains",
    ),
    (
        {"model": M, "mqtt": {"client_id": CLIENT}, "input": {"partition": "3"}},
        'input.topic: must contain {partition} when input.partition is set ("3"), got '
        '"sensors/{stream}/data"',
    ),
    (
        partitioned("3", mqtt={"client_id": "edge-1"}),
        'mqtt.client_id: must contain {partition} when input.partition is set ("3"), got "edge-1"',
    ),
    (partitioned("a/b"), "input.partition: must be 1-32 of A-Z a-z 0-9 _ - (or empty: not "),
    (partitioned("x" * 33), "input.partition: must be 1-32 of"),
    (
        partitioned("1", input={"topic": "p-{partition}/{stream}"}),
        "input.topic: {partition} must fill a whole topic level",
    ),
    (
        partitioned("1", input={"topic": "{partition}/{partition}/{stream}"}),
        "input.topic: must contain {partition} at most once",
    ),
    (
        partitioned("1", status={"topic": "s/{partition}"}),
        "status.topic: unknown placeholder {partition} (only {client_id} is allowed)",
    ),
    (
        partitioned("1", output={"topic": "part/1/sensors/{stream}"}),
        'output.topic: must not overlap input.topic "part/1/sensors/{stream}"',
    ),
]


@pytest.mark.parametrize(("data", "expected"), BAD, ids=[e.split(":")[1][:40] for _, e in BAD])
def test_each_partition_rule_is_one_line(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config(data, "edge.toml")
    assert len(exc.value.errors) == 1, exc.value.errors
    assert str(exc.value).startswith(f"edge.toml: {expected}")


@pytest.mark.parametrize("command", ["run", "check"])
def test_a_template_without_partition_fails_at_start_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(f'[model]\npath = "m.seqcast"\n[input]\ntopic = "{TOPIC}"\n')
    assert main([command, "-c", str(path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"seqcast-edge: error: {path}: input.partition: must be set"), err
    # and a partition for a config that has no {partition}
    path.write_text('[model]\npath = "m.seqcast"\n')
    assert main([command, "-c", str(path), "--partition", "2"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"{path}: input.topic: must contain {{partition}} when input.partition is set" in err
