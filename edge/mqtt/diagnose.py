"""Why a connection attempt failed: paho's reconnect loop does not say, so we find out.

A TLS error paho hit is the answer; otherwise one bounded probe connects (and handshakes, with
TLS) the way paho does. Nothing here sends MQTT, and nothing ever formats a password.
"""

from __future__ import annotations

import logging
import re
import socket
import ssl
import time

from seqcast.edge.config import ConfigError, MqttConfig, TlsConfig

PROBE_TIMEOUT_S = 2.0  # the whole diagnostic connection, on paho's thread
ALERT_WAIT_S = 0.5  # after a handshake: TLS 1.3 brokers send a certificate rejection late
# TLS alerts a broker sends when it does not accept our client certificate
CERT_ALERT = re.compile(
    r"alert (unknown ca|bad certificate|unsupported certificate|certificate \w+)"
)


def reason_of(exc: BaseException) -> str:
    """An OSError in one line, without ssl's `[SSL: CODE]` tag and `_ssl.c:N` source location."""
    text = re.sub(r"^\[SSL(: \w+)?\] |^_ssl\.c:\d+: | \(_ssl\.c:\d+\)$", "", str(exc))
    return text or type(exc).__name__


def tls_context(s: TlsConfig) -> ssl.SSLContext:
    """The context paho's `tls_set` + `tls_insecure_set` build from the same settings."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, hostname checked
    if s.cert_file:
        ctx.load_cert_chain(s.cert_file, s.key_file)
    if s.ca_file:
        ctx.load_verify_locations(s.ca_file)
    else:
        ctx.load_default_certs()
    if s.insecure:  # like paho: the certificate is still verified, its host name is not
        ctx.check_hostname = False
    return ctx


def probe(s: MqttConfig, timeout: float = PROBE_TIMEOUT_S) -> tuple[str, str] | None:
    """Connect (and handshake, with TLS) as paho does: `("tcp"|"tls", reason)` for the step that
    failed, None when all went well. Bounded by `timeout`; sends nothing."""
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((s.host, s.port), timeout=timeout)
    except OSError as exc:
        return "tcp", reason_of(exc)
    with sock:
        if not s.tls.enabled:
            return None
        try:
            sock.settimeout(max(0.05, deadline - time.monotonic()))
            tls = tls_context(s.tls).wrap_socket(sock, server_hostname=s.host)  # handshakes
        except OSError as exc:  # ssl.SSLError included
            return "tls", reason_of(exc)
        with tls:
            tls.settimeout(max(0.05, min(ALERT_WAIT_S, deadline - time.monotonic())))
            try:
                closed = tls.recv(1) == b""
            except TimeoutError:  # the broker waits for our CONNECT: TLS is fine
                return None
            except OSError as exc:
                return "tls", reason_of(exc)
    return ("tls", "the broker closed the connection after the handshake") if closed else None


def diagnose(cfg: MqttConfig, exc: OSError | None) -> tuple[str, str]:
    """`(kind, reason)` of a failed connection attempt; kind is "tcp" or "tls".

    A TLS error paho hit is the answer. Otherwise, with TLS on, one probe tells a TCP failure
    from a TLS one (a plain-text broker resets the handshake, which paho reports as a reset).
    """
    if isinstance(exc, ssl.SSLError):
        return "tls", reason_of(exc)
    unambiguous = isinstance(exc, socket.gaierror | ConnectionRefusedError)  # no probe: DNS
    if exc is not None and (unambiguous or not cfg.tls.enabled):
        return "tcp", reason_of(exc)
    found = probe(cfg)
    if found is not None:
        return found
    return "tcp", reason_of(exc) if exc is not None else "failed (a test connection worked)"


def failure_text(cfg: MqttConfig, kind: str, reason: str) -> tuple[str, int]:
    """The one log line (and its level) for a failed attempt of `kind` "tcp", "tls" or "closed"."""
    where = f"{cfg.host}:{cfg.port}"
    if kind == "tls":
        if CERT_ALERT.search(reason):
            reason = f"the broker rejected the client certificate: {reason}"
        return f"TLS handshake with {where} failed: {reason}", logging.ERROR
    if kind == "closed":
        return f"MQTT broker {where} {reason}", logging.ERROR
    return f"cannot reach MQTT broker {where}: {reason}", logging.WARNING


# -- another client with our id ------------------------------------------------------------------

SESSION_TAKEN_OVER = 0x8E  # MQTT 5 DISCONNECT reason code
UNSPECIFIED_ERROR = 0x80  # what paho reports when the broker just closes the socket
TAKEOVER_WINDOW_S = 5.0
TAKEOVER_REPEATS = 3


def _reason_value(reason: object) -> object:
    """A paho `ReasonCode`'s number, an int as it is; anything else unchanged."""
    value = getattr(reason, "value", reason)
    return None if isinstance(value, bool) else value


def takeover_text(reason: object, client_id: str) -> str | None:
    """The one log line when a disconnect's MQTT 5 reason is "Session taken over" (0x8E), else
    None. `reason` is what paho hands `on_disconnect` (a `ReasonCode`), an int or a string."""
    if _reason_value(reason) != SESSION_TAKEN_OVER and str(reason) != "Session taken over":
        return None
    return (
        f"another client with id {client_id!r} took over the session "
        "(each device needs its own mqtt.client_id)"
    )


class TakeoverDetector:
    """Tells a session takeover from other disconnects, MQTT 3.1.1 included.

    With MQTT 5 a broker may say so (reason 0x8E; mosquitto does from 2.0.15). Otherwise (MQTT
    3.1.1, older brokers) it just closes the socket, and paho reports "Unspecified error". Two
    clients with one id then take turns: each connection the broker accepts is closed again
    within about a reconnect delay. After `repeats` such connections in a row, each closed by
    the broker within `window_s` of its CONNACK, every further one gives the "probably" line.

    Call `connected()` on each accepted CONNACK and `disconnected(reason)` on each disconnect
    the daemon did not ask for; `now` defaults to `time.monotonic()`.
    """

    def __init__(
        self,
        client_id: str,
        *,
        window_s: float = TAKEOVER_WINDOW_S,
        repeats: int = TAKEOVER_REPEATS,
    ) -> None:
        self.client_id = client_id
        self.window_s = window_s
        self.repeats = repeats
        self.streak = 0  # accepted connections in a row the broker closed within window_s
        self._since: float | None = None  # monotonic time of the current connection's CONNACK

    def connected(self, now: float | None = None) -> None:
        """The broker accepted a connection (CONNACK success)."""
        self._since = time.monotonic() if now is None else now

    def disconnected(self, reason: object = None, now: float | None = None) -> str | None:
        """A connection ended without us asking: the log line if it looks like a takeover."""
        since, self._since = self._since, None
        certain = takeover_text(reason, self.client_id)
        if certain is not None:
            self.streak += 1
            return certain
        now = time.monotonic() if now is None else now
        closed = reason is None or _reason_value(reason) == UNSPECIFIED_ERROR
        if since is None or not closed or now - since > self.window_s:
            self.streak = 0  # never accepted, a reason of its own, or it lasted: not a takeover
            return None
        self.streak += 1
        if self.streak < self.repeats:
            return None
        return (
            f"probably another client with id {self.client_id!r} took over the session: the "
            f"broker closed {self.streak} connections in a row within {self.window_s:g} s of "
            "accepting them (each device needs its own mqtt.client_id)"
        )


def check_tls(cfg: MqttConfig) -> None:
    """Load the CA, certificate and key now, so a bad file fails at start in one line."""
    if not cfg.tls.enabled:
        return
    try:
        tls_context(cfg.tls)
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        raise ConfigError(
            f"mqtt.tls: cannot load the CA/certificate/key files: {reason_of(e)}"
        ) from None
