"""Run the real daemon against the fixture servers: a config writer and an in-process runner.

`write_config` lays down a config, the secret files and a database path in a folder, pointing
at a DovecotServer and an SmtpSink on loopback. `RunningDaemon` runs `daemon.runtime.service.Service`
in the test's event loop with a ManualClock, so simulated days pass by `advance` (no sleeps).
For signal and crash tests, `daemon_command` gives the argv to run it as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mailfactory as mf
import yaml

from daemon.adapters.store import Store
from daemon.runtime.clock import ManualClock

TOKEN_KEY = "k" * 48
CLIENTS = [
    {"id": "acme", "name": "Acme Ltd", "contact": "Jane Doe", "addresses": ["jane@acme.example"],
     "domains": ["acme.example"], "owner": "alice", "phone": "+44 20 7946 0000", "timezone": "Europe/London"},
    {"id": "globex", "name": "Globex Corporation", "contact": "Hank Scorpio", "addresses": ["hank@globex.example"],
     "domains": ["globex.example"], "owner": "alice"},
]


def write_config(folder: Path, dovecot: Any, sink: Any, *, clients: list[dict] | None = None,
                 policy: dict | None = None, review: dict | None = None, extra: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "imap-password").write_text(dovecot.password + "\n")
    (folder / "token-key").write_text(TOKEN_KEY + "\n")
    for name in ("imap-password", "token-key"):
        os.chmod(folder / name, 0o600)
    config: dict[str, Any] = {
        "company": {"name": "Example Ltd"},
        "mailbox": {
            "address": "office@example.com",
            "imap": {"host": "127.0.0.1", "port": dovecot.port, "security": "none", "username": dovecot.user,
                     "password_file": str(folder / "imap-password"), "lookback": "365 days",
                     "timeouts": {"connect": "5 seconds", "read": "30 seconds"}},
            "smtp": {"host": "127.0.0.1", "port": sink.port if sink else 2525, "security": "none",
                     "timeouts": {"connect": "5 seconds", "data": "20 seconds"}, "max_attempts": 3},
            "append_to_sent": True,
        },
        "state": {"database": str(folder / "parting.db")},
        "people": [{"id": "alice", "name": "Alice Smith", "email": "alice@example.com"},
                   {"id": "bob", "name": "Bob Jones", "email": "bob@example.com"},
                   {"id": "carol", "name": "Carol White", "email": "carol@example.com"}],
        "clients": clients if clients is not None else CLIENTS,
        "working_hours": {"timezone": "Europe/London", "days": ["mon", "tue", "wed", "thu", "fri"],
                          "start": "09:00", "end": "17:30",
                          "holidays": {"country": "GB", "subdivision": "ENG"}},
        "policy": {"expects_reply": "questions", "ignored_after": "3 business days",
                   "unresponsive": {"ignored_messages": 3, "within": "60 days", "or_silent_for": "45 days"},
                   "ladder": [{"after_ignored": 1, "action": "nudge"}, {"after_ignored": 2, "action": "notify_owner"},
                              {"after_ignored": 3, "action": "draft_release"}],
                   **(policy or {})},
        "review": {"reviewers": ["bob"], "approvals_required": 1, "token_ttl": "72 hours",
                   "authserv_id": "mx.example.com", "require_authentication": True, "send_delay": "10 minutes",
                   "token_key_file": str(folder / "token-key"), **(review or {})},
        "followup": {"phone_call_after": "24 hours", "retrospective_after": "7 days"},
        **(extra or {}),
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


class RunningDaemon:
    """The real Service in this event loop; `advance` moves its clock and wakes it."""

    def __init__(self, config: Path, start: datetime, *, tick: float = 0.2) -> None:
        from daemon.runtime.service import Service

        self.config = config
        self.clock = ManualClock(start)
        self.service = Service(config, clock=self.clock, tick=tick)
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> RunningDaemon:
        self.task = asyncio.create_task(self.service.run(install_signals=False))
        await self.wait_for(lambda: self.service.cycles > 0, timeout=20, what="the first cycle")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> int | None:
        if self.task is None:
            return None
        self.service.stop.set()
        try:
            return await asyncio.wait_for(self.task, timeout=30)
        finally:
            self.task = None

    @property
    def store(self) -> Store:
        return self.service.ctx.store

    async def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))
        await self.settle()

    async def settle(self) -> None:
        """Let the daemon finish a full cycle at the current clock."""
        seen = self.service.cycles
        self.service.wake.set()
        await self.wait_for(lambda: self.service.cycles >= seen + 2, timeout=20, what="two cycles")

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 10, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task is not None and self.task.done():
                self.task.result()  # raise what killed it
                raise AssertionError(f"the daemon stopped while waiting for {what}")
            value = predicate()
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def daemon_command(config: Path, *args: str, clock_file: Path | None = None) -> list[str]:
    """`parting run` in a subprocess; on the test clock (the hidden --clock-file) when `clock_file` is given."""
    clock = ["--clock-file", str(clock_file)] if clock_file else []
    return [sys.executable, "-m", "daemon", *clock, "run", "--config", str(config), *args]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# ---- the story most end-to-end tests start from ------------------------------------------------

START = utc(2026, 11, 2, 10, 0)  # Monday


def seed_history(dovecot) -> dict[str, str]:
    """acme ignores three requests over three weeks (one answered only by an out-of-office);
    globex answers its request the next day."""
    mids = {}
    for n, day in enumerate((5, 12, 19), start=1):
        raw, mids[f"acme{n}"] = mf.request("jane@acme.example", f"Signed form {n}?", utc(2026, 10, day, 10), f"acme-req-{n}")
        mf.deliver(dovecot, "Sent", raw)
    raw, mids["ooo"] = mf.out_of_office("jane@acme.example", mids["acme1"], "Signed form 1?", utc(2026, 10, 5, 10, 5), "acme-ooo")
    mf.deliver(dovecot, "INBOX", raw)
    raw, mids["globex"] = mf.request("hank@globex.example", "Invoice address?", utc(2026, 10, 12, 10), "globex-req")
    mf.deliver(dovecot, "Sent", raw)
    raw, _ = mf.reply("hank@globex.example", mids["globex"], "Invoice address?", utc(2026, 10, 13, 9), "globex-rep")
    mf.deliver(dovecot, "INBOX", raw)
    return mids


def by_kind(sink, kind: str, to: str | None = None) -> list:
    return [m for m in sink.messages if m.message.get("X-Parting-Kind") == kind
            and (to is None or to in m.rcpt_tos)]


async def reply_to_review(daemon, dovecot, review, person_email: str, text: str, tag: str, **kw) -> None:
    raw, _ = mf.staff_reply(person_email, review.data, text, daemon.clock.now(), tag, **kw)
    mf.deliver(dovecot, "INBOX", raw)
