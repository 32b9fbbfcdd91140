"""The sender: outbox rows leave at most once and are never silently lost.

A row is claimed (`sending`, committed) before SMTP DATA; `sent` is written after the server's
answer. A 4xx or a connection problem before the message was transmitted is retried with
backoff up to `smtp.max_attempts`, then `failed`; a 5xx is `failed` at once; a lost answer after
the whole message went out is `uncertain`. Failed and uncertain rows tell the owner and wait for
a person (`parting outbox resend|cancel`). After a crash, a row left `sending` is looked up in
the Sent folder by Message-ID: found means sent, otherwise uncertain.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Awaitable, Callable

from daemon.adapters import mailer
from daemon.adapters.store import OutboxRow
from daemon.faults import crash_point
from daemon.flows.context import Context, common_context, queue_mail

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
# Mail about mail: a failure to deliver one of these is logged, never mailed about again.
SILENT_KINDS = ("send-failed",)

Sender = Callable[[OutboxRow], Awaitable[mailer.SendResult]]
AfterSent = Callable[[OutboxRow], Awaitable[None]]


def retry_delay(attempts: int) -> timedelta:
    return min(RETRY_CAP, RETRY_BASE * (2 ** max(0, attempts - 1)))


async def send_due(ctx: Context, now: Callable[[], datetime], send: Sender, *, after_sent: AfterSent | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> int:
    """Send every row that is due, within the hourly limit; returns how many left."""
    sent = 0
    limit = ctx.settings.mailbox.smtp.max_per_hour
    while not should_stop():
        moment = now()
        if ctx.store.sent_since(moment - timedelta(hours=1)) >= limit:
            ctx.log.warning("hourly limit of %d messages reached; the rest wait", limit)
            break
        row = ctx.store.claim_next(moment)
        if row is None:
            break
        crash_point("after_claim")
        if await send_one(ctx, row, now, send):
            sent += 1
            if after_sent is not None:
                await after_sent(ctx.store.row(row.id))
    return sent


async def send_one(ctx: Context, row: OutboxRow, now: Callable[[], datetime], send: Sender) -> bool:
    extra = {"outbox": row.id, "client": row.client_id, "draft": row.draft_id, "message_id": row.message_id}
    try:
        result = await send(row)
    except mailer.UncertainDelivery as problem:
        with ctx.store.transaction():
            ctx.store.mark_uncertain(row.id, now())
            _event(ctx, row, "send_uncertain", now(), reason=problem.reason)
            _tell_owner(ctx, row, "uncertain", problem.reason, now())
        ctx.log.error("delivery uncertain, a person must decide: %s", problem.reason, extra=extra)
        return False
    except mailer.PermanentFailure as problem:
        _fail(ctx, row, problem.reason, now())
        ctx.log.error("delivery failed: %s", problem.reason, extra=extra)
        return False
    except mailer.TemporaryFailure as problem:
        if row.attempts >= ctx.settings.mailbox.smtp.max_attempts:
            _fail(ctx, row, f"{problem.reason} (after {row.attempts} attempts)", now())
            ctx.log.error("delivery failed after %d attempts: %s", row.attempts, problem.reason, extra=extra)
        else:
            moment = now()
            ctx.store.mark_retry(row.id, problem.reason, moment + retry_delay(row.attempts), moment)
            ctx.log.warning("delivery deferred (attempt %d): %s", row.attempts, problem.reason, extra=extra)
        return False
    crash_point("after_smtp_before_sent")
    with ctx.store.transaction():
        ctx.store.mark_sent(row.id, f"{result.code} {result.reply}", now())
        _event(ctx, row, "sent", now(), server_reply=f"{result.code} {result.reply}")
    crash_point("after_sent")
    ctx.log.info("sent %s", row.kind, extra=extra)
    return True


async def recover_in_flight(ctx: Context, found_in_sent: Callable[[str], Awaitable[bool | None]],
                            now: Callable[[], datetime]) -> list[tuple[int, str]]:
    """Rows left `sending` by a crash: in Sent means sent; otherwise uncertain (never resent by itself)."""
    outcomes = []
    for row in ctx.store.rows(["sending"]):
        found = await found_in_sent(row.message_id)
        with ctx.store.transaction():
            if found:
                ctx.store.mark_sent(row.id, "found in the Sent folder after a restart", now())
                _event(ctx, row, "sent", now(), server_reply="found in the Sent folder after a restart")
                outcomes.append((row.id, "sent"))
            else:
                why = ("not found in the Sent folder after a restart" if found is False
                       else "the Sent folder could not be searched after a restart")
                ctx.store.mark_uncertain(row.id, now())
                _event(ctx, row, "send_uncertain", now(), reason=why)
                _tell_owner(ctx, row, "uncertain", why, now())
                outcomes.append((row.id, "uncertain"))
        ctx.log.warning("outbox row left sending by a crash is now %s", outcomes[-1][1],
                        extra={"outbox": row.id, "message_id": row.message_id})
    return outcomes


def _fail(ctx: Context, row: OutboxRow, reason: str, at: datetime) -> None:
    with ctx.store.transaction():
        ctx.store.mark_failed(row.id, reason, at)
        _event(ctx, row, "send_failed", at, reason=reason)
        _tell_owner(ctx, row, "failed", reason, at)


def _event(ctx: Context, row: OutboxRow, kind: str, at: datetime, **data: object) -> None:
    ctx.store.append_event(kind, at=at, client_id=row.client_id, draft_id=row.draft_id,
                           message_ids=[row.message_id],
                           data={"outbox_id": row.id, "kind": row.kind, "attempts": row.attempts,
                                 "recipients": list(row.recipients), **data})


def _tell_owner(ctx: Context, row: OutboxRow, status: str, reason: str, at: datetime) -> None:
    if row.kind in SILENT_KINDS:
        return
    client = ctx.settings.client(row.client_id) if row.client_id else None
    people = [ctx.owner_of(client)] if client else list(ctx.settings.people[:1])
    subject = _subject_of(row.raw)
    for person in people:
        queue_mail(ctx, kind="send-failed", key=f"{row.id}:{status}:{row.attempts}", template="send_failed.txt.j2",
                   context={**common_context(ctx, client, person),
                            "message": {"id": row.id, "kind": row.kind, "subject": subject,
                                        "to": ", ".join(row.recipients), "status": status, "reason": reason,
                                        "attempts": row.attempts}},
                   to=[person.email], now=at, client_id=row.client_id)


def _subject_of(raw: bytes) -> str:
    from email.parser import BytesHeaderParser
    from email.policy import default

    try:
        return str(BytesHeaderParser(policy=default).parsebytes(raw).get("Subject", ""))
    except Exception:  # noqa: BLE001 - a subject for a notice is a nicety, never a reason to fail
        return ""
