"""The device side of signed releases without a broker: `[deploy]` config rules, the slots in
the state directory (install, commit, rollback, a crash half way through an install), and the
one-line start-up errors. The fleet test (tests/test_fleet.py) runs the whole thing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import minisign
import pytest

from seqcast.edge.cli import main
from seqcast.edge.config import ConfigError, parse_config
from seqcast.edge.service.slots import Release, Slots, sha256_of

SIG = b"untrusted comment: x\nRW..\ntrusted comment: x\nAA..\n"  # slots store it, never read it


def config(**deploy: object) -> dict[str, object]:
    return {"model": {"path": "m.seqcast"}, "deploy": deploy}


def test_deploy_config_takes_one_key_or_a_list_and_states_its_rules() -> None:
    off = parse_config(config(channel=""))  # the example's `channel = ""`
    assert not off.deploy.enabled
    one = parse_config(config(channel="field-a", public_key="/k/a.pub"))
    assert one.deploy.public_key == (Path("/k/a.pub"),)
    assert one.deploy_topic == "seqcast/deploy/field-a"
    two = parse_config(config(channel="x", public_key=["/k/a.pub", "/k/b.pub"]))
    assert two.deploy.public_key == (Path("/k/a.pub"), Path("/k/b.pub"))
    bad = {
        "deploy.public_key: required when channel is set": config(channel="x"),
        "deploy.channel: must be 1-64 of": config(channel="a b", public_key="k"),
        "deploy.public_key: must be a path or an array of paths": config(public_key=[1]),
        "deploy.topic: must contain {channel}": config(topic="seqcast/deploy"),
        "deploy.topic: must not overlap input.topic": {
            **config(channel="x", public_key="k", topic="sensors/{channel}/data"),
        },
    }
    for line, raw in bad.items():
        with pytest.raises(ConfigError) as caught:
            parse_config(raw)
        assert line in str(caught.value), caught.value


def install(slots: Slots, data: bytes, version: int) -> Release:
    state = slots.read()
    release = Release(version, "field-a", sha256_of(data))
    slots.stage(data)
    serving = (b"plain bundle", Release(0, "", sha256_of(b"plain bundle")))
    slots.install(release, SIG, state, serving if state is None else None)
    return release


def test_install_commit_and_rollback_move_the_slots(tmp_path: Path) -> None:
    slots = Slots(tmp_path)
    assert slots.read() is None  # nothing installed: [model] path serves
    v2 = install(slots, b"v2", 2)
    state = slots.read()
    assert state is not None
    assert (state.current, state.phase, state.starts) == (v2, "probation", 1)
    assert slots.previous.read_bytes() == b"plain bundle"  # what served, to roll back to
    assert (slots.dir / "current.seqcast.minisig").read_bytes() == SIG
    assert oct(slots.dir.stat().st_mode & 0o777) == "0o700"
    assert oct(slots.state_file.stat().st_mode & 0o777) == "0o600"
    slots.commit(state)
    v3 = install(slots, b"v3", 3)
    state = slots.read()
    assert state is not None and state.previous == v2
    assert slots.previous.read_bytes() == b"v2"
    back = slots.roll_back(state)
    assert (back.current, back.phase, back.previous, back.refused) == (v2, "committed", None, (v3,))
    assert slots.current.read_bytes() == b"v2" and not slots.previous.exists()
    assert (slots.dir / "failed.seqcast").read_bytes() == b"v3"
    assert slots.read() == back


def test_a_release_on_probation_never_becomes_previous(tmp_path: Path) -> None:
    slots = Slots(tmp_path)
    v2 = install(slots, b"v2", 2)
    state = slots.read()
    assert state is not None
    slots.commit(state)
    install(slots, b"v3", 3)  # on probation when v4 arrives
    v4 = install(slots, b"v4", 4)
    state = slots.read()
    assert state is not None and (state.current, state.previous) == (v4, v2)
    assert slots.previous.read_bytes() == b"v2" and slots.current.read_bytes() == b"v4"
    slots.current.write_bytes(b"v5")  # v5 replacing v4 on probation, stopped before state.json
    state = slots.read()
    assert state is not None and (state.current, state.phase, state.previous) == (
        v2, "committed", None,
    )  # fmt: skip
    assert slots.current.read_bytes() == b"v2"


@pytest.mark.parametrize("stopped_after", ["current renamed to previous", "incoming renamed"])
def test_an_install_stopped_half_way_is_undone_at_start(tmp_path: Path, stopped_after: str) -> None:
    slots = Slots(tmp_path)
    v2 = install(slots, b"v2", 2)
    os.replace(slots.current, slots.previous)  # what install() does first
    if stopped_after == "incoming renamed":
        slots.current.write_bytes(b"v3")  # state.json still names v2
    state = slots.read()
    assert state is not None and state.current == v2
    assert slots.current.read_bytes() == b"v2"


def test_a_broken_state_file_or_key_is_one_line_at_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "seqcast.pub"
    key.write_bytes(bytes(minisign.KeyPair.generate().public_key))
    state_dir = tmp_path / "state"
    cfg = tmp_path / "edge.toml"
    body = f'[model]\npath = "{tmp_path / "m.seqcast"}"\n[state]\ndir = "{state_dir}"\n'
    cfg.write_text(body + f'[deploy]\nchannel = "field-a"\npublic_key = "{key}"\n')
    (state_dir / "deploy").mkdir(parents=True, mode=0o700)
    (state_dir / "deploy" / "state.json").write_text(json.dumps({"phase": "probation"}))
    assert main(["run", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "deploy/state.json: not a deploy state" in err, err

    cfg.write_text(body + f'[deploy]\nchannel = "field-a"\npublic_key = "{tmp_path / "no.pub"}"\n')
    assert main(["check", "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no.pub: cannot read public key" in err, err
