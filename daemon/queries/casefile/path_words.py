"""The words of the events of the practice's other paths (answers outside email, bounces, triage,
owner changes, repeated call reminders), for the case file's timeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]


def _answer(d: Data, who: str | None) -> str:
    how = {"phone": "by phone", "meeting": "in a meeting"}.get(d.get("how", ""), "outside email")
    return f"the client answered {how} (recorded by {who or d.get('by')}, via {d.get('via')}): {d.get('note')}"


def _bounce(d: Data, who: str | None) -> str:
    also = "; every address has bounced: the client is unreachable" if d.get("unreachable") else ""
    return (f"our email {d.get('subject')!r} was not delivered to {d.get('recipient')} ({d.get('reason')}); "
            f"the owner was told{also}")


def _reminded(d: Data, who: str | None) -> str:
    return f"phone call still open: reminder {d.get('reminder')} of {d.get('of')} sent to the owner"


def _assigned(d: Data, who: str | None) -> str:
    learned = f"; {d.get('address')} is now a learned address of the client" if d.get("learned_address") else ""
    return f"a message from {d.get('from')} was assigned to this client by {who or d.get('by')}{learned}"


def _dismissed(d: Data, who: str | None) -> str:
    return f"a message from {d.get('from')} was dismissed by {who or d.get('by')}: {d.get('note')}"


def _owner(d: Data, who: str | None) -> str:
    pending = d.get("pending") or []
    return (f"owner changed from {d.get('old')} to {d.get('new')}: a new episode began; "
            f"{len(pending)} open request(s) were handed over")


WORDS: dict[str, Callable[[Data, str | None], str]] = {
    "answer_recorded": _answer, "delivery_failure_told": _bounce, "deadline_reminded_again": _reminded,
    "triage_assigned": _assigned, "triage_dismissed": _dismissed, "owner_changed": _owner,
}
