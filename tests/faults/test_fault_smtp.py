"""SMTP faults against the daemon (`parting run --once` cycles on a file clock): 421, 451 and 550
answers to the message, the connection closed after the final ".", no answer at all, and a TLS
certificate the daemon cannot verify. Each fault lands on the first message of the day (the
owner's notice); the row must end in the right state and no message may reach the server twice.

    fault                      right state                         copies at the server
    421 / 451 to the message   deferred, sent at the next attempt  1
    550 to the message         failed at once, owner told          0
    closed after the "."       uncertain, owner told, not resent   1 (the server had it)
    no answer (stall)          uncertain, owner told, not resent   0
    TLS certificate refused    deferred, then failed; nothing      0, and 1 each once a person
                               sent in clear text                  fixes ca_file and resends
    connection refused, or     deferred, sent once the server      0, then 1
    accepted and never greeted is back
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml
from faultkit import DaemonProcess, audit, by_kind, copies
from harness import START, seed_history, write_config
from proxy import TcpProxy
from servers import SmtpSink

pytestmark = pytest.mark.integration

FIRST = "owner-nudge"  # the first message the cycle queues, the one each fault lands on
DATA_TIMEOUT = 2


def configured(tmp_path, dovecot, sink, **smtp) -> DaemonProcess:
    config = write_config(tmp_path / "parting", dovecot, sink)
    data = yaml.safe_load(config.read_text())
    data["mailbox"]["smtp"]["timeouts"] = {"connect": "5 seconds", "data": f"{DATA_TIMEOUT} seconds"}
    data["mailbox"]["smtp"].update(smtp)
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    return DaemonProcess(config, tmp_path, START)


def rows(daemon: DaemonProcess) -> dict[str, tuple]:
    return {kind: (row_id, state, attempts, message_id) for row_id, kind, state, attempts, message_id in daemon.query(
        "SELECT id, kind, state, attempts, message_id FROM outbox")}


def row_events(daemon: DaemonProcess, row_id: int) -> list[str]:
    return [e["kind"] for e in daemon.events() if e["data"].get("outbox_id") == row_id]


FAULTS = {
    "421 to the message": (lambda sink: sink.reply_with("421 4.3.2 Service shutting down"), "sent", 1),
    "451 to the message": (lambda sink: sink.reply_with("451 4.3.0 Mailbox busy, try later"), "sent", 1),
    "550 to the message": (lambda sink: sink.reply_with("550 5.1.1 No such user"), "failed", 0),
    "closed after the final dot": (lambda sink: sink.drop_after_data(), "uncertain", 1),
    "no answer to the final dot": (lambda sink: sink.stall(DATA_TIMEOUT + 3), "uncertain", 0),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_an_smtp_fault_ends_in_the_right_state_without_a_duplicate(fault, tmp_path, dovecot, smtp_sink, record):
    inject, final_state, expected_copies = FAULTS[fault]
    seed_history(dovecot)
    daemon = configured(tmp_path, dovecot, smtp_sink)
    inject(smtp_sink)
    daemon.run_once()
    row_id, state, attempts, message_id = rows(daemon)[FIRST]
    others = {kind: r for kind, r in rows(daemon).items() if kind not in (FIRST, "send-failed")}
    assert all(r[1] == "sent" for r in others.values()), f"the fault touched only {FIRST}: {others}"

    if final_state == "sent":
        assert (state, attempts) == ("queued", 1), "deferred, to be tried again"
        assert "send_deferred" in row_events(daemon, row_id)
        daemon.set_clock(START + timedelta(minutes=2))  # past the first retry delay (1 minute)
        daemon.run_once()
    else:
        assert state == final_state
        notices = wait_for_notice(daemon, smtp_sink)
        assert notices, f"the owner is told the {FIRST} is {final_state}"
    daemon.set_clock(START + timedelta(hours=6))
    daemon.run_once()  # hours later: a row that were to be sent again would go now

    _, state, attempts, message_id = rows(daemon)[FIRST]
    at_server = copies(smtp_sink)[message_id]
    listed = {row["id"]: row for row in daemon.cli("outbox")["rows"]}
    found = audit(daemon, smtp_sink)
    record("SMTP", fault, 1, losses=max(0, expected_copies - at_server) if final_state == "sent" else 0,
           duplicates=max(0, at_server - 1), notes=f"{FIRST}: {state} after {attempts} attempt(s), {at_server} copy")
    assert state == final_state and listed[row_id]["state"] == final_state
    assert at_server == expected_copies
    expected = {f"outbox row {row_id} ({FIRST}) failed"} if final_state == "failed" else set()
    assert set(found.problems) <= expected, found.problems
    if final_state == "sent":
        assert attempts == 2


def wait_for_notice(daemon: DaemonProcess, sink) -> list:
    daemon.run_once()  # the notice queued with the failure goes at the next cycle at the latest
    return by_kind(sink, "send-failed", "alice@example.com")


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_certificate_the_daemon_cannot_verify_sends_nothing_until_a_person_fixes_it(
        security, tmp_path, dovecot, tls_files, record):
    with SmtpSink(tls=tls_files, implicit_tls=security == "tls") as sink:
        seed_history(dovecot)
        daemon = configured(tmp_path, dovecot, sink, security=security)  # no ca_file: the system's CAs
        when = START
        for attempt in range(1, 4):  # max_attempts is 3; retries after 1, then 2 minutes
            daemon.set_clock(when)
            daemon.run_once()
            when += timedelta(minutes=2 ** attempt)
        first = {kind: state for _, kind, state, *_ in daemon.query(
            "SELECT id, kind, state, last_error FROM outbox WHERE kind != 'send-failed'")}
        assert set(first.values()) == {"failed"}, first
        reasons = {r for (r,) in daemon.query("SELECT DISTINCT last_error FROM outbox WHERE state = 'failed'")}
        assert all("certificate" in r and "ca_file" in r for r in reasons), reasons
        assert sink.messages == [], "nothing went out over a connection the daemon could not verify"

        data = yaml.safe_load(daemon.config.read_text())
        data["mailbox"]["smtp"]["ca_file"] = str(tls_files.ca_file)  # the person fixes the config...
        daemon.config.write_text(yaml.safe_dump(data, sort_keys=False))
        for (row_id,) in daemon.query("SELECT id FROM outbox WHERE state = 'failed'"):
            daemon.cli("outbox", "resend", str(row_id))  # ...and sends the failed rows again
        daemon.set_clock(when + timedelta(hours=1))  # past every notice's retry delay too
        daemon.run_once()
        final = daemon.query("SELECT id, kind, state, message_id FROM outbox")
        at_server = copies(sink)
        assert all(state == "sent" and at_server[mid] == 1 for _, _, state, mid in final), (final, at_server)
        assert all(m.tls for m in sink.messages)
        found = audit(daemon, sink)
    record("SMTP", f"TLS certificate refused ({security})", 1, duplicates=found.duplicates,
           notes=f"{len(first)} messages failed after 3 attempts, none in clear text; resent once fixed")
    assert not found.problems, found.problems


@pytest.mark.parametrize("outage", ["refuse", "blackhole"])
def test_a_server_that_refuses_or_never_greets_delays_the_mail_and_sends_it_once(
        outage, tmp_path, dovecot, smtp_sink, record):
    seed_history(dovecot)
    with TcpProxy(smtp_sink.host, smtp_sink.port) as proxy:
        daemon = configured(tmp_path, dovecot, smtp_sink, port=proxy.port)
        data = yaml.safe_load(daemon.config.read_text())
        data["mailbox"]["smtp"]["timeouts"]["connect"] = "2 seconds"
        daemon.config.write_text(yaml.safe_dump(data, sort_keys=False))
        getattr(proxy, outage)()
        daemon.run_once()
        before = daemon.query("SELECT kind, state, attempts, last_error FROM outbox")
        assert before and all((state, attempts) == ("queued", 1) for _, state, attempts, _ in before), before
        assert smtp_sink.messages == []
        proxy.heal()
        daemon.set_clock(START + timedelta(minutes=2))
        daemon.run_once()
    after = daemon.query("SELECT kind, state, attempts, message_id FROM outbox")
    at_server = copies(smtp_sink)
    found = audit(daemon, smtp_sink)
    record("SMTP", {"refuse": "connection refused", "blackhole": "accepted, never greeted"}[outage], 1,
           losses=found.losses, duplicates=found.duplicates,
           notes=f"{len(before)} messages deferred, then sent once")
    assert all(state == "sent" and at_server[mid] == 1 for _, state, _, mid in after), (after, at_server)
    assert not found.problems, found.problems
