"""What every fault test needs: the daemon as a subprocess, looks at what the SMTP sink got, and
the audit of the database that says whether anything was lost, duplicated or left unrecorded.

The daemon runs as `python -m daemon --clock-file FILE run` on a file clock, so the test
moves business time by writing a file; PARTING_CRASH_AT (daemon/faults.py) makes it SIGKILL itself
at a named point. The database is only ever read here (read-only URI), except through the
`parting` command line, as a person would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from harness import daemon_command

from daemon.runtime.clock import FileClock, write_clock_file


class DaemonProcess:
    """`parting run` in a subprocess: its clock file, its log, read-only looks at its database."""

    def __init__(self, config: Path, workdir: Path, start: datetime, *, tick: float = 0.2) -> None:
        self.config = config
        self.clock_file = workdir / "clock"
        self.log = workdir / "daemon.log"
        self.database = Path(yaml.safe_load(config.read_text())["state"]["database"])
        self.tick = tick
        self.process: subprocess.Popen | None = None
        self.starts = 0
        write_clock_file(self.clock_file, start)

    @property
    def env(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment.pop("PARTING_CRASH_AT", None)
        environment.pop("NOTIFY_SOCKET", None)
        return environment

    def start(self, crash_at: str | None = None, *extra: str) -> None:
        assert not self.alive(), "the daemon is already running"
        env = {**self.env, **({"PARTING_CRASH_AT": crash_at} if crash_at else {})}
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            log.write(f"---- start {self.starts + 1} (crash at {crash_at or 'nothing'})\n".encode())
            self.process = subprocess.Popen(
                daemon_command(self.config, "--tick", str(self.tick), "--grace", "2", *extra, clock_file=self.clock_file),
                env=env, stdout=log, stderr=subprocess.STDOUT)
        self.starts += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM and a clean exit (0) within `timeout`."""
        if not self.alive():
            return
        # Not while the interpreter itself is still starting (before parting's code can catch a
        # signal at all): wait until the daemon says it runs, or has died.
        deadline = time.monotonic() + 15
        while (time.monotonic() < deadline and self.alive()
               and b"ready:" not in self.log.read_bytes()[self.log_offset:]):
            time.sleep(0.05)
        if not self.alive():
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the daemon did not stop within {timeout} s\n{self.tail()}") from None
        assert code == 0, f"the daemon exited {code} on SIGTERM\n{self.tail()}"

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
            self.process.wait()

    def signal(self, signum: int) -> None:
        assert self.alive(), self.tail()
        self.process.send_signal(signum)

    def run_once(self, timeout: float = 60) -> subprocess.CompletedProcess:
        """`parting run --once`: recover, catch up, decide and send what is due, exit."""
        out = subprocess.run(daemon_command(self.config, "--once", clock_file=self.clock_file), env=self.env, capture_output=True,
                             text=True, timeout=timeout)
        with open(self.log, "a") as log:
            log.write(f"---- run --once (exit {out.returncode})\n{out.stdout}{out.stderr}")
        assert out.returncode == 0, out.stdout + out.stderr
        return out

    def now(self) -> datetime:
        return FileClock(self.clock_file).now()

    def set_clock(self, when: datetime) -> None:
        write_clock_file(self.clock_file, when)

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else "(no log)"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def query(self, sql: str, params: Any = ()) -> list[tuple]:
        if not self.database.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True, timeout=10) as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # created but not yet migrated
                return []
            raise

    def scalar(self, sql: str, params: Any = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def events(self, kind: str | None = None) -> list[dict]:
        sql = "SELECT id, kind, client_id, draft_id, message_ids, data FROM events"
        rows = self.query(sql + (" WHERE kind = ?" if kind else "") + " ORDER BY id", [kind] if kind else [])
        return [{"id": r[0], "kind": r[1], "client_id": r[2], "draft_id": r[3],
                 "message_ids": json.loads(r[4] or "[]"), "data": json.loads(r[5] or "null") or {}} for r in rows]

    def cli(self, *args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "daemon", *args, "--config", str(self.config), "--json"],
                             env=self.env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)


def wait_until(predicate: Callable[[], Any], what: str, daemon: DaemonProcess | None = None,
               timeout: float = 30, interval: float = 0.1) -> Any:
    """Poll `predicate` until it is truthy; fail with the daemon's log if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if daemon is not None and daemon.process is not None and daemon.returncode is not None:
            raise AssertionError(f"the daemon exited ({daemon.returncode}) while waiting for {what}\n{daemon.tail()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n"
                                 + (daemon.tail() if daemon else ""))
        time.sleep(interval)


# ---------------------------------------------------------------------------------- the sink


def kind_of(mail) -> str | None:
    return mail.message.get("X-Parting-Kind")


def message_id_of(mail) -> str:
    return str(mail.message.get("Message-ID", "")).strip().strip("<>")


def by_kind(sink, kind: str, to: str | None = None) -> list:
    return [m for m in sink.messages if kind_of(m) == kind and (to is None or to in m.rcpt_tos)]


def is_reminder(mail) -> bool:
    return "Reminder:" in str(mail.message.get("Subject", ""))


def copies(sink) -> Counter:
    return Counter(message_id_of(m) for m in sink.messages)


# ---------------------------------------------------------------------------------- the audit


@dataclass
class Audit:
    """What looks at the database and the sink found: problems in words, and the two numbers the
    fault summary reports, each distinct problem counted once however often it was seen."""

    problems: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # distinct problem -> "loss" | "duplicate" | "wrong"

    def lost(self, what: str) -> None:
        self._add("loss", f"lost: {what}")

    def twice(self, what: str) -> None:
        self._add("duplicate", f"duplicate: {what}")

    def wrong(self, what: str) -> None:
        self._add("wrong", what)

    def _add(self, kind: str, text: str, context: str = "") -> None:
        self.problems.append(f"{context}{text}")
        self.kinds.setdefault(text, kind)

    @property
    def losses(self) -> int:
        return sum(1 for kind in self.kinds.values() if kind == "loss")

    @property
    def duplicates(self) -> int:
        return sum(1 for kind in self.kinds.values() if kind == "duplicate")

    def add(self, other: Audit, context: str = "") -> None:
        for text, kind in other.kinds.items():
            self._add(kind, text, context)


def audit(daemon: DaemonProcess, sink) -> Audit:
    """Invariants that hold at every moment, in particular right after a SIGKILL:
    the database is sound; nothing reached the SMTP server twice; every committed fact has its
    event (sent rows, drafts, deadlines, reminders, ladder steps, accepted replies) exactly once;
    no approval counts twice."""
    found = Audit()
    integrity = daemon.scalar("PRAGMA integrity_check")
    if integrity not in (None, "ok"):
        found.wrong(f"PRAGMA integrity_check: {integrity}")
    at_server = copies(sink)
    for message_id, count in at_server.items():
        if count > 1:
            found.twice(f"{count} copies of <{message_id}> at the SMTP server")
    releases = [m for m in sink.messages if kind_of(m) == "release"]
    if len(releases) > 1:
        found.wrong(f"{len(releases)} release emails at the SMTP server")
    events = daemon.events()
    by_kind_: dict[str, list[dict]] = {}
    for event in events:
        by_kind_.setdefault(event["kind"], []).append(event)

    sent_events = Counter(e["data"].get("outbox_id") for e in by_kind_.get("sent", []))
    for row_id, state, message_id, kind in daemon.query("SELECT id, state, message_id, kind FROM outbox"):
        if state == "sent":
            _once(found, sent_events[row_id], f"'sent' event of outbox row {row_id} ({kind})")
            if at_server[message_id] == 0:
                found.lost(f"outbox row {row_id} ({kind}) is sent but the SMTP server never got it")
        elif sent_events[row_id]:
            found.wrong(f"outbox row {row_id} ({kind}) is {state} but has a 'sent' event")
        if state == "failed":
            found.wrong(f"outbox row {row_id} ({kind}) failed")
    for (draft_id,) in daemon.query("SELECT id FROM drafts"):
        created = [e for e in by_kind_.get("draft_created", []) if e["draft_id"] == draft_id]
        _once(found, len(created), f"draft_created event of draft {draft_id}")
    for deadline_id, kind, state, reminded in daemon.query("SELECT id, kind, state, reminded_at FROM deadlines"):
        set_ = [e for e in by_kind_.get("deadline_set", []) if e["data"].get("deadline_id") == deadline_id]
        _once(found, len(set_), f"deadline_set event of deadline {deadline_id} ({kind})")
        due = [e for e in by_kind_.get("deadline_due", []) if e["data"].get("deadline_id") == deadline_id]
        if reminded:
            _once(found, len(due), f"deadline_due event of deadline {deadline_id}")
        closed = [e for e in by_kind_.get("deadline_closed", []) if e["data"].get("deadline_id") == deadline_id]
        if state == "done":
            _once(found, len(closed), f"deadline_closed event of deadline {deadline_id}")
    steps = Counter((e["client_id"], str(e["data"].get("episode")), e["data"].get("action"))
                    for e in by_kind_.get("ladder_step", []))
    refused_steps = {(e["client_id"], e["data"].get("action")) for e in by_kind_.get("mail_refused", [])}
    for client_id, episode, action in daemon.query("SELECT client_id, episode, action FROM ladder_steps"):
        if (client_id, action) not in refused_steps:
            _once(found, steps[(client_id, str(episode), action)], f"ladder_step event of {client_id}/{action}")
    decisions = Counter(mid for e in by_kind_.get("review_decision", []) + by_kind_.get("deadline_closed", [])
                        for mid in e["message_ids"])
    for message_id, outcome in daemon.query("SELECT message_id, outcome FROM processed_replies"):
        if outcome.startswith("accepted"):
            _once(found, decisions[message_id], f"decision event of the accepted reply <{message_id}>")
    processed = {mid for (mid,) in daemon.query(
        "SELECT message_id FROM processed_replies WHERE outcome LIKE 'accepted%'")}
    for message_id in decisions:
        if message_id not in processed:
            found.wrong(f"a decision event for <{message_id}>, which is not an accepted reply")
    for draft_id, version, person, _how, via in daemon.query(
            "SELECT draft_id, version, person, how, via_message_id FROM endorsements"):
        if via and via not in processed:
            found.wrong(f"{person}'s endorsement of draft {draft_id} v{version} rests on <{via}>,"
                        " which is not an accepted reply")
    used = Counter(mid for (mid,) in daemon.query(
        "SELECT used_by_message_id FROM tokens WHERE used_by_message_id IS NOT NULL"))
    for message_id in processed:
        if used[message_id] != 1:
            found.wrong(f"the accepted reply <{message_id}> used {used[message_id]} tokens")
    return found


def _once(found: Audit, count: int, what: str) -> None:
    if count == 0:
        found.lost(what)
    elif count > 1:
        found.twice(f"{count} x {what}")


def reconnect_delays(log_text: str) -> list[float]:
    """The backoff delays the daemon drew ("reconnecting in 1.23 s", "trying again in ...")."""
    return [float(x) for x in re.findall(r"(?:reconnecting|trying again) in ([0-9.]+) s", log_text)]


@dataclass(frozen=True)
class Reconnect:
    """One line where a folder watcher gave up on its connection: why, and the delay it drew."""

    role: str  # "inbox" or "sent"
    reason: str
    delay: float
    login_refused: bool  # a refused login waits the whole cap, by design, and is no retry of the schedule


_RECONNECT = re.compile(r"imap\.(\w+): \1: (.*); (?:reconnecting|trying again) in ([0-9.]+) s( \(.*\))?$", re.M)


def reconnects(log_text: str) -> list[Reconnect]:
    """Every watcher's reconnect lines, in the order logged."""
    return [Reconnect(role, reason, float(delay), bool(hint))
            for role, reason, delay, hint in _RECONNECT.findall(log_text)]


# The watchers' schedule (daemon/adapters/imap/watcher.py, Backoff): the n-th retry since a watcher
# was last healthy draws from [0, min(cap, base * 2**n)], with base 1 s and cap 5 minutes.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 300.0


def backoff_violations(log_text: str) -> list[str]:
    """Delays that break the schedule. Counting every retry since the daemon started is an upper
    bound of the watcher's own count (which only resets), so each delay must stay under it."""
    found, seen = [], Counter[str]()
    for line in reconnects(log_text):
        if line.login_refused:
            if line.delay != BACKOFF_CAP:
                found.append(f"{line.role}: a refused login waited {line.delay} s, not the cap")
            continue
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(seen[line.role], 64))
        if not 0 <= line.delay <= ceiling + 0.005:  # the log rounds to hundredths
            found.append(f"{line.role} retry {seen[line.role] + 1} drew {line.delay} s, over {ceiling:g} s")
        seen[line.role] += 1
    return found
