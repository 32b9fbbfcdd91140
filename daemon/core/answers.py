"""Answers outside email: how the client answered, read from an owner's ANSWERED note or the CLI.

Rules of this module:
- An answer is by phone, in a meeting, or other; the note says what was said and is required
  (the case file must show what the answer was, not only that there was one).
- An ANSWERED reply may name the way first ("by phone", "phone:", "in a meeting", "meeting"):
  it is taken off the note; without one the answer is "other".
- An answer cannot be dated in the future: it records what happened.
"""

from __future__ import annotations

import re
from datetime import datetime

HOWS = ("phone", "meeting", "other")

_HOW = re.compile(r"^\s*(?:by\s+)?(?:(?P<phone>phone|telephone|call)|(?:in\s+(?:a\s+)?)?(?P<meeting>meeting|person))"
                  r"\b[\s:;,.\-–—]*(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)


class AnswerProblem(ValueError):
    """An answer that cannot be recorded, with what to write instead."""


def read_answered(reason: str) -> tuple[str, str]:
    """(how, note) from the words after ANSWERED."""
    match = _HOW.match(reason or "")
    if match is None:
        return "other", (reason or "").strip()
    how = "phone" if match.group("phone") else "meeting"
    return how, match.group("rest").strip()


def check_answer(how: str, note: str, at: datetime, now: datetime) -> None:
    if how not in HOWS:
        raise AnswerProblem(f"an answer is by {', '.join(HOWS)}, not {how!r}")
    if not note.strip():
        raise AnswerProblem("say what the client answered: the note goes into the case file")
    if at.tzinfo is None or at.utcoffset() is None:
        raise AnswerProblem("the time of the answer needs a time zone")
    if at > now:
        raise AnswerProblem(f"the answer is dated {at.isoformat()}, after now: record it once it happened")


def parse_when(text: str, zone: str) -> datetime:
    """"2026-11-03 14:30" (in `zone`, the client's or the company's) or ISO 8601 with an offset."""
    from zoneinfo import ZoneInfo

    try:
        moment = datetime.fromisoformat(text.strip().replace("T", " "))
    except ValueError:
        raise AnswerProblem(f"{text!r} is not a time: write it as 2026-11-03 14:30 (local time) "
                            "or 2026-11-03T14:30+00:00") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=ZoneInfo(zone))
