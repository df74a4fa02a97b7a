"""Shared fixtures. Stays light: no TensorFlow, no paho, nothing heavy at import time.

Broker fixtures start a real mosquitto on a free loopback port (see `tests/broker.py`). Without
mosquitto installed they skip, except under CI (the `CI` environment variable is set), where a
missing broker is a failure: CI must not silently skip the broker tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from broker import Broker, mosquitto_available


def _require_mosquitto() -> None:
    if mosquitto_available():
        return
    reason = "mosquitto is not installed (apt-get install mosquitto mosquitto-clients)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so broker tests must not be skipped", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    """One anonymous mosquitto for the whole session. Do not stop or restart it: use
    `fresh_broker` for that. Keep tests apart with `unique_topic` and unique client ids."""
    _require_mosquitto()
    with Broker() as b:
        yield b


@pytest.fixture
def fresh_broker() -> Iterator[Broker]:
    """A mosquitto of this test's own, free to stop, kill or restart."""
    _require_mosquitto()
    with Broker() as b:
        yield b


@pytest.fixture
def make_broker() -> Iterator[Callable[..., Broker]]:
    """Start brokers with their own config: `make_broker(extra_config, allow_anonymous=...,
    users={...})` (the arguments of `Broker`); all are stopped after the test."""
    _require_mosquitto()
    started: list[Broker] = []

    def make(*args: Any, **kwargs: Any) -> Broker:
        b = Broker(*args, **kwargs)
        started.append(b)
        return b.start()

    yield make
    for b in started:
        b.close()


@pytest.fixture
def unique_topic() -> str:
    """A per-test topic prefix such as `t/3f2a9c1d7e4b`, without a trailing slash."""
    return f"t/{uuid.uuid4().hex[:12]}"
