"""Configuration reload under load: 1,000 messages arrive in ten MULTIAPPENDs while the daemon is
sent SIGHUP after each one. The reloads alternate between a policy change (applied in place), a
mailbox change (the folder watchers are stopped and started again, cutting batches short) and,
once, a broken file (refused; the running configuration stays). Nothing may be lost or read
twice: every UID is stored exactly once and the daemon keeps running.
"""

from __future__ import annotations

import signal
from datetime import timedelta

import mailfactory as mf
import pytest
import yaml
from faultkit import DaemonProcess, wait_until
from harness import utc, write_config

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)
MESSAGES, CHUNKS = 1000, 10
SENDERS = ["jane@acme.example", "hank@globex.example", "someone@elsewhere.example", "bob@example.com"]


def incoming(n: int) -> bytes:
    return mf.build(sender=SENDERS[n % len(SENDERS)], to=mf.OFFICE, subject=f"Load {n}",
                    body=f"Message {n} of the load test.\n", when=START - timedelta(minutes=MESSAGES - n),
                    mid=mf.message_id(f"load-{n}"))


def read_uids(daemon: DaemonProcess) -> list[int]:
    return [uid for (uid,) in daemon.query(
        "SELECT uid FROM message_uids WHERE folder = 'INBOX'"
        " UNION ALL SELECT uid FROM quarantine WHERE folder = 'INBOX'")]


def reload_outcomes(daemon: DaemonProcess) -> int:
    log = daemon.log_text()
    return log.count("configuration reloaded") + log.count("reload refused, keeping")


def reload(daemon: DaemonProcess, config, text: str) -> None:
    """Write the file, SIGHUP, and wait until the daemon has read it (so no two reloads merge)."""
    before = reload_outcomes(daemon)
    config.write_text(text)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: reload_outcomes(daemon) > before, "the reload", daemon)


def test_sighup_while_a_thousand_messages_are_ingested_loses_nothing(tmp_path, dovecot, smtp_sink, record):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink)
    original = yaml.safe_load(config.read_text())
    variants = []
    for n in range(CHUNKS):
        data = yaml.safe_load(yaml.safe_dump(original))
        if n % 2:  # a mailbox change: the watchers reconnect
            data["mailbox"]["imap"]["idle_renew"] = f"{20 + n} minutes"
        else:  # a policy change: applied in place
            data["policy"]["ignored_after"] = f"{3 + n} business days"
        variants.append(yaml.safe_dump(data, sort_keys=False))
    variants[4] = "policy: [this is: not valid\n"  # one broken file, refused, the daemon keeps going

    daemon = DaemonProcess(config, tmp_path, START)
    daemon.start()
    reloads_mid_ingest = 0
    try:
        wait_until(lambda: "ready:" in daemon.log_text(), "the daemon ready", daemon)
        delivered: list[int] = []
        per_chunk = MESSAGES // CHUNKS
        for chunk, text in enumerate(variants):
            raws = [incoming(n) for n in range(chunk * per_chunk, (chunk + 1) * per_chunk)]
            delivered += dovecot.append_many("INBOX", raws)
            reloads_mid_ingest += len(read_uids(daemon)) < len(delivered)
            reload(daemon, config, text)
        wait_until(lambda: len(read_uids(daemon)) >= MESSAGES, "all messages read", daemon, timeout=120)
        reload(daemon, config, yaml.safe_dump(original, sort_keys=False))
        assert daemon.alive()
        daemon.stop()
    finally:
        daemon.kill()

    uids = read_uids(daemon)
    log = daemon.log_text()
    lost = len(set(delivered) - set(uids))
    twice = len(uids) - len(set(uids))
    record("reload", "SIGHUP during a 1,000-message ingest", CHUNKS + 1, losses=lost, duplicates=twice,
           notes=f"{reloads_mid_ingest} of them mid-ingest; {log.count('mailbox settings changed')} "
                 f"reconnected the watchers; {log.count('reload refused, keeping')} broken file refused")
    assert lost == 0 and twice == 0
    assert sorted(uids) == sorted(delivered)
    assert daemon.scalar("SELECT count(*) FROM messages") == MESSAGES
    assert log.count("mailbox settings changed") >= CHUNKS // 2, "the watchers were restarted mid-ingest"
    assert log.count("reload refused, keeping") == 1
