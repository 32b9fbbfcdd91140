"""`parting doctor`'s look at the colleagues: would an approval from each person be accepted today?

Rules of this module:
- Read-only: the INBOX is examined and headers are read with BODY.PEEK, over the doctor's own
  IMAP connection (blocking: it runs in the doctor's worker thread).
- The judgement is core/evidence.py's, the same the daemon applies to a reply, on each person's
  recent messages; the line says on what evidence, or what is missing and what to do.
"""

from __future__ import annotations

from datetime import date, timedelta

from daemon.adapters.imap.connection import ImapConnection
from daemon.adapters.imap.values import ImapError
from daemon.core.authres import AuthVerdict
from daemon.core.evidence import EVIDENCE_HEADER_FIELDS, EvidencePolicy, evidence_policy, judge_evidence
from daemon.core.mail import MalformedMessage, parse_message
from daemon.core.model import Person, Settings

RECENT_DAYS = 30
MOST = 20  # messages per person: the most recent ones
FIELDS = ("Message-ID", "From", "Date", "Authentication-Results", *EVIDENCE_HEADER_FIELDS)


def evidence_lines(connection: ImapConnection, settings: Settings, today: date) -> tuple[list[str], str]:
    """One line per person, and the worst outcome: "ok", "unknown" (someone has no recent mail)
    or "refused" (someone's mail lacks the evidence)."""
    policy = evidence_policy(settings)
    lines, worst = [], "ok"
    for person in settings.people:
        try:
            verdicts = _verdicts(connection, settings, person, today, policy)
        except ImapError as error:
            lines.append(f"{person.id}: cannot read the inbox ({error})")
            worst = "refused"
            continue
        line, outcome = _line(person, verdicts)
        lines.append(line)
        if outcome == "refused" or (outcome == "unknown" and worst == "ok"):
            worst = outcome
    return lines, worst


def _verdicts(connection: ImapConnection, settings: Settings, person: Person, today: date,
              policy: EvidencePolicy) -> list[AuthVerdict]:
    uids = connection.search_from(settings.mailbox.imap.inbox, person.email, today - timedelta(days=RECENT_DAYS))
    verdicts = []
    for fetched in connection.fetch_headers(uids[-MOST:], FIELDS):
        try:
            parsed = parse_message(fetched.header, size=fetched.size)
        except MalformedMessage:
            continue
        if parsed.from_addr != person.email:
            continue  # SEARCH FROM is a substring match: bob@example.com also finds jbob@example.com
        verdicts.append(judge_evidence(policy, parsed.from_addr, parsed.authentication_results,
                                       parsed.evidence_headers))
    return verdicts


def _evidence_name(verdict: AuthVerdict) -> str:
    return verdict.reason.split(" (AuthSource")[0]


def _line(person: Person, verdicts: list[AuthVerdict]) -> tuple[str, str]:
    if not verdicts:
        return (f"{person.id}: no recent message found: ask {person.name} to send one to the mailbox, then run "
                "doctor again", "unknown")
    count = f"{len(verdicts)} recent message{'s' if len(verdicts) != 1 else ''}"
    without = [v for v in verdicts if not v.ok]
    if not without:
        names = sorted({_evidence_name(v) for v in verdicts})
        return f"{person.id}: {count}, all with {' or '.join(names)}: approvals accepted", "ok"
    if len(without) == len(verdicts):
        return f"{person.id}: {count}, none with evidence ({without[-1].reason}): approvals refused", "refused"
    return (f"{person.id}: {count}, {len(without)} without evidence ({without[-1].reason}): some approvals "
            "would be refused", "refused")
