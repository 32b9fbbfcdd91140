"""The sender: outbox rows leave at most once and are never silently lost.

A row is claimed (`sending`, committed) before SMTP DATA. After the server accepts the message,
a copy is filed in Sent (when the service does that), then `sent` is written together with what
the send sets off (a release's draft is closed and its follow-up deadlines start) in one
transaction. A 4xx or a connection problem before the message was transmitted is retried with
backoff (on the injected clock) up to `smtp.max_attempts`, then `failed`; a 5xx is `failed` at
once; a lost answer after the whole message went out is `uncertain`. Failed and uncertain rows
tell the client's owner and wait for a person (`parting outbox resend|cancel`). After a crash, a
row left `sending` is looked up in the Sent folder by Message-ID: found means sent, otherwise
uncertain. Nothing is ever sent again without a person. After a start, every other unfinished
row (queued, uncertain, failed) is looked up too (`settle_from_sent`): a database restored from
a replica may have lost the writes that recorded its mail leaving.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from email import policy as email_policy
from email.parser import BytesParser
from email.utils import format_datetime

from daemon.adapters import smtp as mailer
from daemon.adapters.store import OutboxRow, StoreError
from daemon.adapters.templates import TemplateProblem
from daemon.core.outgoing import SMTP_POLICY, HeaderInjection, InvalidAddress
from daemon.flows.context import Context, common_context, queue_mail
from daemon.flows.followup import after_release_sent
from daemon.runtime.faults import crash_point

RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
RATE_WINDOW = timedelta(hours=1)
# Mail about mail: a failure to deliver one of these is logged, never mailed about again.
SILENT_KINDS = ("send-failed",)

Sender = Callable[[OutboxRow], Awaitable[mailer.SendResult]]
FileCopy = Callable[[OutboxRow], Awaitable[None]]


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, 8... minutes after the attempt that failed, never more than an hour."""
    return min(RETRY_CAP, RETRY_BASE * (2 ** max(0, attempts - 1)))


def restamped(raw: bytes, when: datetime) -> bytes:
    """The message with its Date set to `when` (the moment it is handed to the server).

    A release waits for send_delay, retries or a person's resend; its Date should say when it
    left, not when it was approved. Set through EmailMessage; if anything but the Date line
    would change, the original bytes are kept: the endorsed text is never touched.
    """
    try:
        message = BytesParser(policy=SMTP_POLICY).parsebytes(raw)
        message.replace_header("Date", format_datetime(when))
        fresh = message.as_bytes()
    except Exception:  # noqa: BLE001 - an old Date is a blemish; a changed message would be a fault
        return raw
    return fresh if _without_date(fresh) == _without_date(raw) else raw


def _without_date(raw: bytes) -> list[bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")] + [body]


async def send_due(ctx: Context, now: Callable[[], datetime], send: Sender, *, file_copy: FileCopy | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> int:
    """Send every row that is due, within the hourly limit; returns how many left.

    Rows over the limit stay queued (nothing is lost) and go as the hour's window moves on.
    """
    sent = 0
    limit = ctx.settings.mailbox.smtp.max_per_hour
    while not should_stop():
        moment = now()
        if ctx.store.sent_since(moment - RATE_WINDOW) >= limit:
            waiting = _due_count(ctx, moment)
            if waiting:
                ctx.log.warning("hourly limit of %d messages reached; %d due message(s) wait", limit, waiting)
            break
        row = ctx.store.claim_next(moment)
        if row is None:
            break
        _crash_point("after_claim", row)
        if await send_one(ctx, row, now, send, file_copy=file_copy):
            sent += 1
    return sent


async def send_one(ctx: Context, row: OutboxRow, now: Callable[[], datetime], send: Sender, *,
                   file_copy: FileCopy | None = None) -> bool:
    """One claimed (`sending`) row over SMTP; True when the server accepted it."""
    extra = {"outbox": row.id, "client": row.client_id, "draft": row.draft_id, "message_id": row.message_id}
    outgoing = replace(row, raw=restamped(row.raw, now()))
    try:
        result = await send(outgoing)
    except mailer.UncertainDelivery as problem:
        _uncertain(ctx, row, problem.reason, now())
        ctx.log.error("delivery uncertain, a person must decide: %s", problem.reason, extra=extra)
        return False
    except mailer.PermanentFailure as problem:
        _fail(ctx, row, problem.reason, now())
        ctx.log.error("delivery failed: %s", problem.reason, extra=extra)
        return False
    except mailer.TemporaryFailure as problem:
        _defer_or_fail(ctx, row, problem.reason, now(), extra)
        return False
    except Exception as problem:  # noqa: BLE001 - what happened is unknown, so a person decides
        _uncertain(ctx, row, f"unexpected error while sending: {problem!r}", now())
        ctx.log.exception("delivery uncertain after an unexpected error", extra=extra)
        return False
    _crash_point("after_smtp_before_sent", row)
    if file_copy is not None:
        # Before `sent` is written: a crash from here on is resolved from the Sent folder.
        try:
            await file_copy(outgoing)
        except Exception as problem:  # noqa: BLE001 - the mail left; a missing copy is logged, not fatal
            ctx.log.warning("could not file a copy in Sent: %s", problem, extra=extra)
        _crash_point("after_copy_before_sent", row)
    reply = f"{result.code} {result.reply}"
    with ctx.store.transaction():
        ctx.store.mark_sent(row.id, reply, now())
        _event(ctx, row, "sent", now(), server_reply=reply)
        _consequences(ctx, row, now())
    _crash_point("after_sent", row)
    ctx.log.info("sent %s", row.kind, extra=extra)
    return True


async def recover_in_flight(ctx: Context, found_in_sent: Callable[[str], Awaitable[bool | None]],
                            now: Callable[[], datetime]) -> list[tuple[int, str]]:
    """Rows left `sending` by a crash: in Sent means sent; otherwise uncertain (never resent by itself).

    `found_in_sent` answers True, False, or None when the folder could not be searched.
    """
    outcomes = []
    for row in ctx.store.rows(["sending"]):
        found = await found_in_sent(row.message_id)
        if found:
            why = "found in the Sent folder after a restart"
            with ctx.store.transaction():
                ctx.store.mark_sent(row.id, why, now())
                _event(ctx, row, "sent", now(), server_reply=why)
                _consequences(ctx, row, now())
            outcomes.append((row.id, "sent"))
        else:
            why = ("not found in the Sent folder after a restart" if found is False
                   else "the Sent folder could not be searched after a restart")
            _uncertain(ctx, row, why, now())
            outcomes.append((row.id, "uncertain"))
        ctx.log.warning("outbox row left sending by a crash is now %s", outcomes[-1][1],
                        extra={"outbox": row.id, "message_id": row.message_id})
    return outcomes


# Rows that a lost write (a database restored from a replica that missed its last seconds) may
# show unfinished although their mail left: a `queued` row whose claim and `sent` were lost, an
# `uncertain` or `failed` row whose resend by a person and `sent` were lost. (`sending` rows are
# recover_in_flight's.) `sent` and `cancelled` are final: nothing is looked up for them.
UNFINISHED = ("queued", "uncertain", "failed")


async def settle_from_sent(ctx: Context, found_in_sent: Callable[[str], Awaitable[bool | None]],
                           now: Callable[[], datetime], checked: set[int] | None = None, *,
                           doubt_upto: int | None = None) -> dict[int, str]:
    """Before sending after a start: every unfinished row whose Message-ID is already in the Sent
    folder is marked sent, with its `sent` event and what a send sets off, and is never sent again.

    Message-IDs are deterministic (derived from the decision that queued the mail), so a row that
    a replayed reply queues again carries the Message-ID of the copy the old host sent.
    Returns each row looked up: "sent" (found), "unsent" (not found, left as it was) or
    "unknown" (the folder could not be searched, left as it was; the caller must not send it).
    Row ids in `checked` are skipped, and rows with a definite answer are added to it, so a
    caller that settles before every cycle looks each row up once.

    `doubt_upto` (after a restore: the highest row id the restored copy held): such a `queued` row
    that is due and not in Sent becomes `uncertain`, for a person to resend or confirm. The lost writes may have
    claimed it and handed it to the server, and the copy is filed in Sent only after that: a host
    that died in between left no trace in the folder. A late release is better than a second one.
    """
    outcomes: dict[int, str] = {}
    for row in ctx.store.rows(list(UNFINISHED)):
        if checked is not None and row.id in checked:
            continue
        found = await found_in_sent(row.message_id)
        outcomes[row.id] = "sent" if found else "unsent" if found is False else "unknown"
        if found:
            why = f"found in the Sent folder after a restart (was {row.state}): not sent again"
            with ctx.store.transaction():
                ctx.store.mark_found_in_sent(row.id, why, now())
                _event(ctx, row, "sent", now(), server_reply=why, recovered_from=row.state)
                _consequences(ctx, row, now())
            ctx.log.warning("outbox row %d (%s) was %s but is in the Sent folder: marked sent, not sent again",
                            row.id, row.kind, row.state, extra={"outbox": row.id, "message_id": row.message_id})
        elif (found is False and doubt_upto is not None and row.id <= doubt_upto and row.state == "queued"
              and _is_due(row, now())):
            _uncertain(ctx, row, "restored from a replica: it was due, so the lost writes may have sent it,"
                                 " and it is not in the Sent folder", now())
            outcomes[row.id] = "uncertain"
            ctx.log.warning("outbox row %d (%s) was due before the restore and is not in Sent: uncertain,"
                            " a person decides", row.id, row.kind, extra={"outbox": row.id})
        if checked is not None and found is not None:
            checked.add(row.id)
    return outcomes


def _defer_or_fail(ctx: Context, row: OutboxRow, reason: str, at: datetime, extra: dict) -> None:
    if row.attempts >= ctx.settings.mailbox.smtp.max_attempts:
        _fail(ctx, row, f"{reason} (after {row.attempts} attempts)", at)
        ctx.log.error("delivery failed after %d attempts: %s", row.attempts, reason, extra=extra)
        return
    next_attempt = at + retry_delay(row.attempts)
    with ctx.store.transaction():
        ctx.store.mark_retry(row.id, reason, next_attempt, at)
        _event(ctx, row, "send_deferred", at, reason=reason, next_attempt_at=next_attempt.isoformat())
    ctx.log.warning("delivery deferred (attempt %d), next at %s: %s", row.attempts, next_attempt.isoformat(),
                    reason, extra=extra)


def _uncertain(ctx: Context, row: OutboxRow, reason: str, at: datetime) -> None:
    with ctx.store.transaction():
        ctx.store.mark_uncertain(row.id, at)
        _event(ctx, row, "send_uncertain", at, reason=reason)
        _tell_owner(ctx, row, "uncertain", reason, at)


def _fail(ctx: Context, row: OutboxRow, reason: str, at: datetime) -> None:
    with ctx.store.transaction():
        ctx.store.mark_failed(row.id, reason, at)
        _event(ctx, row, "send_failed", at, reason=reason)
        _tell_owner(ctx, row, "failed", reason, at)


def confirm_delivered(ctx: Context, row: OutboxRow, who: str, at: datetime) -> None:
    """A person confirmed that an `uncertain` row did arrive: it is sent, as if the server had said so."""
    if row.state != "uncertain":
        raise StoreError(f"cannot confirm outbox row {row.id}: it is {row.state}, and only an uncertain row"
                         " can be confirmed as delivered")
    with ctx.store.transaction():
        if blocker := ctx.store.release_blocker(row):
            raise StoreError(f"cannot confirm outbox row {row.id}: {blocker}; a release is confirmed only while"
                             " its draft is sendable at the version the row carries")
        ctx.store.mark_sent(row.id, f"confirmed delivered by {who}", at)
        _event(ctx, row, "sent", at, server_reply=f"confirmed delivered by {who}")
        ctx.store.append_event("outbox_confirm", at=at, client_id=row.client_id, draft_id=row.draft_id,
                               message_ids=[row.message_id],
                               data={"outbox_id": row.id, "kind": row.kind, "from_state": row.state, "by": who})
        _consequences(ctx, row, at)


def _consequences(ctx: Context, row: OutboxRow, at: datetime) -> None:
    """What a sent row sets off (a release's follow-up deadlines), inside the `sent` transaction.

    A savepoint: if it cannot be done (a client removed from the config, say), `sent` still
    stands, since the mail did leave, and the problem is recorded for a person.
    """
    try:
        with ctx.store.transaction():
            after_release_sent(ctx, row, at)
    except Exception as problem:  # noqa: BLE001 - never let bookkeeping undo the record of a sent mail
        ctx.store.append_event("after_send_failed", at=at, client_id=row.client_id, draft_id=row.draft_id,
                               message_ids=[row.message_id],
                               data={"outbox_id": row.id, "kind": row.kind, "reason": repr(problem)})
        ctx.log.exception("sent, but what follows a send could not be recorded",
                          extra={"outbox": row.id, "client": row.client_id})


def _due_count(ctx: Context, moment: datetime) -> int:
    return sum(1 for row in ctx.store.rows(["queued"]) if _is_due(row, moment))


def _is_due(row: OutboxRow, moment: datetime) -> bool:
    return ((row.not_before is None or row.not_before <= moment)
            and (row.next_attempt_at is None or row.next_attempt_at <= moment))


def _crash_point(name: str, row: OutboxRow) -> None:
    """`name` for every row, and `name.kind` (after_claim.release) to aim at one kind of mail."""
    crash_point(name)
    crash_point(f"{name}.{row.kind}")


def _event(ctx: Context, row: OutboxRow, kind: str, at: datetime, **data: object) -> None:
    ctx.store.append_event(kind, at=at, client_id=row.client_id, draft_id=row.draft_id,
                           message_ids=[row.message_id],
                           data={"outbox_id": row.id, "kind": row.kind, "attempts": row.attempts,
                                 "recipients": list(row.recipients), **data})


def _tell_owner(ctx: Context, row: OutboxRow, status: str, reason: str, at: datetime) -> None:
    """Queue a notice to the client's owner (or the first person when no client is involved).

    A notice that cannot be built (a custom template with a bad subject, say) is recorded and
    logged; it never undoes the row's new state.
    """
    if row.kind in SILENT_KINDS:
        return
    client = ctx.settings.client(row.client_id) if row.client_id in {c.id for c in ctx.settings.clients} else None
    people = [ctx.owner_of(client)] if client else list(ctx.settings.people[:1])
    subject = _subject_of(row.raw)
    for person in people:
        try:
            with ctx.store.transaction():
                queue_mail(ctx, kind="send-failed", key=f"{row.id}:{status}:{row.attempts}",
                           template="send_failed.txt.j2",
                           context={**common_context(ctx, client, person),
                                    "message": {"id": row.id, "kind": row.kind, "subject": subject,
                                                "to": ", ".join(row.recipients), "status": status,
                                                "reason": reason, "attempts": row.attempts}},
                           to=[person.email], now=at, client_id=row.client_id)
        except (HeaderInjection, InvalidAddress, TemplateProblem, ValueError) as problem:
            ctx.store.append_event("mail_refused", at=at, client_id=row.client_id, draft_id=row.draft_id,
                                   message_ids=[row.message_id],
                                   data={"action": "send-failed notice", "outbox_id": row.id,
                                         "reason": f"{type(problem).__name__}: {problem}"})
            ctx.log.error("could not tell %s that outbox row %d is %s: %s", person.id, row.id, status, problem,
                          extra={"outbox": row.id, "client": row.client_id})


def _subject_of(raw: bytes) -> str:
    try:
        return str(BytesParser(policy=email_policy.default).parsebytes(raw, headersonly=True).get("Subject", ""))
    except Exception:  # noqa: BLE001 - a subject for a notice is a nicety, never a reason to fail
        return ""
