"""The brokers the multi-process benchmarks start (bench/workers.py, bench/replica.py): a fresh
mosquitto or nats-server per run, with its process id for the CPU it uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Broker:
    engine: str
    host: str
    port: int
    pid: int
    nats_url: str | None = None  # nats-server's client port (JetStream), for `[state] replicate`

    def cpu_s(self) -> float:
        return proc_cpu_s(self.pid)


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def broker(engine: str, partitions: int) -> Iterator[Broker]:
    """A fresh mosquitto (LocalMosquitto, as bench/e2e.py) or nats-server (deploy/nats's config
    with `partitions`), unpinned."""
    if engine == "mosquitto":
        from seqcast.tools.localbroker import LocalMosquitto

        with LocalMosquitto() as m:
            assert m.proc is not None
            yield Broker(engine, m.host, m.port, m.proc.pid)
    else:
        from tests.nats_server import NatsServer

        with NatsServer(partitions=partitions) as n:
            assert n.pid is not None  # for the CPU it uses
            yield Broker(engine, n.host, n.port, n.pid, f"nats://{n.host}:{n.nats_port}")
