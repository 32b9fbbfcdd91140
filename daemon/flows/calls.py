"""The follow-up call after the release: reminders that repeat each working day until DONE.

The first reminder is followup.remind_due's (when the call falls due). This step sends the
next ones, one each working day at the call's time of day (core/calls.py), up to
followup.phone_reminders in all. Each reminder carries a fresh token, so DONE answers any of
them; the count is the number of tokens issued for the deadline, which the reminder and its
token commit with, so a restart never repeats one.
"""

from __future__ import annotations

from datetime import datetime

from daemon.core.calls import next_reminder_at
from daemon.flows.context import Context
from daemon.flows.followup import _remind


def repeat_call_reminders(ctx: Context, now: datetime) -> None:
    limit = ctx.settings.followup.phone_reminders
    for deadline in ctx.store.deadlines(["open"]):
        if deadline.kind != "phone_call" or deadline.reminded_at is None:
            continue
        client = ctx.settings.client(deadline.client_id)
        sent = len(ctx.store.tokens_for("deadline", deadline.id))
        due = next_reminder_at(ctx.calendar(client), deadline.due_at, sent, limit)
        if due is None or due > now:
            continue
        with ctx.store.transaction():
            _remind(ctx, deadline, now)
            ctx.store.append_event("deadline_reminded_again", at=now, client_id=client.id,
                                   draft_id=deadline.draft_id,
                                   data={"deadline_id": deadline.id, "kind": deadline.kind,
                                         "reminder": sent + 1, "of": limit, "due_at": deadline.due_at.isoformat()})
        ctx.log.info("phone call still open: reminder %d of %d", sent + 1, limit, extra={"client": client.id})
