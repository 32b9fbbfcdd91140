#!/usr/bin/env python3
"""A container's stand-in for systemd's notify socket: healthy means parting said READY.

    notify_shim.py STATE_FILE -- COMMAND [ARGS...]

Runs COMMAND (in the image: `litestream replicate -exec "parting run ..."`) with NOTIFY_SOCKET
pointing at a datagram socket of its own and WATCHDOG_USEC set, so parting sends READY=1,
STATUS=..., WATCHDOG=1 and STOPPING=1 as it does under systemd. STATE_FILE holds the last
STATUS line; it exists only between READY=1 and STOPPING=1, and every message touches it. The
health check is then "the file exists and was touched within the watchdog period":
`notify_shim.py --check STATE_FILE`, which also catches a stuck event loop (no WATCHDOG=1).

SIGTERM and SIGINT are passed on to COMMAND; the shim exits with COMMAND's exit status.
The standard library only: it runs before (and beside) parting, in the same image.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

WATCHDOG_SECONDS = 60  # parting pings every half of it


def serve(state: Path, command: list[str]) -> int:
    folder = Path(tempfile.mkdtemp(prefix="parting-notify-"))
    address = str(folder / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    state.unlink(missing_ok=True)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_SECONDS * 1_000_000)}
    env.pop("WATCHDOG_PID", None)  # parting is COMMAND's child, not COMMAND itself
    child = subprocess.Popen(command, env=env)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda s, _f: child.send_signal(s))
    threading.Thread(target=_listen, args=(sock, state), daemon=True).start()
    code = child.wait()
    state.unlink(missing_ok=True)
    sock.close()
    os.unlink(address)
    folder.rmdir()
    return code if code >= 0 else 128 - code


def _listen(sock: socket.socket, state: Path) -> None:
    while True:
        fields = dict(line.split("=", 1) for line in sock.recv(4096).decode(errors="replace").splitlines()
                      if "=" in line)
        if fields.get("STOPPING") == "1":
            state.unlink(missing_ok=True)
        elif fields.get("READY") == "1" or state.exists():
            previous = state.read_text() if state.exists() else ""
            _write(state, fields.get("STATUS", previous))


def _write(state: Path, text: str) -> None:
    temp = state.with_name(state.name + ".tmp")
    temp.write_text(text)
    os.replace(temp, state)


def check(state: Path) -> int:
    """0 when parting is READY and its loop pinged within the watchdog period; 1 otherwise."""
    try:
        age = time.time() - state.stat().st_mtime
    except FileNotFoundError:
        print("not ready: parting has not said READY (or is stopping)")
        return 1
    if age > WATCHDOG_SECONDS:
        print(f"unhealthy: no word from parting for {age:.0f} s")
        return 1
    print(state.read_text().strip() or "ready")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--check":
        return check(Path(argv[1]))
    if len(argv) >= 3 and argv[1] == "--":
        return serve(Path(argv[0]), argv[2:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
