"""Small MQTT clients for tools (replay, demo, benchmarks): not used by the daemon itself."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from seqcast.edge.config import MqttConfig, TlsConfig
from seqcast.edge.mqtt.diagnose import diagnose, failure_text, probe, reason_of

log = logging.getLogger(__name__)


def _client(client_id: str | None, prefix: str) -> paho.Client:
    return paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"{prefix}-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv311,
    )


def _closed_before_connack(cfg: MqttConfig, reason: str) -> str:
    """Why the broker dropped a connection before its CONNACK, as the daemon says it: with TLS,
    one bounded probe finds a TLS failure (a TLS 1.3 broker rejects a client certificate only
    after the handshake)."""
    found = probe(cfg) if cfg.tls.enabled else None
    if found is not None:
        return failure_text(cfg, *found)[0]
    why = f"closed the connection before CONNACK ({reason})"
    return failure_text(cfg, "closed", why if cfg.tls.enabled else why + "; a TLS-only port?")[0]


class Publisher:
    """Connects once, publishes in order, and on `close` waits until the broker has everything.

    `username`/`password` log in; `tls` (implied by any of `ca_file`, `cert_file`, `key_file`)
    connects with TLS, verifying the broker against `ca_file` (else the system store) and, unless
    `insecure`, its host name. Any failure to connect (refused login, TLS, unreachable, no CONNACK
    within `connect_timeout` seconds) raises `ConnectionError` with one line naming the broker.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str | None = None,
        max_inflight: int = 1000,
        connect_timeout: float = 10.0,
        *,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        insecure: bool = False,
    ):
        where = f"{host}:{port}"
        ca, cert, key = (
            os.fspath(f) if f is not None else None for f in (ca_file, cert_file, key_file)
        )
        tls = tls or any(f is not None for f in (ca, cert, key))
        self._client = _client(client_id, "seqcast-pub")
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._client.connect_timeout = connect_timeout  # TCP connect and TLS handshake
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls:
            try:
                self._client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
            except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
                raise ConnectionError(
                    f"cannot load the TLS CA/certificate/key files: {reason_of(e)}"
                ) from None
            if insecure:
                self._client.tls_insecure_set(True)
        ca_path, cert_path, key_path = (Path(f) if f else None for f in (ca, cert, key))
        tls_cfg = TlsConfig(
            enabled=tls, ca_file=ca_path, cert_file=cert_path, key_file=key_path, insecure=insecure
        )
        settings = MqttConfig(host=host, port=port, tls=tls_cfg)  # for the diagnosis only
        answered = threading.Event()  # CONNACK, or the connection closed before it
        refused: list[ReasonCode] = []  # the CONNACK's reason
        closed: list[ReasonCode] = []  # why paho saw the connection go before a CONNACK

        def connected(c: paho.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
            if rc.is_failure and not answered.is_set():
                refused.append(rc)
            answered.set()

        def disconnected(c: paho.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
            if not answered.is_set():
                closed.append(rc)
                answered.set()

        self._client.on_connect = connected
        self._client.on_disconnect = disconnected
        deadline = time.monotonic() + connect_timeout
        try:
            self._client.connect(host, port, keepalive=60)
        except TimeoutError:
            step = "TCP connect or TLS handshake" if tls else "TCP connect"
            raise ConnectionError(
                f"cannot reach MQTT broker {where}: {step} timed out after {connect_timeout:g} s"
            ) from None
        except OSError as e:  # ssl.SSLError included; the daemon's diagnosis and wording
            raise ConnectionError(failure_text(settings, *diagnose(settings, e))[0]) from None
        self._client.loop_start()
        timely = answered.wait(max(0.0, deadline - time.monotonic()))
        answered.set()  # from now on the callbacks record nothing (our own disconnect included)
        self._client.on_disconnect = None
        if not timely or refused or closed:
            self._client.disconnect()
            self._client.loop_stop()
            if refused:
                raise ConnectionError(f"MQTT broker {where} refused the connection: {refused[0]}")
            if closed:
                raise ConnectionError(_closed_before_connack(settings, str(closed[0])))
            raise ConnectionError(
                f"MQTT broker {where} sent no CONNACK within {connect_timeout:g} s"
            )
        self._last: paho.MQTTMessageInfo | None = None
        self.sent = 0

    def publish(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        self._last = info
        self.sent += 1
        return info

    def subscribe(
        self,
        topics: list[str],
        on_message: Callable[[str, bytes, bool], None],
        qos: int = 1,
        timeout: float = 10.0,
    ) -> None:
        """Also listen: `on_message(topic, payload, retained)` from paho's thread. Returns once
        the broker has granted every topic; ConnectionError if it refuses or does not answer."""
        granted = threading.Event()
        refused: list[str] = []

        def message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
            try:
                on_message(msg.topic, bytes(msg.payload), bool(msg.retain))
            except Exception:  # a tool's callback must not kill paho's thread
                log.exception("message handler failed for %s", msg.topic)

        def subscribed(
            c: paho.Client, u: object, mid: int, codes: list[ReasonCode], p: object
        ) -> None:
            refused.extend(str(rc) for rc in codes if rc.is_failure)
            granted.set()

        self._client.on_message = message
        self._client.on_subscribe = subscribed
        rc, _ = self._client.subscribe([(t, qos) for t in topics])
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe failed: {paho.error_string(rc)}")
        if not granted.wait(timeout):
            raise ConnectionError(
                f"the broker did not answer the subscription within {timeout:g} s"
            )
        if refused:
            raise ConnectionError(f"the broker refused the subscription: {refused[0]}")

    def close(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if self._last is not None:
            self._last.wait_for_publish(timeout)
        # QoS 1/2: wait until nothing is in flight any more
        while self._client._out_messages and time.monotonic() < deadline:  # noqa: SLF001
            time.sleep(0.01)
        self._client.disconnect()
        self._client.loop_stop()


class Subscriber:
    """Calls `on_message(topic, payload)` from paho's thread for every message on `topic`."""

    def __init__(
        self,
        host: str,
        port: int,
        topic: str,
        on_message: Callable[[str, bytes], None],
        qos: int = 1,
        client_id: str | None = None,
    ):
        self._client = _client(client_id, "seqcast-sub")
        self._subscribed = threading.Event()

        def connected(c: paho.Client, u: object, f: object, rc: ReasonCode, p: object) -> None:
            if not rc.is_failure:
                c.subscribe(topic, qos=qos)

        def message(c: paho.Client, u: object, msg: paho.MQTTMessage) -> None:
            try:
                on_message(msg.topic, bytes(msg.payload))
            except Exception:  # a tool's callback must not kill paho's thread
                log.exception("message handler failed for %s", msg.topic)

        self._client.on_connect = connected
        self._client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self._client.on_message = message
        self._client.connect(host, port, keepalive=60)
        self._client.loop_start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
