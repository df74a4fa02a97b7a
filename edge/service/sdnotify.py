"""The systemd notify protocol (sd_notify(3)) in a few lines of stdlib socket code.

Without ``$NOTIFY_SOCKET`` (not started by systemd, or not ``Type=notify``) every call is a no-op
that returns False, so the daemon calls these unconditionally. Send errors never raise.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def watchdog_interval_s(environ: Mapping[str, str] = os.environ) -> float | None:
    """How often to call `Notifier.watchdog()`: half of ``$WATCHDOG_USEC``, or None when off.

    None also when ``$WATCHDOG_PID`` is set to another process (the watchdog is not ours).
    """
    pid = environ.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2 / 1e6 if usec > 0 else None


class Notifier:
    """Sends state changes to the service manager over its AF_UNIX datagram socket."""

    def __init__(self, address: str | None) -> None:
        # A leading '@' names a Linux abstract socket: its real name starts with a NUL byte.
        if address and address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        address = environ.get("NOTIFY_SOCKET", "")
        if address and not address.startswith(("/", "@")):
            log.debug("NOTIFY_SOCKET=%r is not a unix socket path; notifications disabled", address)
            address = ""
        return cls(address)

    watchdog_interval_s = staticmethod(watchdog_interval_s)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, msg: str) -> bool:
        """Send one datagram; True when it was sent, False when disabled or on any error."""
        if self.address is None:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(msg.encode(), self.address)
        except OSError as e:
            log.debug("sd_notify %r to %r failed: %s", msg.split("=", 1)[0], self.address, e)
            return False
        return True

    def ready(self) -> bool:
        return self.notify("READY=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def reloading(self) -> bool:
        """Announce a reload; send `ready()` when it is done."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A one-line status shown by `systemctl status` (newlines become spaces)."""
        return self.notify("STATUS=" + " ".join(text.splitlines()))
