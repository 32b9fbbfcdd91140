"""The whole practice, driven from outside the daemon as the people around it would drive it.

Acme ignores three requests (seeded in Dovecot); the daemon records the verdict, climbs the
ladder, drafts the release and asks Alice (the owner). Alice APPROVEs; Bob (the colleague) is
asked, is reminded after `remind_after`, then APPROVEs. The release leaves after `send_delay`;
the phone call falls due, is reminded, and Alice closes it with DONE; Jane then writes back (a
new verdict: the client answers again); the retrospective falls due and Alice closes it too.

`ReleaseScenario.run` plays every person: the staff answer the review and reminder emails the
SMTP sink received (appended to INBOX as their mail server would deliver them), the operator
answers every outbox row a person must decide on (`parting outbox --json`, then `confirm` when
the message did reach the server, `resend` when it did not), and the test moves the file clock
when the scenario waits for business time. When the daemon dies of a crash point it is
audited and restarted, with the next crash point of the chain, until the scenario completes.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import mailfactory as mf
from faultkit import Audit, DaemonProcess, audit, by_kind, copies, is_reminder, message_id_of
from harness import utc

T0 = utc(2026, 11, 2, 10, 0)  # a Monday
OWNER, COLLEAGUE = "alice@example.com", "bob@example.com"
REVIEW_SETTINGS = {"remind_after": "4 hours"}
BOB_ANSWERS_AT = T0 + timedelta(hours=5)  # past remind_after: Bob is reminded before he answers


@dataclass
class Outcome:
    kills: list[str] = field(default_factory=list)  # the crash point of each SIGKILL, in order
    audits: Audit = field(default_factory=Audit)
    decisions: list[tuple[int, str, str]] = field(default_factory=list)  # (row, kind, confirm|resend)
    replies: dict[str, str] = field(default_factory=dict)  # Message-ID of each staff reply -> what it said
    findings: list[str] = field(default_factory=list)  # known gaps, reported in the summary, not asserted
    seconds: float = 0.0


class ReleaseScenario:
    def __init__(self, daemon: DaemonProcess, dovecot, sink, crash_chain: list[str]) -> None:
        self.daemon = daemon
        self.dovecot = dovecot
        self.sink = sink
        self.chain = list(crash_chain)
        self.outcome = Outcome()
        self.answered: set[str] = set()  # Message-IDs of the emails a person has answered
        self.client_reply: str | None = None  # Jane's answer to the release, once she wrote it

    # ------------------------------------------------------------------ the loop

    def run(self, timeout: float = 120) -> Outcome:
        started = time.monotonic()
        self.daemon.start(self._next_crash())
        while not self.complete():
            if time.monotonic() - started > timeout:
                raise AssertionError(f"the scenario did not complete in {timeout} s; kills so far "
                                     f"{self.outcome.kills}\n{self.daemon.tail()}")
            if not self.daemon.alive():
                self._restart_after_death()
                continue
            self.operator()
            self.staff()
            self.move_time()
            time.sleep(0.1)
        self.daemon.stop()
        self.outcome.audits.add(audit(self.daemon, self.sink))
        self.outcome.audits.add(self.final_checks())
        self.outcome.seconds = time.monotonic() - started
        return self.outcome

    def _next_crash(self) -> str | None:
        done = len(self.outcome.kills)
        return self.chain[done] if done < len(self.chain) else None

    def _restart_after_death(self) -> None:
        code = self.daemon.returncode
        armed = self._next_crash()
        if code != -signal.SIGKILL or armed is None:
            raise AssertionError(f"the daemon exited {code} (crash point armed: {armed})\n{self.daemon.tail()}")
        self.outcome.kills.append(armed)
        self.outcome.audits.add(audit(self.daemon, self.sink), context=f"after the kill at {armed}: ")
        self.daemon.start(self._next_crash())

    # ------------------------------------------------------------------ the people

    def operator(self) -> None:
        """A person looks at `parting outbox` when a row waits for them, and decides."""
        waiting = self.daemon.query("SELECT id FROM outbox WHERE state IN ('uncertain', 'failed')")
        if not waiting:
            return
        listed = {row["id"]: row for row in self.daemon.cli("outbox")["rows"]}
        at_server = copies(self.sink)
        for (row_id,) in waiting:
            row = listed[row_id]
            if row["state"] == "failed":
                raise AssertionError(f"outbox row {row_id} ({row['kind']}) failed: {row['last_error']}")
            action = "confirm" if at_server[row["message_id"]] else "resend"
            decided = self.daemon.cli("outbox", action, str(row_id))
            assert decided["from_state"] == "uncertain", decided
            self.outcome.decisions.append((row_id, row["kind"], action))

    def staff(self) -> None:
        reviews = [m for m in by_kind(self.sink, "review") if not is_reminder(m)]
        for review in reviews:
            if message_id_of(review) in self.answered:
                continue
            if OWNER in review.rcpt_tos:
                self.reply(review, OWNER, "APPROVE")
            elif COLLEAGUE in review.rcpt_tos and self.colleague_was_reminded():
                self.reply(review, COLLEAGUE, "APPROVE\n\nReads well. Bob")
        for kind, text in (("reminder-phone_call", "DONE Called Jane; she understood."),
                           ("reminder-retrospective", "DONE We asked too little too late; call earlier.")):
            for reminder in by_kind(self.sink, kind, OWNER):
                if message_id_of(reminder) not in self.answered:
                    self.reply(reminder, OWNER, text)
        call_done = self.daemon.scalar("SELECT count(*) FROM deadlines WHERE kind = 'phone_call' AND state = 'done'")
        if call_done and self.client_reply is None:
            [release] = by_kind(self.sink, "release", "jane@acme.example")
            raw, message_id = mf.reply("jane@acme.example", str(release.message["Message-ID"]),
                                       str(release.message["Subject"]), self.daemon.now(), "jane-writes-back",
                                       body="Understood. Thank you for the years of work.\n")
            mf.deliver(self.dovecot, "INBOX", raw)
            self.client_reply = message_id.strip("<>")

    def colleague_was_reminded(self) -> bool:
        return any(is_reminder(m) for m in by_kind(self.sink, "review", COLLEAGUE))

    def reply(self, email, person: str, text: str) -> None:
        tag = f"{person.split('@')[0]}-{len(self.outcome.replies) + 1}"
        raw, message_id = mf.staff_reply(person, email.data, text, self.daemon.now(), tag)
        mf.deliver(self.dovecot, "INBOX", raw)
        self.answered.add(message_id_of(email))
        self.outcome.replies[message_id.strip("<>")] = text.split()[0]

    def move_time(self) -> None:
        """Business time passes only when the scenario waits for it."""
        now = self.daemon.now()
        if by_kind(self.sink, "review", COLLEAGUE) and now < BOB_ANSWERS_AT:
            self.daemon.set_clock(BOB_ANSWERS_AT)
        elif (held := self.daemon.scalar("SELECT max(not_before) FROM outbox WHERE kind = 'release'")) and \
                now < (past_the_delay := datetime.fromisoformat(held) + timedelta(minutes=1)):
            # Past the release's own send delay: an approval read again after a lost write (a
            # restore) queues it later than the first time (RELEASE_TIME on the usual path).
            self.daemon.set_clock(past_the_delay)
        for kind, after in (("phone_call", None), ("retrospective", "phone_call")):
            due = self.daemon.scalar("SELECT due_at FROM deadlines WHERE kind = ? AND state = 'open'", [kind])
            ready = after is None or self.daemon.scalar(
                "SELECT count(*) FROM deadlines WHERE kind = ? AND state = 'done'", [after])
            if due and ready and now < datetime.fromisoformat(due):
                self.daemon.set_clock(datetime.fromisoformat(due) + timedelta(minutes=30))
                return

    # ------------------------------------------------------------------ the end

    def complete(self) -> bool:
        deadlines = self.daemon.query("SELECT state FROM deadlines")
        unsettled = self.daemon.scalar(
            "SELECT count(*) FROM outbox WHERE state NOT IN ('sent', 'cancelled')")
        jane_read = self.client_reply is not None and self.daemon.scalar(
            "SELECT count(*) FROM messages WHERE message_id = ?", [self.client_reply])
        return len(deadlines) == 2 and all(s == "done" for (s,) in deadlines) and unsettled == 0 and bool(jane_read)

    def final_checks(self) -> Audit:
        found = Audit()
        # Every sent release has its case file, whichever path recorded the send (the sender,
        # recovery from Sent, `parting outbox confirm`, or a crash right after `sent`).
        written = {mid for event in self.daemon.events("casefile_written") for mid in event["message_ids"]}
        for message_id, reply in self.daemon.query(
                "SELECT message_id, server_reply FROM outbox WHERE kind = 'release' AND state = 'sent'"):
            if message_id not in written:
                found.lost(f"no case file for the sent release ({reply})")
        releases = by_kind(self.sink, "release", "jane@acme.example")
        if len(releases) != 1:
            found.wrong(f"{len(releases)} release emails reached the SMTP server, not 1")
        outcomes = dict(self.daemon.query("SELECT message_id, outcome FROM processed_replies"))
        for message_id, said in self.outcome.replies.items():
            outcome = outcomes.get(message_id)
            if outcome is None:
                found.lost(f"the staff reply {said} <{message_id}> was never handled")
            elif not outcome.startswith("accepted"):
                found.wrong(f"the staff reply {said} <{message_id}> was {outcome}")
        endorsements = self.daemon.query("SELECT person, how FROM endorsements ORDER BY person")
        if endorsements != [("alice", "approved"), ("bob", "approved")]:
            found.wrong(f"endorsements are {endorsements}, not one approval each from alice and bob")
        decisions = [(e["data"]["person"], e["data"]["command"]) for e in self.daemon.events("review_decision")]
        if sorted(decisions) != [("alice", "approve"), ("bob", "approve")]:
            found.wrong(f"review decisions are {decisions}")
        verdicts = [(e["client_id"], e["data"]["state"]) for e in self.daemon.events("verdict")]
        if verdicts[-1:] != [("acme", "active")]:
            found.wrong(f"Jane's answer after the release did not make acme active again: {verdicts}")
        drafts = self.daemon.query("SELECT kind, state FROM drafts")
        if drafts != [("release", "sent")]:
            found.wrong(f"drafts are {drafts}, not one sent release")
        at_server = copies(self.sink)
        for row_id, kind, state, message_id in self.daemon.query("SELECT id, kind, state, message_id FROM outbox"):
            expected = 1 if state == "sent" else 0
            if at_server[message_id] < expected:
                found.lost(f"outbox row {row_id} ({kind}) is {state} but the server has no copy")
            elif at_server[message_id] > expected:
                found.twice(f"outbox row {row_id} ({kind}) is {state} with {at_server[message_id]} copies")
        return found
