"""The follow-up phone call: when its reminders repeat, and what a DONE reply says happened.

Rules of this module:
- The owner is reminded when the call falls due and then once each working day at the call's
  time of day (the n-th reminder is n-1 working days after the due time, so a late cycle never
  makes the reminders drift), until the call is closed or `limit` reminders were sent in all.
- DONE's note may open with an outcome: "reached <note>", "no answer" or "left message" (any
  case, "left a message" and "voicemail" too). The outcome is kept apart from the note so the
  case file can show it; a note without one is an outcome left unsaid, never an error.
"""

from __future__ import annotations

import re
from datetime import datetime

from daemon.core.model import Duration
from daemon.core.workhours import Calendar

OUTCOMES = ("reached", "no answer", "left message")

_OUTCOME = re.compile(
    r"^\s*(?P<word>reached|no[\s-]+answer|left\s+(?:a\s+)?message|voicemail)\b[\s:;,.!\-–—]*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def call_outcome(note: str) -> tuple[str | None, str]:
    """(outcome, the rest of the note): ("no answer", "") for "No answer.", (None, note) without one."""
    match = _OUTCOME.match(note or "")
    if match is None:
        return None, (note or "").strip()
    word = " ".join(match.group("word").lower().replace("-", " ").split())
    outcome = "reached" if word == "reached" else "no answer" if word.startswith("no") else "left message"
    return outcome, match.group("rest").strip()


def next_reminder_at(calendar: Calendar, due_at: datetime, sent: int, limit: int) -> datetime | None:
    """When the next reminder of an open call due at `due_at` is due, `sent` reminders on; None
    once `limit` reminders were sent."""
    if sent >= limit:
        return None
    if sent == 0:
        return due_at
    return calendar.add(due_at, Duration(sent, "days", True, f"{sent} business days"))


def outcome_of(deadline_kind: str, note: str) -> str | None:
    """The outcome a DONE note gives a deadline: only a phone call has one."""
    return call_outcome(note)[0] if deadline_kind == "phone_call" else None
