"""After the release: the follow-up call, the retrospective, held drafts, and DONE replies.

- A sent release email sets a `phone_call` deadline (followup.phone_call_after, business or
  plain time as written) and a `retrospective` deadline.
- A real reply from the client before the call is due cancels the call (logged, the owner told);
  a reply never reopens the release itself.
- A due deadline reminds its owner once, with a token so a `DONE <note>` reply closes it under
  the same authentication rules as review replies.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from daemon.adapters.store import Deadline, OutboxRow, TokenRow
from daemon.core import release as machine
from daemon.core import review as core
from daemon.core.calls import outcome_of
from daemon.core.rules import is_real_reply
from daemon.flows.context import Context, common_context, describe_time, park, queue_mail
from daemon.flows.drafts import advance
from daemon.runtime.faults import crash_point

REMINDER_TEMPLATES = {"phone_call": "followup_reminder.txt.j2", "retrospective": "retrospective.txt.j2"}


def after_release_sent(ctx: Context, row: OutboxRow, now: datetime) -> None:
    """A sent release (or nudge) closes its draft; a release starts the follow-up deadlines."""
    if row.draft_id is None or row.client_id is None or row.kind not in ("release", "nudge"):
        return
    store = ctx.store
    client = ctx.settings.client(row.client_id)
    with store.transaction():
        advance(ctx, store.draft(row.draft_id), machine.Event("sent", person="parting"), now, event_kind="draft_sent",
                data={"outbox_id": row.id})
        if row.kind != "release":
            return
        followup = ctx.settings.followup
        calendar = ctx.calendar(client)
        for kind, wait in (("phone_call", followup.phone_call_wait), ("retrospective", followup.retrospective_after)):
            due = calendar.add(now, wait)
            deadline_id = store.add_deadline(kind, client.id, due, now, draft_id=row.draft_id,
                                             data={"phone": client.phone, "contact": client.contact,
                                                   "release_message_id": row.message_id,
                                                   "release_sent_at": now.isoformat(), "wait": str(wait)})
            store.append_event("deadline_set", at=now, client_id=client.id, draft_id=row.draft_id,
                               message_ids=[row.message_id],
                               data={"deadline_id": deadline_id, "kind": kind, "due_at": due.isoformat(),
                                     "phone": client.phone if kind == "phone_call" else None})
        crash_point("after_deadline_set")  # inside the `sent` transaction: a crash here leaves the row sending
    ctx.log.info("release sent; follow-up call due after %s", followup.phone_call_wait,
                 extra={"client": client.id, "draft": row.draft_id})


def remind_due(ctx: Context, now: datetime) -> None:
    cancel_answered_calls(ctx, now)
    for deadline in ctx.store.due_deadlines(now):
        with ctx.store.transaction():
            _remind(ctx, deadline, now)
            ctx.store.mark_reminded(deadline.id, now)
            ctx.store.append_event("deadline_due", at=now, client_id=deadline.client_id, draft_id=deadline.draft_id,
                                   data={"deadline_id": deadline.id, "kind": deadline.kind,
                                         "due_at": deadline.due_at.isoformat()})
        crash_point("after_reminder_queued")  # the reminder, its token and the deadline's reminded_at are committed


def cancel_answered_calls(ctx: Context, now: datetime) -> None:
    """An open phone_call whose client wrote back (a person, not an auto-reply) before it fell due."""
    for deadline in ctx.store.deadlines(["open"]):
        if deadline.kind != "phone_call" or deadline.reminded_at is not None:
            continue
        sent_at = datetime.fromisoformat((deadline.data or {})["release_sent_at"])
        replies = [m for m in ctx.store.messages_for_client(deadline.client_id)
                   if is_real_reply(m) and sent_at < m.at <= now
                   and m.at <= deadline.due_at]
        if not replies:
            continue
        reply = replies[0]
        client = ctx.settings.client(deadline.client_id)
        owner = ctx.owner_of(client)
        tz = client.timezone or ctx.settings.working_hours.timezone
        with ctx.store.transaction():
            if not ctx.store.close_deadline(deadline.id, "cancelled", now, "client replied", f"reply {reply.message_id}"):
                continue
            ctx.store.append_event("deadline_cancelled", at=now, client_id=client.id, draft_id=deadline.draft_id,
                                   message_ids=[reply.message_id],
                                   data={"deadline_id": deadline.id, "kind": deadline.kind,
                                         "reason": "the client replied before the call was due"})
            queue_mail(ctx, kind="client-answered", key=f"answered:{deadline.id}", template="client_answered.txt.j2",
                       context={**common_context(ctx, client, owner), "release": _release(ctx, deadline, tz),
                                "reply": {"subject": reply.subject, "received_at": describe_time(reply.at, tz),
                                          "from_addr": reply.from_addr}},
                       to=[owner.email], now=now, client_id=client.id)
        ctx.log.info("client replied after the release: follow-up call cancelled", extra={"client": client.id})


def _remind(ctx: Context, deadline: Deadline, now: datetime) -> None:
    client = ctx.settings.client(deadline.client_id)
    owner = ctx.owner_of(client)
    tz = client.timezone or ctx.settings.working_hours.timezone
    expires_at = now + ctx.settings.review.token_ttl.as_timedelta()
    claims = core.TokenClaims(core.token_id_from_bytes(secrets.token_bytes(10)), "deadline", deadline.id, None, None,
                              owner.id, "deadline", expires_at)
    token = core.issue_token(ctx.secrets.token_key, claims)
    last = ctx.store.recent_messages(client.id, 5)
    context = {
        **common_context(ctx, client, owner),
        "release": _release(ctx, deadline, tz),
        "last_messages": [{"sent_at": describe_time(m.at, tz), "direction": "from us" if m.direction == "out"
                           else "from the client", "subject": m.subject} for m in reversed(last)],
        "casefile_path": _casefile_path(ctx, client.id),
    }
    _, message_id = queue_mail(
        ctx, kind=f"reminder-{deadline.kind}", key=f"{deadline.id}:{claims.token_id}",
        template=REMINDER_TEMPLATES.get(deadline.kind, "followup_reminder.txt.j2"), context=context,
        to=[owner.email], now=now, client_id=client.id, deadline_id=deadline.id,
        reply_to=[core.token_address(ctx.settings.mailbox.address, token)], subject_prefix=core.subject_tag(claims.token_id))
    ctx.store.issue_token(TokenRow(claims.token_id, "", "deadline", deadline.id, None, None, owner.id, "deadline",
                                   expires_at, message_id, now))


def close_by_reply(ctx: Context, deadline: Deadline, token_row: TokenRow, judgement: core.Judgement, row, auth,
                   now: datetime) -> None:
    note = judgement.command.reason if judgement.command else ""
    if deadline.kind == "retrospective" and note:
        ctx.store.add_note(deadline.client_id, token_row.person, note, now)  # the lessons, kept in the case file
    if ctx.store.close_deadline(deadline.id, "done", now, token_row.person, note):
        ctx.store.append_event("deadline_closed", at=now, client_id=deadline.client_id, draft_id=deadline.draft_id,
                               message_ids=[row.message_id],
                               data={"deadline_id": deadline.id, "kind": deadline.kind, "by": token_row.person,
                                     "note": note, "authentication": auth, "outcome": outcome_of(deadline.kind, note)})


def close_by_command(ctx: Context, deadline_id: int, note: str, who: str, now: datetime) -> bool:
    deadline = ctx.store.deadline(deadline_id)
    with ctx.store.transaction():
        closed = ctx.store.close_deadline(deadline_id, "done", now, who, note)
        if closed:
            ctx.store.append_event("deadline_closed", at=now, client_id=deadline.client_id, draft_id=deadline.draft_id,
                                   data={"deadline_id": deadline_id, "kind": deadline.kind, "by": who, "note": note,
                                         "via": "command line", "outcome": outcome_of(deadline.kind, note)})
    return closed


def resume_held(ctx: Context, now: datetime) -> None:
    """Drafts whose HOLD is over go back to whoever must still read them (the core decides)."""
    for draft in ctx.store.drafts(["held"]):
        if draft.hold_until is None or draft.hold_until > now:
            continue
        try:
            with ctx.store.transaction():
                advance(ctx, draft, machine.Event("hold_over", person="parting", reason="the hold is over"), now,
                        event_kind="hold_over")
        except Exception as problem:  # noqa: BLE001 - one draft's failure must not stop the others
            park(ctx, f"draft {draft.id} (its hold is over)", f"draft:{draft.id}:hold_over:{draft.hold_until}",
                 problem, now, client_id=draft.client_id, draft_id=draft.id)


def _casefile_path(ctx: Context, client_id: str) -> str:
    written = ctx.store.events(client_id=client_id, kinds=["casefile_written"])
    return (written[-1].data or {})["path"] if written else f"parting casefile {client_id} --format html --output FILE"


def _release(ctx: Context, deadline: Deadline, tz: str) -> dict[str, str]:
    draft = ctx.store.draft(deadline.draft_id) if deadline.draft_id else None
    sent_at = (deadline.data or {}).get("release_sent_at")
    return {"subject": draft.subject if draft else "",
            "sent_at": describe_time(datetime.fromisoformat(sent_at), tz) if sent_at else ""}
