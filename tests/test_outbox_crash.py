"""SIGKILL at each step of sending a release, restart, and check the promise: the sink holds exactly
one copy, or the outbox row is 'uncertain', shown by `parting outbox`, and waits for a person.

The daemon runs as a subprocess on a file clock (the hidden --clock-file); PARTING_CRASH_AT names
the point where it kills itself. `after_claim.release` aims at the release only (see
flows/sending.py); `after_reply_committed:2` is the second accepted review reply.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import mailfactory as mf
import pytest
import yaml
from harness import START, by_kind, daemon_command, seed_history, write_config

from daemon.runtime.clock import write_clock_file

pytestmark = pytest.mark.integration

OWNER, COLLEAGUE = "alice@example.com", "bob@example.com"
SEND_TIME = START + timedelta(minutes=11)  # past the 10-minute send_delay


class DaemonProcess:
    """`parting run` in a subprocess, its clock file, its log, and read-only looks at its database."""

    def __init__(self, config: Path, workdir: Path) -> None:
        self.config = config
        self.clock = workdir / "clock"
        self.log = workdir / "daemon.log"
        self.database = Path(yaml.safe_load(config.read_text())["state"]["database"])
        self.process: subprocess.Popen | None = None
        write_clock_file(self.clock, START)

    @property
    def env(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment.pop("PARTING_CRASH_AT", None)
        return environment

    def start(self, crash_at: str | None = None) -> None:
        env = {**self.env, **({"PARTING_CRASH_AT": crash_at} if crash_at else {})}
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(daemon_command(self.config, "--tick", "0.2", "--grace", "2", clock_file=self.clock), env=env,
                                            stdout=log, stderr=subprocess.STDOUT)

    def killed(self, timeout: float = 30) -> None:
        """Wait for the crash point to fire."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the crash point never fired\n{self.tail()}") from None
        assert code == -signal.SIGKILL, f"exit {code}, not SIGKILL\n{self.tail()}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Not while the interpreter itself is still starting (before any of parting's code can
            # catch a signal): wait for the daemon to say it runs; a SIGTERM after that is graceful.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and b"ready:" not in self.log.read_bytes()[self.log_offset:]:
                time.sleep(0.05)
            self.process.send_signal(signal.SIGTERM)
            try:
                assert self.process.wait(timeout=30) == 0, self.tail()
            finally:
                if self.process.poll() is None:
                    self.process.kill()

    def run_once(self) -> None:
        """`parting run --once`: recover, catch up, decide and send everything due, then exit."""
        out = subprocess.run(daemon_command(self.config, "--once", clock_file=self.clock), env=self.env, capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr

    def set_clock(self, when) -> None:
        write_clock_file(self.clock, when)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"

    def query(self, sql: str, params=()) -> list[tuple]:
        if not self.database.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
                return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # created but not yet migrated
            return []

    def release(self) -> tuple | None:
        """(id, state, attempts, message_id) of the release's outbox row."""
        rows = self.query("SELECT id, state, attempts, message_id FROM outbox WHERE kind = 'release'")
        return rows[0] if rows else None

    def cli(self, *args: str) -> dict:
        out = subprocess.run([sys.executable, "-m", "daemon", *args, "--config", str(self.config), "--json"],
                             env=self.env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        return json.loads(out.stdout)


def wait_until(predicate, what: str, daemon: DaemonProcess, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if daemon.process is not None and daemon.process.poll() is not None:
            raise AssertionError(f"the daemon exited ({daemon.process.returncode}) waiting for {what}\n{daemon.tail()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{daemon.tail()}")


def approve(daemon: DaemonProcess, dovecot, sink) -> None:
    """Owner, then colleague, reply APPROVE to their review emails."""
    for person, tag in ((OWNER, "alice-approve"), (COLLEAGUE, "bob-approve")):
        [review] = wait_until(lambda person=person: by_kind(sink, "review", person), f"the review email to {person}", daemon)
        raw, _ = mf.staff_reply(person, review.data, "APPROVE", START, tag)
        mf.deliver(dovecot, "INBOX", raw)


def releases(sink) -> list:
    return by_kind(sink, "release", "jane@acme.example")


def sent_copies(dovecot, message_id: str) -> int:
    return sum(f"<{message_id}>".encode() in raw for raw in dovecot.fetch_all("Sent"))


def integrity(daemon: DaemonProcess) -> str:
    return daemon.query("PRAGMA integrity_check")[0][0]


@pytest.fixture
def daemon(tmp_path, dovecot, smtp_sink):
    process = DaemonProcess(write_config(tmp_path / "parting", dovecot, smtp_sink), tmp_path)
    seed_history(dovecot)
    yield process
    if process.process is not None and process.process.poll() is None:
        process.process.kill()
        process.process.wait()


def test_killed_right_after_the_approval_and_its_outbox_row_commit(daemon, dovecot, smtp_sink):
    daemon.start(crash_at="after_reply_committed:2")
    approve(daemon, dovecot, smtp_sink)
    daemon.killed()
    assert daemon.release()[1] == "queued", "the approval and the release's row committed together"

    daemon.start()
    daemon.set_clock(SEND_TIME)
    wait_until(lambda: daemon.release()[1] == "sent", "the release sent after the restart", daemon)
    daemon.stop()
    assert len(releases(smtp_sink)) == 1
    assert sent_copies(dovecot, daemon.release()[3]) == 1
    assert integrity(daemon) == "ok"


@pytest.mark.parametrize("point, copies_at_crash, after_restart", [
    ("after_claim.release", 0, "uncertain"),  # marked sending, nothing transmitted, nothing in Sent
    ("after_smtp_before_sent.release", 1, "uncertain"),  # the server has it, Sent does not: a person decides
    ("after_copy_before_sent.release", 1, "sent"),  # found in Sent by its Message-ID
    ("after_sent.release", 1, "sent"),  # nothing left to do
])
def test_killed_while_sending_the_release_never_yields_two_copies(daemon, dovecot, smtp_sink, point,
                                                                    copies_at_crash, after_restart):
    daemon.start(crash_at=point)
    approve(daemon, dovecot, smtp_sink)
    wait_until(lambda: daemon.release(), "the release in the outbox", daemon)
    daemon.set_clock(SEND_TIME)
    daemon.killed()
    row_id, state, attempts, message_id = daemon.release()
    assert len(releases(smtp_sink)) == copies_at_crash
    assert state == ("sent" if point == "after_sent.release" else "sending")

    daemon.start()
    wait_until(lambda: daemon.release()[1] == after_restart, f"the release {after_restart} after the restart", daemon)
    listed = {row["id"]: row for row in daemon.cli("outbox")["rows"]}
    assert listed[row_id]["state"] == after_restart
    if after_restart == "uncertain":
        notice = wait_until(lambda: by_kind(smtp_sink, "send-failed", OWNER), "the owner told", daemon)
        assert notice[0].message["Subject"].startswith("Perhaps not sent")
    else:
        assert daemon.query("SELECT state FROM drafts")[0][0] == "sent"
        assert {k for (k,) in daemon.query("SELECT kind FROM deadlines WHERE state = 'open'")} == {
            "phone_call", "retrospective"}, "the follow-up starts even when the crash came right after the send"
        assert sent_copies(dovecot, message_id) == 1
    daemon.stop()
    daemon.set_clock(SEND_TIME + timedelta(hours=6))
    daemon.run_once()  # a full cycle hours later: a row that were to be resent would go now
    assert len(releases(smtp_sink)) == copies_at_crash, "nothing is sent again without a person"
    assert daemon.release()[1] == after_restart
    assert integrity(daemon) == "ok"


def test_an_uncertain_release_leaves_again_only_when_a_person_resends_it(daemon, dovecot, smtp_sink):
    daemon.start(crash_at="after_claim.release")
    approve(daemon, dovecot, smtp_sink)
    wait_until(lambda: daemon.release(), "the release in the outbox", daemon)
    daemon.set_clock(SEND_TIME)
    daemon.killed()
    daemon.start()
    row_id = wait_until(lambda: daemon.release()[1] == "uncertain" and daemon.release()[0], "uncertain", daemon)
    assert releases(smtp_sink) == []

    decided = daemon.cli("outbox", "resend", str(row_id))
    assert (decided["from_state"], decided["state"]) == ("uncertain", "queued")
    wait_until(lambda: daemon.release()[1] == "sent", "the resent release", daemon)
    daemon.stop()
    assert len(releases(smtp_sink)) == 1
    [(data,)] = daemon.query("SELECT data FROM events WHERE kind = 'outbox_resend'")
    assert json.loads(data)["outbox_id"] == row_id


def test_an_uncertain_release_a_person_cancels_is_never_sent_again(daemon, dovecot, smtp_sink):
    daemon.start(crash_at="after_smtp_before_sent.release")
    approve(daemon, dovecot, smtp_sink)
    wait_until(lambda: daemon.release(), "the release in the outbox", daemon)
    daemon.set_clock(SEND_TIME)
    daemon.killed()
    daemon.start()
    row_id = wait_until(lambda: daemon.release()[1] == "uncertain" and daemon.release()[0], "uncertain", daemon)

    decided = daemon.cli("outbox", "cancel", str(row_id))
    assert (decided["from_state"], decided["state"]) == ("uncertain", "cancelled")
    daemon.stop()
    daemon.set_clock(SEND_TIME + timedelta(days=1))
    daemon.run_once()
    assert len(releases(smtp_sink)) == 1, "the one copy the server took before the crash, and no other"
    assert daemon.query("SELECT count(*) FROM events WHERE kind = 'outbox_cancel'")[0][0] == 1


def test_in_dry_run_a_row_whose_eml_was_written_before_the_crash_counts_as_sent(tmp_path, dovecot, smtp_sink):
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    config = write_config(tmp_path / "parting", dovecot, smtp_sink,
                          extra={"mode": "dry_run", "dry_run": {"folder": str(outgoing)}})
    daemon = DaemonProcess(config, tmp_path)
    seed_history(dovecot)
    daemon.start(crash_at="after_smtp_before_sent.review")  # the owner's review .eml is written, then SIGKILL
    try:
        daemon.killed()
        [(row_id, message_id, state)] = daemon.query("SELECT id, message_id, state FROM outbox WHERE kind = 'review'")
        assert state == "sending" and (outgoing / f"{message_id}.eml").exists()
        daemon.run_once()
    finally:
        if daemon.process.poll() is None:
            daemon.process.kill()
    assert daemon.query("SELECT state FROM outbox WHERE id = ?", [row_id])[0][0] == "sent"
    assert not daemon.query("SELECT id FROM outbox WHERE state IN ('sending', 'uncertain', 'failed')")
    assert smtp_sink.messages == []
    assert integrity(daemon) == "ok"
