"""Reply latency and idle cost of the running daemon (`parting run` in a subprocess).

Latency: a client's reply is APPENDed to INBOX over an open connection; the clock starts just
before the APPEND and stops when the message is committed in the store, seen by polling the
SQLite file read-only every POLL seconds. The same APPEND is also timed to the `* n EXISTS` of a
bare imapclient IDLE client on INBOX: Dovecot delays IDLE notices (~0.5 s), which is the floor
of any IDLE client, and both see the same APPEND, so their difference is parting's own cost.
After each reply the bench waits for the daemon to report the end of the cycle that reply woke
(sd_notify STATUS, through a NOTIFY_SOCKET we own), then a short random pause.

Idle cost: CPU seconds (utime + stime of the daemon process, from /proc) over a quiet window
with the daemon in IDLE and its default 60-second tick, scaled to 5 minutes.
"""

from __future__ import annotations

import math
import os
import queue
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import ROOT, unit_environment
from bench.corpus import OFFICE, Mail, _Writer

POLL = 0.002  # seconds between looks at the store
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class Notifications:
    """The daemon's sd_notify datagrams, on a socket of ours; `wait` for READY=1 or a STATUS."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(str(path))
        self.received: queue.Queue[tuple[float, str]] = queue.Queue()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.socket.recv(65536)
            except OSError:
                return
            self.received.put((time.perf_counter(), data.decode(errors="replace")))

    def wait(self, word: str, timeout: float, *, after: float = 0.0) -> float:
        """When the next datagram containing `word` arrived (ignoring those before `after`)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                when, text = self.received.get(timeout=remaining)
            except queue.Empty:
                break
            if word in text and when > after:
                return when
        raise TimeoutError(f"the daemon sent no {word} within {timeout} s")

    def drain(self) -> int:
        count = 0
        while not self.received.empty():
            self.received.get_nowait()
            count += 1
        return count

    def close(self) -> None:
        self.socket.close()
        self.path.unlink(missing_ok=True)


class BareIdle:
    """A plain imapclient IDLE on INBOX, recording when each `* n EXISTS` arrives."""

    def __init__(self, dovecot) -> None:
        self.client = dovecot.client()
        self.client.select_folder("INBOX", readonly=True)
        self.events: queue.Queue[tuple[float, int]] = queue.Queue()
        self.stop = threading.Event()
        self.client.idle()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self.stop.is_set():
            for response in self.client.idle_check(timeout=0.5):
                if len(response) >= 2 and response[1] == b"EXISTS":
                    self.events.put((time.perf_counter(), int(response[0])))

    def wait_exists(self, at_least: int, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                when, count = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if count >= at_least:
                return when
        raise TimeoutError(f"the bare IDLE client saw no EXISTS >= {at_least} within {timeout} s")

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=5)
        try:
            self.client.idle_done()
            self.client.logout()
        except Exception:  # noqa: BLE001 - closing a benchmark connection; nothing to save
            self.client.shutdown()


@dataclass
class Daemon:
    process: subprocess.Popen
    notifications: Notifications
    log: Path

    @classmethod
    def start(cls, config: Path, workdir: Path, tick: float = 60.0) -> Daemon:
        notifications = Notifications(workdir / "notify.sock")
        log = workdir / "daemon.log"
        env = {**unit_environment(), "NOTIFY_SOCKET": str(notifications.path), "PYTHONPATH": str(ROOT)}
        with open(log, "ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "daemon", "run", "--config", str(config),
                                        "--tick", str(tick)], cwd=ROOT, env=env, stdout=out, stderr=out)
        daemon = cls(process, notifications, log)
        try:
            notifications.wait("READY=1", timeout=300)
        except TimeoutError:
            daemon.stop()
            raise RuntimeError(f"the daemon did not get ready; its log:\n{log.read_text()[-3000:]}") from None
        return daemon

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime of all its threads

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.notifications.close()


def client_reply(request: Mail, writer: _Writer, number: int) -> tuple[bytes, str]:
    """A client's reply to one of our requests, dated now."""
    person = request.raw.split(b"\nTo: ", 1)[1].split(b"\n", 1)[0].decode()
    name, _, addr = person.rpartition(" <")
    addr = addr.rstrip(">") if addr else person
    subject = request.raw.split(b"\nSubject: ", 1)[1].split(b"\n", 1)[0].decode()
    domain = addr.rsplit("@", 1)[1]
    mid = f"<latency-{number}-{random.getrandbits(40):x}@{domain}>"
    raw = writer.message(sender=(name.strip('"'), addr), to=[("Example Ltd", OFFICE)], subject=f"Re: {subject}",
                         when=datetime.now(UTC), mid=mid, body="Thanks, here it is.", inbound=True,
                         in_reply_to=f"<{request.message_id}>", references=[f"<{request.message_id}>"])
    return raw.replace(b"\n", b"\r\n"), mid.strip("<>")


def _committed(database: Path, message_id: str, timeout: float) -> float:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if connection.execute("SELECT 1 FROM messages WHERE message_id = ?", (message_id,)).fetchone():
                return time.perf_counter()
            time.sleep(POLL)
    finally:
        connection.close()
    raise TimeoutError(f"{message_id} was not committed within {timeout} s")


def end_of_woken_cycle(notifications: Notifications, appended: float, timeout: float = 120.0) -> float:
    """When the daemon's cycle that an APPEND at `appended` woke ended: its first STATUS after the
    APPEND. Not the first after we saw the row committed: our poller sees the commit late on a
    loaded machine, possibly after the cycle's end (~10 ms after the commit), and the next STATUS
    is then the 60 s tick's, which once made the bench fail with "no STATUS= within 60 s". A
    cycle ends at least once per tick, so `timeout` (two ticks) is never the expected path."""
    return notifications.wait("STATUS=", timeout=timeout, after=appended)


def measure_replies(box, daemon: Daemon, database: Path, count: int, rng: random.Random) -> list[dict]:
    """`count` replies, one at a time; per reply: parting's and the bare client's latency."""
    requests = [m for m in box.mails if m.kind == "request"]
    writer = _Writer(rng)
    bare = BareIdle(box.dovecot)
    appender = box.dovecot.client()
    samples = []
    try:
        exists = int(appender.select_folder("INBOX", readonly=True)[b"EXISTS"])
        for number in range(count):
            raw, message_id = client_reply(rng.choice(requests), writer, number)
            daemon.notifications.drain()
            start = time.perf_counter()
            appender.append("INBOX", raw)
            exists += 1
            committed = _committed(database, message_id, timeout=30)
            seen = bare.wait_exists(exists, timeout=30)
            cycle_end = end_of_woken_cycle(daemon.notifications, start)
            samples.append({"parting": committed - start, "bare_idle": seen - start,
                            "cycle_after": cycle_end - committed})
            time.sleep(rng.uniform(0.05, 0.25))
    finally:
        appender.logout()
        bare.close()
    return samples


def measure_idle(daemon: Daemon, seconds: float, sample: float = 0.5) -> dict:
    """CPU seconds the daemon uses over `seconds` of quiet, sampled every `sample` seconds so that
    the tick cycles (each ends with a STATUS) and the upkeep between them are told apart."""
    time.sleep(2)  # let the cycle after the last reply end
    daemon.notifications.drain()
    samples = [(time.perf_counter(), daemon.cpu_seconds())]
    end = samples[0][0] + seconds
    while (now := time.perf_counter()) < end:
        time.sleep(min(sample, end - now))
        samples.append((time.perf_counter(), daemon.cpu_seconds()))
    ends = []
    while not daemon.notifications.received.empty():
        when, text = daemon.notifications.received.get_nowait()
        if "STATUS=" in text:
            ends.append(when)
    used, window = samples[-1][1] - samples[0][1], samples[-1][0] - samples[0][0]
    # A cycle's CPU shows in the samples up to ~1 s before its STATUS; everything else is upkeep
    # (IDLE rounds, NOOPs, the event loop).
    in_cycles = sum(b[1] - a[1] for a, b in zip(samples, samples[1:])
                    if any(a[0] - 1.0 <= when <= b[0] + 0.1 for when in ends))
    return {"cpu_seconds": used, "window_seconds": window, "cycles": len(ends),
            "per_5_minutes": used * 300 / window, "cycle_cpu_seconds": in_cycles,
            "per_cycle": in_cycles / len(ends) if ends else None,
            "upkeep_per_5_minutes": (used - in_cycles) * 300 / window}


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of fewer than 100 values is their maximum)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[rank - 1]
