"""Configure the daemon's paho client from `[mqtt]`: a `FastClient` when paho is the version it
was built for, else a plain `paho.Client`; the link never needs to know which."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from seqcast.edge.config import MqttConfig
from seqcast.edge.mqtt.client import FastClient, compatible

PROTOCOLS = {"3.1.1": paho.MQTTv311, "5": paho.MQTTv5}


def _paho_log(client: Any, userdata: Any, level: int, buf: str) -> None:
    _PAHO_LOG.debug("paho: %s", buf)  # paho's own chatter (one ERROR per retry) stays at DEBUG


def _paho_log_wanted(level: int) -> bool:
    return _PAHO_LOG.isEnabledFor(logging.DEBUG)


_PAHO_LOG = logging.getLogger("seqcast.edge.mqtt.link.paho")
# Outgoing QoS>0 messages paho may hold: unlimited, because a full queue could only drop a
# forecast; the daemon bounds what is pending instead (output.max_pending, backpressure).
MAX_QUEUED_MESSAGES = 0
MAX_INFLIGHT = 1000  # outgoing QoS>0 messages sent but not yet acknowledged


def build_client(
    s: MqttConfig,
    password: str | None,
    status_topic: str,
    factory: Callable[..., paho.Client] | None,
) -> paho.Client:
    """A paho client (a `FastClient` unless a factory is given) configured from `[mqtt]`, with the
    retained `offline` last will on `status_topic`; the caller sets the callbacks."""
    kwargs: dict[str, Any] = {"clean_session": s.clean_session} if s.protocol != "5" else {}
    kwargs.update(client_id=s.client_id, protocol=PROTOCOLS[s.protocol])
    kwargs.update(callback_api_version=CallbackAPIVersion.VERSION2, reconnect_on_failure=True)
    client = (factory or (FastClient if compatible() else paho.Client))(**kwargs)
    client.on_log = _paho_log
    if isinstance(client, FastClient):
        client.log_wanted = _paho_log_wanted  # lines _paho_log would drop are not even formatted
    client.suppress_exceptions = True  # belt and braces: the link's callbacks catch already
    client.will_set(status_topic, json.dumps({"state": "offline"}), qos=1, retain=True)
    if s.username is not None:
        client.username_pw_set(s.username, password)
    if s.tls.enabled:
        tls = s.tls
        files = (str(f) if f else None for f in (tls.ca_file, tls.cert_file, tls.key_file))
        ca, cert, key = files
        client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        if tls.insecure:
            client.tls_insecure_set(True)
    # paho annotates the delays as int; it only multiplies and compares them
    client.reconnect_delay_set(s.reconnect_min_s, s.reconnect_max_s)  # type: ignore[arg-type]
    client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
    client.manual_ack_set(True)  # inputs are acknowledged by the link's AckGate, after processing
    client.max_inflight_messages_set(MAX_INFLIGHT)
    return client


def wake_once(client: paho.Client) -> contextlib.AbstractContextManager[object]:
    """Publish a batch with one wake-up of the network thread (a plain paho client: a no-op)."""
    return client.wake_once() if isinstance(client, FastClient) else contextlib.nullcontext()


def connect_options(s: MqttConfig, receive_maximum: int = 65535) -> dict[str, Any]:
    """Keyword arguments of `connect_async` beyond host, port and keepalive (MQTT 5: session
    and flow control: the broker keeps at most `receive_maximum` unacknowledged QoS 1/2 messages
    in flight to us, which bounds the inbox)."""
    if s.protocol != "5":
        return {}
    options: dict[str, Any] = {"clean_start": s.clean_session}
    options["properties"] = props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = max(1, min(receive_maximum, 65535))
    if not s.clean_session:
        props.SessionExpiryInterval = s.session_expiry_s
    return options
