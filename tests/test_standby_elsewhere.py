"""`[state] replicate` with real daemons (issue 14): a partition's worker is SIGKILLed mid-replay
and its standby starts on *another host*: an empty state directory of its own, the same client
id. With the state copy in NATS JetStream it resumes where the worker stopped (0 lost, 0 wrong
against one daemon on mosquitto); without it, the same standby starts cold and loses forecasts
or publishes wrong ones (what the copy is for)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker import free_port
from tests.daemon_harness import DaemonProcess
from tests.nats_server import NatsServer
from tests.test_partitioned import (  # noqa: F401  (fixtures)
    kill_and_replace,
    nats,
    single_daemon,
    worker_config,
)

pytestmark = [pytest.mark.broker, pytest.mark.nats, pytest.mark.tflite, pytest.mark.slow]


@pytest.mark.parametrize("replicated", [True, False], ids=["with-copy", "without-copy"])
def test_a_standby_on_another_host_resumes_from_the_copy_in_nats(
    tmp_path: Path,
    nats: NatsServer,  # noqa: F811
    small_bundle: Path,
    single_daemon: dict[str, list],  # noqa: F811
    replicated: bool,
) -> None:
    # checkpoints every 0.3 s: the copy holds snapshots and outboxes as well as the journal
    state: dict = {"snapshot_interval_s": 0.3}
    if replicated:
        state["replicate"] = [f"nats://{nats.host}:{nats.nats_port}"]
    config = worker_config(tmp_path / "host-a", nats, small_bundle, state=state)
    elsewhere = worker_config(tmp_path / "host-b", nats, small_bundle, state=state)
    lost, wrong, log = kill_and_replace(nats, small_bundle, single_daemon, config, elsewhere)
    standby_state = tmp_path / "host-b" / "state" / "partition-1"
    if replicated:
        assert (lost, wrong) == (0, 0), log
        assert "state from the NATS copy" in log, log
        assert "restored" in log or "replayed" in log, log
    else:
        assert lost + wrong > 0, "a cold standby cannot match: the test would prove nothing"
    assert standby_state.is_dir()


def test_nats_unreachable_at_start_is_one_line_and_exit_2(
    tmp_path: Path,
    nats: NatsServer,  # noqa: F811  (the MQTT side is up; only the state copy is not)
    small_bundle: Path,
) -> None:
    nowhere = f"nats://127.0.0.1:{free_port()}"
    config = worker_config(tmp_path, nats, small_bundle, state={"replicate": [nowhere]})
    daemon = DaemonProcess.start(config, args=("--partition", "0"))
    try:
        assert daemon.proc.wait(90) == 2, daemon.log()
    finally:
        daemon.kill()
    last = [line for line in daemon.log().splitlines() if line.startswith("seqcast-edge")][-1]
    assert last.startswith(f"seqcast-edge: error: NATS {nowhere}: "), daemon.log()
    assert "Traceback" not in daemon.log()
