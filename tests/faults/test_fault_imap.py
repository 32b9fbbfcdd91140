"""IMAP faults against the running daemon: Dovecot restarted mid-IDLE, the server unreachable while
mail arrives, a connection that goes silent without closing, a folder deleted and recreated
(new UIDVALIDITY). Each time the daemon must notice by itself (by the cause the fault gives it:
a closed session, a refused connection, its own read and connect timeouts, a new UIDVALIDITY),
wait between retries only as its backoff schedule allows (capped, exponential), and read every
message that arrived meanwhile exactly once: each appended UID ends up stored or quarantined in
the database, and the daemon's log counts each stored once.

Nothing here asserts seconds, which a loaded machine stretches (DESIGN: speed is measured in
bench/, never asserted); the seconds recovery took are only reported in the fault summary.

The daemon reaches Dovecot through tests/faults/proxy.py where the fault is on the path, with
short timeouts (read 2 s, IDLE rounds of 3 s) so a silent connection is found out quickly.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import mailfactory as mf
import pytest
import yaml
from faultkit import DaemonProcess, backoff_violations, reconnect_delays, reconnects, wait_until
from harness import utc, write_config
from proxy import TcpProxy

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 2.0
IDLE_ROUND = 3.0
PATIENCE = 60.0  # seconds a wait allows beyond the drawn backoff: a wait, not a bound on speed


def fast_config(tmp_path, dovecot, sink, port: int | None = None):
    config = write_config(tmp_path / "parting", dovecot, sink)
    data = yaml.safe_load(config.read_text())
    imap = data["mailbox"]["imap"]
    imap["port"] = port or dovecot.port
    imap["timeouts"] = {"connect": f"{CONNECT_TIMEOUT:g} seconds", "read": f"{READ_TIMEOUT:g} seconds"}
    imap["idle_renew"] = f"{IDLE_ROUND:g} seconds"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return config


def deliver_replies(dovecot, tag: str, count: int) -> list[int]:
    """Client mail arriving in INBOX (straight into Dovecot, not through the proxy)."""
    uids = []
    for n in range(count):
        raw, _ = mf.reply("jane@acme.example", f"<req-{tag}@example.com>", f"Question {tag} {n}",
                          START + timedelta(minutes=n), f"{tag}-{n}")
        uids.append(mf.deliver(dovecot, "INBOX", raw))
    return uids


def read_uids(daemon: DaemonProcess, folder: str) -> set[int]:
    """UIDs of the folder's current UIDVALIDITY the database holds: stored or quarantined."""
    return {uid for (uid,) in daemon.query(
        "SELECT uid FROM message_uids JOIN folders ON folders.name = message_uids.folder"
        " AND folders.uidvalidity = message_uids.uidvalidity WHERE folder = ?"
        " UNION SELECT uid FROM quarantine JOIN folders ON folders.name = quarantine.folder"
        " AND folders.uidvalidity = quarantine.uidvalidity WHERE folder = ?", [folder, folder])}


def started(daemon: DaemonProcess, dovecot) -> DaemonProcess:
    """The daemon running, with a first message read (so its INBOX watcher is past its backfill)."""
    daemon.start()
    wait_until(lambda: "ready:" in daemon.log_text(), "the daemon ready", daemon)
    first = deliver_replies(dovecot, "first", 1)
    wait_until(lambda: set(first) <= read_uids(daemon, "INBOX"), "the first message read", daemon)
    # ...and logged (just after its commit), so that the log a test keeps as "before" counts it
    wait_until(lambda: stored_counts(daemon.log_text(), "INBOX") >= 1, "the first message logged", daemon)
    return daemon


def recovery_wait(daemon: DaemonProcess, log_before: str) -> float:
    """How long to wait for a recovery: the longest backoff drawn since the fault, and then some."""
    drawn = reconnect_delays(daemon.log_text()[len(log_before):])
    return max(drawn, default=0.0) + CONNECT_TIMEOUT + PATIENCE


def stored_counts(log_text: str, folder: str) -> int:
    """How many messages the daemon's log says it stored in `folder` ("INBOX: 5 stored, ...")."""
    return sum(int(n) for n in re.findall(rf"service: {re.escape(folder)}: (\d+) stored,", log_text))


def assert_followed_backoff(daemon: DaemonProcess) -> None:
    """Every delay the watchers drew since the daemon started kept to the schedule and the cap."""
    broken = backoff_violations(daemon.log_text())
    assert not broken, "\n".join(broken) + "\n" + daemon.tail()


def assert_reads_everything(daemon, dovecot, healed_at: float, log_before: str, what: str,
                            arrived: list[int]) -> float:
    """All of INBOX is read after `healed_at`, the messages that `arrived` since the fault each
    exactly once; returns the seconds it took (reported, never asserted)."""
    everything = set(dovecot.uids("INBOX"))
    wait_until(lambda: everything <= read_uids(daemon, "INBOX"), f"every INBOX message read after {what}",
               daemon, timeout=recovery_wait(daemon, log_before))
    took = time.monotonic() - healed_at
    assert_followed_backoff(daemon)
    # the daemon logs a batch just after committing it: wait for the line, then count exactly
    stored = wait_until(lambda: stored_counts(daemon.log_text()[len(log_before):], "INBOX") >= len(arrived)
                        and stored_counts(daemon.log_text()[len(log_before):], "INBOX"), "the batches logged", daemon)
    assert stored == len(arrived), f"{stored} stored after {what}, {len(arrived)} arrived\n{daemon.tail()}"
    rows = daemon.query(f"SELECT DISTINCT message_id FROM message_uids WHERE folder = 'INBOX'"
                        f" AND uid IN ({','.join('?' * len(arrived))})", arrived)
    assert len(rows) == len(arrived), f"{len(arrived)} UIDs arrived, {len(rows)} messages stored for them"
    assert daemon.scalar("SELECT count(*) FROM messages") == 1 + len(arrived), "the first one and the arrivals"
    return took


@pytest.fixture
def daemon(tmp_path):
    made: list[DaemonProcess] = []

    def make(config) -> DaemonProcess:
        made.append(DaemonProcess(config, tmp_path, START))
        return made[-1]

    yield make
    for process in made:
        process.kill()


def test_dovecot_restarted_mid_idle_and_mail_arriving_at_once(tmp_path, dovecot, smtp_sink, daemon, record):
    process = started(daemon(fast_config(tmp_path, dovecot, smtp_sink)), dovecot)
    log_before = process.log_text()

    dovecot.stop()
    time.sleep(1.5)  # the outage: the daemon's IDLE connections die and its reconnects are refused
    dovecot.start()
    healed_at = time.monotonic()
    after = deliver_replies(dovecot, "after", 5)  # while the daemon still waits out its backoff
    took = assert_reads_everything(process, dovecot, healed_at, log_before, "Dovecot's restart", after)

    noticed = {line.role for line in reconnects(process.log_text()[len(log_before):])}
    assert noticed == {"inbox", "sent"}, f"each watcher noticed the restart\n{process.tail()}"
    assert process.alive()
    process.stop()
    record("IMAP", "Dovecot restarted mid-IDLE", 1, losses=len(set(after) - read_uids(process, "INBOX")),
           notes=f"{len(after)} messages after restart, read {took:.1f} s after it")


def test_server_unreachable_while_mail_arrives(tmp_path, dovecot, smtp_sink, daemon, record):
    with TcpProxy(dovecot.host, dovecot.port) as proxy:
        process = started(daemon(fast_config(tmp_path, dovecot, smtp_sink, proxy.port)), dovecot)
        log_before = process.log_text()
        proxy.refuse()  # connections reset, new ones refused
        arrived = deliver_replies(dovecot, "outage", 6)
        wait_until(lambda: len(reconnect_delays(process.log_text()[len(log_before):])) >= 4
                   and {line.role for line in reconnects(process.log_text()[len(log_before):])
                        if "refused" in line.reason} == {"inbox", "sent"},
                   "both watchers retrying while the server is away", process, timeout=30)
        proxy.heal()
        healed_at = time.monotonic()
        took = assert_reads_everything(process, dovecot, healed_at, log_before, "the outage", arrived)
        process.stop()
    lost = len(set(arrived) - read_uids(process, "INBOX"))
    record("IMAP", "server unreachable, mail arriving", 1, losses=lost,
           notes=f"{len(arrived)} messages during the outage, read {took:.1f} s after it")


def test_a_silent_connection_is_found_out_and_replaced(tmp_path, dovecot, smtp_sink, daemon, record):
    with TcpProxy(dovecot.host, dovecot.port) as proxy:
        process = started(daemon(fast_config(tmp_path, dovecot, smtp_sink, proxy.port)), dovecot)
        log_before = process.log_text()
        silenced_at = time.monotonic()
        proxy.blackhole()  # nothing closes: only the daemon's own timeouts can tell
        arrived = deliver_replies(dovecot, "silent", 6)
        # Both watchers must give up on their silent connection: an IDLE round, then DONE unanswered.
        wait_until(lambda: {line.role for line in reconnects(process.log_text()[len(log_before):])}
                   == {"inbox", "sent"}, "the daemon noticing its silent connections", process,
                   timeout=IDLE_ROUND + READ_TIMEOUT + PATIENCE)
        noticed = time.monotonic() - silenced_at  # reported only
        # Nothing closed, so each watcher can only have noticed by its own read timeout.
        first = {}
        for line in reconnects(process.log_text()[len(log_before):]):
            first.setdefault(line.role, line.reason)
        assert all(re.search(r"lost during .+: timed out$", reason) for reason in first.values()), first
        # ...and each new connection into the silence must time out (no greeting) by the configured
        # connect timeout, and be retried.
        connect_timed_out = f"timed out after {CONNECT_TIMEOUT:g} s connecting to"
        wait_until(lambda: sum(connect_timed_out in line.reason
                               for line in reconnects(process.log_text()[len(log_before):])) >= 2,
                   "reconnects into the silence timing out", process, timeout=PATIENCE)
        proxy.heal()
        healed_at = time.monotonic()
        took = assert_reads_everything(process, dovecot, healed_at, log_before, "the silence", arrived)
        process.stop()
    lost = len(set(arrived) - read_uids(process, "INBOX"))
    record("IMAP", "silent connection (blackhole)", 1, losses=lost,
           notes=f"noticed in {noticed:.1f} s; {len(arrived)} messages read {took:.1f} s after it healed")


def test_sent_deleted_and_recreated_is_read_afresh(tmp_path, dovecot, smtp_sink, daemon, record):
    for n in range(3):
        raw, _ = mf.statement("jane@acme.example", f"Report {n}", START - timedelta(days=30 - n), f"old-{n}")
        mf.deliver(dovecot, "Sent", raw)
    process = started(daemon(fast_config(tmp_path, dovecot, smtp_sink)), dovecot)
    wait_until(lambda: len(read_uids(process, "Sent")) == 3 and stored_counts(process.log_text(), "Sent") == 3,
               "the old Sent folder read and logged", process)
    [(old_validity,)] = process.query("SELECT uidvalidity FROM folders WHERE name = 'Sent'")
    log_before = process.log_text()

    dovecot.delete_folder("Sent")
    if "Sent" not in _folders(dovecot):  # Dovecot may create it again by itself (auto = subscribe)
        dovecot.create_folder("Sent")
    arrived = []
    for n in range(4):
        raw, _ = mf.statement("jane@acme.example", f"New report {n}", START - timedelta(days=3 - n), f"new-{n}")
        arrived.append(mf.deliver(dovecot, "Sent", raw))
    changed_at = time.monotonic()
    with dovecot.client() as imap:
        new_validity = imap.select_folder("Sent", readonly=True)[b"UIDVALIDITY"]
    assert new_validity != old_validity
    wait_until(lambda: process.scalar("SELECT uidvalidity FROM folders WHERE name = 'Sent'") == new_validity
               and set(arrived) <= read_uids(process, "Sent"), "the new Sent folder read", process,
               timeout=recovery_wait(process, log_before))
    took = time.monotonic() - changed_at  # reported only
    assert_followed_backoff(process)
    wait_until(lambda: stored_counts(process.log_text()[len(log_before):], "Sent") >= len(arrived),
               "the new Sent batches logged", process)
    log = process.log_text()[len(log_before):]
    assert log.count(f"UIDVALIDITY of 'Sent' changed from {old_validity} to {new_validity}; reading it afresh") == 1, log
    assert stored_counts(log, "Sent") == len(arrived), f"each new Sent message stored once\n{log}"
    [resync] = process.events("folder_resync")
    assert (resync["data"]["old_uidvalidity"], resync["data"]["new_uidvalidity"]) == (old_validity, new_validity)
    assert process.scalar("SELECT count(*) FROM messages") == 1 + 3 + 4, "old messages kept, new ones added"
    process.stop()
    record("IMAP", "Sent deleted and recreated (UIDVALIDITY)", 1,
           losses=len(set(arrived) - read_uids(process, "Sent")), notes=f"read afresh {took:.1f} s after")


def _folders(dovecot) -> set[str]:
    with dovecot.client() as imap:
        return {name for _, _, name in imap.list_folders()}
