"""`seqcast-deploy push` and `status` against a real mosquitto."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from deploy_fixtures import deploy_cli, deploy_main, password_file, tiny_bundle

from broker import Broker
from seqcast.edge.model.signature import load_public_keys, split_delivery, verify_release


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(bundle, its .minisig for channel `lab` version 3, the public key directory)."""
    tmp = tmp_path_factory.mktemp("push")
    assert deploy_cli("keygen", "--out", tmp / "keys").returncode == 0
    bundle = tiny_bundle(tmp / "model.seqcast")
    sign = ("sign", bundle, "--key", tmp / "keys" / "seqcast.key", "--version", "3")
    assert deploy_cli(*sign, "--channel", "lab").returncode == 0
    return bundle, Path(f"{bundle}.minisig"), tmp / "keys"


def channel() -> str:
    return f"lab-{uuid.uuid4().hex[:8]}"


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqcast-deploy "), lines
    return lines[0]


def resign(signed: tuple[Path, Path, Path], tmp_path: Path, chan: str) -> Path:
    """A copy of the bundle signed for `chan` (version 3)."""
    bundle = tmp_path / "model.seqcast"
    bundle.write_bytes(signed[0].read_bytes())
    key = signed[2] / "seqcast.key"
    done = deploy_cli("sign", bundle, "--key", key, "--version", "3", "--channel", chan)
    assert done.returncode == 0, done.stderr
    return bundle


def test_push_is_retained_so_a_device_that_connects_later_gets_it(
    broker: Broker, signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    chan = channel()
    bundle = resign(signed, tmp_path, chan)
    pub = signed[2] / "seqcast.pub"
    done = deploy_cli(
        "push", bundle, "--channel", chan, "--pub", pub, "--host", broker.host,
        "--port", broker.port,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    payload_size = len(Path(f"{bundle}.minisig").read_bytes()) + bundle.stat().st_size
    assert f"to seqcast/deploy/{chan} " in done.stdout and f"({payload_size} bytes" in done.stdout
    with broker.subscriber(f"seqcast/deploy/{chan}", qos=1) as late:  # connects after the push
        [(topic, payload)] = late.collect(1, timeout=5)
        assert late.retained == [True]
    minisig, data = split_delivery(payload)
    assert data == bundle.read_bytes()
    release = verify_release(data, minisig, load_public_keys([pub]))
    assert (release.version, release.channel) == (3, chan)


def test_push_refuses_before_sending(
    broker: Broker,
    signed: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle, minisig, keys = signed
    to = ("--host", broker.host, "--port", str(broker.port))
    other = tmp_path / "other"
    assert deploy_cli("keygen", "--out", other).returncode == 0
    tampered = tmp_path / "tampered.seqcast"
    data = bytearray(bundle.read_bytes())
    data[len(data) // 3] ^= 1
    tampered.write_bytes(bytes(data))
    unsigned = tmp_path / "unsigned.seqcast"
    unsigned.write_bytes(bundle.read_bytes())
    cases = {
        "wrong channel": (
            ["push", bundle, "--channel", "elsewhere"],
            "signed for channel 'lab', not 'elsewhere'",
        ),
        "no signature": (["push", unsigned, "--channel", "lab"], "run `seqcast-deploy sign`"),
        "untrusted key": (
            ["push", bundle, "--channel", "lab", "--pub", other / "seqcast.pub"],
            "unknown_key",
        ),
        "tampered": (
            ["push", tampered, "--sig", minisig, "--channel", "lab", "--pub", keys / "seqcast.pub"],
            "bad_signature",
        ),
        "not a bundle": (["push", minisig, "--sig", minisig, "--channel", "lab"], "bundle"),
    }
    with broker.subscriber("seqcast/deploy/#", qos=1) as watch:
        before = watch.collect(1000, timeout=0.3)  # other tests' retained pushes
        for case, (args, says) in cases.items():
            line = one_line_error(deploy_main(capsys, *args, *to))
            assert says in line, (case, line)
        assert watch.collect(1, timeout=0.5) == []
    assert all(not t.endswith("/lab") and not t.endswith("/elsewhere") for t, _ in before)


def test_push_and_status_log_in_like_the_daemon(
    make_broker: Callable[..., Broker], signed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    secured = make_broker(allow_anonymous=False, users={"deployer": "s3cret"})
    login = {"username": "deployer", "password": "s3cret"}
    bundle = signed[0]
    to = ("--host", secured.host, "--port", str(secured.port), "--username", "deployer")
    wrong = password_file(tmp_path / "wrong", "guess\n")
    push = ("push", bundle, "--channel", "lab", *to)
    line = one_line_error(deploy_cli(*push, "--password-file", wrong))
    assert "refused" in line
    right = password_file(tmp_path / "right", "s3cret\n")
    done = deploy_cli(*push, "--password-file", right)
    assert done.returncode == 0, done.stderr
    with secured.subscriber("seqcast/deploy/lab", **login) as sub:
        [(_, payload)] = sub.collect(1, timeout=5)
    assert split_delivery(payload)[1] == bundle.read_bytes()
    status = ("status", "--settle", "0.2", *to)
    assert "refused" in one_line_error(deploy_cli(*status, "--password-file", wrong))
    secured.pub("seqcast/hub/status", '{"state": "online"}', 1, True, **login)
    listed = deploy_cli(*status, "--password-file", right, "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(d["client_id"], d["state"]) for d in json.loads(listed.stdout)] == [("hub", "online")]


def test_status_lists_every_device_from_retained_messages(broker: Broker) -> None:
    tag = uuid.uuid4().hex[:6]
    a, b, c = (f"dev-{tag}-{n}" for n in "abc")
    status = {"state": "online", "ts": 1.0, "counters": {}}
    broker.pub(f"seqcast/{a}/status", json.dumps(status), qos=1, retain=True)
    committed = {
        "event": "committed", "version": 2, "channel": "lab", "model_id": "tiny@0123456789ab",
        "reason": None, "time": 1760000000,
    }  # fmt: skip
    broker.pub(f"seqcast/{a}/deploy", json.dumps(committed), qos=1, retain=True)
    broker.pub(f"seqcast/{b}/status", json.dumps({"state": "offline"}), qos=1, retain=True)
    rolled = {**committed, "event": "rolled_back", "version": 3, "model_id": "tiny@ba9876543210",
              "reason": "non_finite"}  # fmt: skip
    broker.pub(f"seqcast/{b}/deploy", json.dumps(rolled), qos=1, retain=True)
    broker.pub(f"seqcast/{c}/deploy", b"\xffnot json", qos=1, retain=True)  # never breaks status
    to = ("--host", broker.host, "--port", str(broker.port))

    done = deploy_cli("status", "--json", *to)
    assert done.returncode == 0, done.stderr
    rows = {r["client_id"]: r for r in json.loads(done.stdout) if tag in r["client_id"]}
    assert set(rows) == {a, b}  # c's only message is not what a daemon publishes
    assert (rows[a]["state"], rows[a]["model_id"], rows[a]["version"], rows[a]["event"]) == (
        "online", "tiny@0123456789ab", 2, "committed",
    )  # fmt: skip
    assert (rows[b]["state"], rows[b]["version"], rows[b]["event"], rows[b]["reason"]) == (
        "offline", 3, "rolled_back", "non_finite",
    )  # fmt: skip

    table = deploy_cli("status", *to)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["client_id", "state", "model_id", "version", "event", "reason"]
    mine = [line.split() for line in lines if tag in line]
    assert mine == [
        [a, "online", "tiny@0123456789ab", "2", "committed", "-"],
        [b, "offline", "tiny@ba9876543210", "3", "rolled_back", "non_finite"],
    ]


def test_status_without_a_broker_is_one_line(tmp_path: Path) -> None:
    from broker import free_port

    line = one_line_error(deploy_cli("status", "--port", str(free_port())))
    assert "cannot reach MQTT broker" in line
