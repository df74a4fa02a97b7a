"""The buffered paho client the link runs on (`FastClient`), for paho 2.2 internals.

`FastClient` is a `paho.Client` (2.x) with batched socket I/O; the protocol code stays paho's.
Reads: one `recv(READ_SIZE)` feeds paho's parser for many packets (stock paho: a `select()` and
three `recv()`s per packet), then TCP_QUICKACK, so a broker that Nagles (mosquitto by default)
never waits 40 ms for our delayed ACK. Writes: queued packets go out in one `send()`. Wake-ups:
one socket-pair byte per `wake_once()` block, none for the network thread's own packets. Per
message: no Condition per info object unless someone waits, no filter-tree walk for
`on_message`, one shared PUBACK reason/properties pair for QoS 0 `on_publish`, and no DEBUG line
formatted that nobody keeps. Each override says which paho behaviour it keeps.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MessageType, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

_PUBLISH, _DISCONNECT = MessageType.PUBLISH, MessageType.DISCONNECT
_SUCCESS, _AGAIN = MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN
_INVALID = paho.mqtt_ms_invalid
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux

try:
    from paho.mqtt import _packet  # paho >= 2.2; older versions decode PUBLISH inline
except ImportError:  # pragma: no cover - depends on the installed paho
    _packet = None  # type: ignore[assignment]

# What FastClient relies on in paho's Client beyond its public API; `compatible()` checks it.
_PAHO_INTERNALS = (
    "_sock_recv",
    "_sock_send",
    "_sock_close",
    "_loop",
    "_packet_read",
    "_packet_queue",
    "_packet_write",
    "_loop_rc_handle",
    "_handle_publish",
    "_handle_on_message",
    "_easy_log",
    "_do_on_disconnect",
    "_call_socket_register_write",
    "_mid_generate",
    "_send_publish",
    "_send_puback",
    "_raise_for_invalid_topic",
)


class _Info(paho.MQTTMessageInfo):
    """`MQTTMessageInfo` that makes its Condition only for a caller that waits on it."""

    __slots__ = ()
    _make_lock = threading.Lock()  # guards the switch from "no condition" to one

    def __init__(self, mid: int) -> None:
        self.mid, self.rc, self._published, self._iterpos = mid, _SUCCESS, False, 0
        self._condition = None  # type: ignore[assignment]

    def _cond(self) -> threading.Condition:
        with self._make_lock:
            if self._condition is None:
                self._condition = threading.Condition()
            return self._condition

    def _set_as_published(self) -> None:
        with self._make_lock:
            cond = self._condition
            if cond is None:  # nobody waits (or will see anything but True)
                self._published = True
                return
        with cond:
            self._published = True
            cond.notify()

    def wait_for_publish(self, timeout: float | None = None) -> None:
        self._cond()
        super().wait_for_publish(timeout)

    def is_published(self) -> bool:
        self._cond()
        return super().is_published()


class _Message(paho.MQTTMessage):
    """`MQTTMessage` with an `_Info`: a received message's info is never waited on."""

    __slots__ = ()

    def __init__(self, mid: int = 0, topic: bytes = b"") -> None:
        self.timestamp, self.state, self.mid, self._topic = 0.0, _INVALID, mid, topic
        self.payload, self.qos, self.dup, self.retain, self.properties = b"", 0, False, False, None
        self.info = _Info(mid)


def compatible() -> bool:
    """Whether the installed paho has the internals FastClient overrides and uses."""
    info_slots = getattr(paho.MQTTMessageInfo, "__slots__", ())
    return (
        all(hasattr(paho.Client, name) for name in _PAHO_INTERNALS)
        and all(hasattr(paho, name) for name in ("time_func", "sockpair_data", "_encode_payload"))
        and {"_condition", "_published", "_iterpos"} <= set(info_slots)
    )


class FastClient(paho.Client):
    """`paho.Client` with batched socket reads and writes (plain TCP and TLS alike)."""

    READ_SIZE = 65536  # bytes asked of the socket per recv()
    MAX_PACKETS = 256  # packets handled per loop_read() while the buffer still holds bytes
    WRITE_SIZE = 65536  # bytes of queued packets joined into one send()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf, self._rpos = b"", 0  # received, not yet handed to paho's parser: _rbuf[_rpos:]
        self._rsock: Any = None  # the socket _rbuf came from
        self._quickack = _QUICKACK is not None  # off once a socket says it is not TCP
        self._deferring: int | None = None  # thread inside wake_once(): its packets wake once
        self._wake_owed = False
        self._puback: tuple[ReasonCode, Properties] | None = None  # what QoS 0 on_publish gets
        self.log_wanted: Callable[[int], bool] | None = None  # False: skip formatting that line
        super().__init__(*args, **kwargs)

    @contextlib.contextmanager
    def wake_once(self) -> Iterator[None]:
        """Packets queued by this thread inside the block wake the network thread once, at its
        end, instead of writing one byte to paho's socket pair per packet."""
        self._deferring = threading.get_ident()
        try:
            yield
        finally:
            self._deferring = None
            if self._wake_owed and self._sockpairW is not None:
                self._wake_owed = False
                with contextlib.suppress(BlockingIOError):
                    self._sockpairW.send(paho.sockpair_data)

    def _packet_queue(
        self, command: int, packet: bytes | bytearray, mid: int, qos: int, info: Any = None
    ) -> MQTTErrorCode:
        me, thread = threading.get_ident(), self._thread
        if thread is None or (me != self._deferring and me != thread.ident):
            return super()._packet_queue(command, packet, mid, qos, info)
        # no wake-up byte: the network thread's next select() sees want_write() itself, and a
        # wake_once() block writes one at its end
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        if me == self._deferring:
            self._wake_owed = True
        self._call_socket_register_write()
        return _SUCCESS

    def buffered(self) -> int:
        """Bytes received from the current socket and not parsed yet."""
        return len(self._rbuf) - self._rpos if self._rsock is self._sock else 0

    def _sock_recv(self, bufsize: int) -> bytes:
        buf, pos = self._rbuf, self._rpos
        if pos < len(buf) and self._rsock is self._sock:
            self._rpos = pos + bufsize
            return buf[pos : pos + bufsize]
        # empty (or from an older socket): one large read. paho's own _sock_recv maps
        # SSLWantReadError and friends to BlockingIOError exactly as for its small reads.
        data = super()._sock_recv(max(bufsize, self.READ_SIZE))
        if self._quickack:  # ACK now (Linux would delay it, and a Nagling peer waits for it)
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)  # type: ignore[union-attr]
            except AttributeError:  # a websocket wrapper
                self._quickack = False
            except OSError as exc:  # not TCP (unix socket): stop; a dying socket is no reason to
                self._quickack = exc.errno not in (errno.EOPNOTSUPP, errno.ENOPROTOOPT)
        if len(data) <= bufsize:  # all of it wanted (or b"" at EOF): nothing to keep
            self._rbuf, self._rpos, self._rsock = b"", 0, None
            return data
        self._rbuf, self._rpos, self._rsock = data, bufsize, self._sock
        return data[:bufsize]

    def _sock_close(self) -> None:
        self._rbuf, self._rpos, self._rsock = b"", 0, None  # bytes of a dead connection
        super()._sock_close()

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle at least what stock paho would, then go on while the buffer holds bytes."""
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        least = max(len(self._out_messages) + len(self._in_messages), 1)
        n = 0
        while n < least or (n < self.MAX_PACKETS and self.buffered()):
            if self._sock is None:
                return MQTTErrorCode.MQTT_ERR_NO_CONN
            rc = self._packet_read()
            if rc > 0:
                return self._loop_rc_handle(rc)
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                break
            n += 1
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _loop(self, timeout: float = 1.0) -> MQTTErrorCode:
        # Packets left in the buffer after MAX_PACKETS: select() would not see them, so handle
        # them first and do not let select() sleep while any remain.
        if self._sock is not None and self.buffered():
            rc = self.loop_read()
            if rc or self._sock is None:
                return rc
            if self.buffered():
                timeout = 0.0
        return super()._loop(timeout)

    def _packet_write(self) -> MQTTErrorCode:
        """paho's, but queued packets (up to WRITE_SIZE bytes) go out in one send()."""
        out = self._out_packet
        while out:
            batch: list[Any] = []
            size = 0
            while out and size < self.WRITE_SIZE:
                pkt = out.popleft()
                batch.append(pkt)
                size += pkt["to_process"]
                if pkt["command"] & 0xF0 == _DISCONNECT:
                    break  # the socket closes after it
            data = b"".join([p["packet"][p["pos"] :] if p["pos"] else p["packet"] for p in batch])
            sent, rc = 0, _SUCCESS
            try:
                sent = self._sock_send(data)
            except (AttributeError, ValueError):
                pass
            except BlockingIOError:  # the retry starts with the same packets: TLS needs that
                rc = _AGAIN
            except OSError as err:
                self._easy_log(paho.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                rc = MQTTErrorCode.MQTT_ERR_CONN_LOST
            if sent <= 0:  # nothing went out: all of it stays queued, in order
                out.extendleft(reversed(batch))
                return rc
            error: Exception | None = None
            closed = False
            for i, pkt in enumerate(batch):
                take = min(sent, pkt["to_process"])
                pkt["to_process"] -= take
                pkt["pos"] += take
                sent -= take
                if pkt["to_process"]:  # the rest goes in the next send()
                    out.extendleft(reversed(batch[i:]))
                    break
                try:
                    closed = self._packet_sent(pkt)
                except Exception as exc:  # a callback raised (suppress_exceptions off): later
                    error, closed = error or exc, False
                if closed:  # a DISCONNECT went out (the last packet of the batch)
                    break
            if error is not None:
                raise error
            if closed:
                return _SUCCESS
        with self._msgtime_mutex:
            self._last_msg_out = paho.time_func()
        return _SUCCESS

    def _packet_sent(self, pkt: Any) -> bool:
        """What paho does once a packet is written; True for a DISCONNECT."""
        command = pkt["command"] & 0xF0
        if command == _PUBLISH and pkt["qos"] == 0:
            on_publish: Any = self.on_publish  # v1 or v2 signature
            if on_publish:
                with self._in_callback_mutex:
                    try:
                        if self._callback_api_version == CallbackAPIVersion.VERSION1:
                            on_publish(self, self._userdata, pkt["mid"])
                        else:
                            if self._puback is None:  # paho makes a new pair per message
                                self._puback = (
                                    ReasonCode(PacketTypes.PUBACK),
                                    Properties(PacketTypes.PUBACK),  # type: ignore[no-untyped-call]
                                )
                            on_publish(self, self._userdata, pkt["mid"], *self._puback)
                    except Exception as err:
                        self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_publish: %s", err)
                        if not self.suppress_exceptions:
                            raise
            if pkt["info"] is not None:
                pkt["info"]._set_as_published()
        elif command == _DISCONNECT:
            with self._msgtime_mutex:
                self._last_msg_out = paho.time_func()
            self._do_on_disconnect(packet_from_broker=False, v1_rc=_SUCCESS)
            self._sock_close()
            state = paho._ConnectionState  # type: ignore[attr-defined]  # paho 2.2 internals
            if self._state == state.MQTT_CS_DISCONNECTING:
                self._state = state.MQTT_CS_DISCONNECTED
            return True
        return False

    def publish(
        self,
        topic: str,
        payload: Any = None,
        qos: int = 0,
        retain: bool = False,
        properties: Any = None,
    ) -> paho.MQTTMessageInfo:
        """paho's, but a QoS 0 message's info makes no Condition unless someone waits on it."""
        if qos != 0 or self._protocol == paho.MQTTv5:
            return super().publish(topic, payload, qos, retain, properties)
        if topic is None or len(topic) == 0:
            raise ValueError("Invalid topic.")
        topic_bytes = topic.encode("utf-8")
        self._raise_for_invalid_topic(topic_bytes)
        local_payload = paho._encode_payload(payload)
        if len(local_payload) > 268435455:
            raise ValueError("Payload too large.")
        info = _Info(self._mid_generate())
        info.rc = self._send_publish(info.mid, topic_bytes, local_payload, 0, retain, False, info)
        return info

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's for MQTT 3.1.1 QoS 0 and 1 (without DEBUG logging), with a lighter message."""
        packet, wanted = self._in_packet, self.log_wanted
        if (
            _packet is None
            or self._protocol == paho.MQTTv5
            or packet["command"] & 0x06 >= 0x04
            or wanted is None
            or wanted(paho.MQTT_LOG_DEBUG)
        ):
            return super()._handle_publish()  # MQTT 5, QoS 2 (or 3), an older paho, DEBUG on
        r = _packet.decode_publish(packet["command"], packet["packet"], self._protocol)
        message = _Message(r.mid, r.topic)
        message.dup, message.qos, message.retain = r.dup, r.qos, r.retain
        message.payload = r.payload
        message.timestamp = paho.time_func()
        self._handle_on_message(message)
        if r.qos == 0 or self._manual_ack:
            return _SUCCESS
        return self._send_puback(r.mid)

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        if self._on_message_filtered._root._children:  # message_callback_add() was used
            super()._handle_on_message(message)
            return
        on_message = self.on_message  # no filters to match: straight to on_message
        if on_message:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(paho.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise

    def _easy_log(self, level: Any, fmt: str, *args: Any) -> None:
        # paho formats a line per packet for on_log; skip that when the line would be dropped
        wanted = self.log_wanted
        if wanted is not None and self._logger is None and not wanted(level):
            return
        super()._easy_log(level, fmt, *args)
