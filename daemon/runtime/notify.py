"""sd_notify without a dependency: one datagram per message to $NOTIFY_SOCKET.

The protocol (sd_notify(3)): newline-separated KEY=VALUE assignments in a single datagram to the
unix socket named by NOTIFY_SOCKET; a leading "@" names an abstract socket. Outside systemd the
variable is unset and every call is a no-op. Failures are swallowed: a monitoring hiccup must
never stop the daemon.
"""

from __future__ import annotations

import os
import socket


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self.address = address or None
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        if not self.address:
            return False
        payload = "\n".join(assignments).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(payload, self.address)
            return True
        except OSError:
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self, monotonic_usec: int) -> bool:
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def extend_start(self, seconds: float, status: str) -> bool:
        """More time to start (EXTEND_TIMEOUT_USEC: from now, for a long step before READY;
        systemd's watchdog only runs once the start is complete)."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", f"STATUS={status}")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: dict[str, str] | None = None) -> float | None:
    """Half of WATCHDOG_USEC in seconds, when the watchdog is on for this process."""
    env = environ if environ is not None else os.environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
