"""Staff replies: judged in the core, routed by their token's subject (a draft or a deadline) here.

Each reply is handled in one transaction: the token's single use, what the decision sets off
(flows/drafts.py `advance` for a draft, flows/followup.py `close_by_reply` for a deadline) and
the event. A reply is handled once, even across restarts (`processed_reply`).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from daemon.adapters.store import Draft, TokenRow
from daemon.adapters.templates import TemplateProblem
from daemon.core import release as machine
from daemon.core import review as core
from daemon.core.outgoing import HeaderInjection, InvalidAddress
from daemon.flows import owner_replies
from daemon.flows.context import Context, common_context, judge_staff_reply, person_named, queue_mail
from daemon.flows.drafts import advance
from daemon.flows.followup import close_by_reply
from daemon.runtime.faults import crash_point


def handle_reply(ctx: Context, message_id: str, now: datetime) -> core.Judgement | None:
    """Judge one staff reply to a review email or notice and apply it; None when handled before."""
    store = ctx.store
    if store.processed_reply(message_id):
        return None
    row = store.message(message_id)
    if row is None:
        raise ValueError(f"no stored message {message_id} to handle as a reply")
    facts = core.reply_facts(
        from_addr=row.from_addr, to_addrs=row.to_addrs, cc_addrs=row.cc_addrs, in_reply_to=row.in_reply_to,
        references=row.references, subject=row.subject, auto_reply=row.auto_reply,
        authentication_results=row.auth_results, text=row.body_text, our_address=ctx.settings.mailbox.address,
        header_counts=row.header_counts, date=row.date_header,
    )
    parts = core.split_token(facts.token) if facts.token else None
    token_row = store.token(parts[0]) if parts else None
    if facts.token and token_row is not None and token_row.subject_kind in owner_replies.SUBJECTS:
        return owner_replies.handle_owner_reply(ctx, row, token_row, facts, now)  # ANSWERED, ASSIGN, DISMISS
    record, subject = None, None
    if token_row is not None:
        person = person_named(ctx, token_row.person)
        record = core.TokenRecord(
            core.TokenClaims(token_row.token_id, token_row.subject_kind, token_row.subject_id, token_row.version,
                             token_row.text_sha256, token_row.person, token_row.role, token_row.expires_at),
            person.email if person else "", token_row.review_message_id,
            # A token revoked with its version or draft (no reply spent it) is judged by why it died
            # (superseded, no longer in review); the store still never lets it be spent.
            token_row.used_at if token_row.used_by_message_id else None, token_row.issued_at)
        subject = (store.draft(token_row.subject_id) if token_row.subject_kind == "draft"
                   else store.deadline(token_row.subject_id))
    is_draft = token_row is not None and token_row.subject_kind == "draft"
    judgement = judge_staff_reply(
        ctx, facts, record, row.evidence_headers,
        current_version=subject.current_version if is_draft else None,  # type: ignore[union-attr]
        state=subject.state if subject is not None else "unknown", now=now)
    client_id = subject.client_id if subject is not None else None
    try:
        judgement = _record(ctx, judgement, row, token_row, subject, client_id, now)
    except (HeaderInjection, InvalidAddress, TemplateProblem) as problem:
        # The decision could not be carried out without writing an unsafe or broken mail: it is
        # recorded once (never retried every cycle) and a person fixes the config or template.
        with store.transaction():
            store.append_event("mail_refused", at=now, client_id=client_id,
                               draft_id=subject.id if is_draft else None,  # type: ignore[union-attr]
                               message_ids=[message_id],
                               data={"reason": f"{type(problem).__name__}: {problem}", "reply_from": row.from_addr})
            store.mark_reply_processed(message_id, "refused: the resulting mail could not be built", now)
        ctx.log.error("reply from %s could not be applied, nothing queued: %s", row.from_addr, problem,
                      extra={"message_id": message_id, "client": client_id})
        return judgement
    crash_point("after_reply_committed")  # the fault tests: a decision (and any release it queued) is committed
    return judgement


def _record(ctx: Context, judgement: core.Judgement, row, token_row: TokenRow | None, subject, client_id,
            now: datetime) -> core.Judgement:
    """The judgement's consequences, in one transaction; returns it (a lost race for the token is a replay)."""
    store, message_id = ctx.store, row.message_id
    auth = asdict(judgement.authentication) if judgement.authentication else None
    is_draft = token_row is not None and token_row.subject_kind == "draft"
    with store.transaction():
        if judgement.accepted and token_row is not None and not store.use_token(token_row.token_id, now, message_id):
            judgement = core.Judgement(False, "this review token was already used", None, False, "replayed",
                                       judgement.authentication)
        if not judgement.accepted or token_row is None or judgement.command is None:
            store.append_event("reply_refused", at=now, client_id=client_id,
                               draft_id=subject.id if is_draft else None, message_ids=[message_id],
                               data={"code": judgement.code, "reason": judgement.reason, "from": row.from_addr,
                                     "authentication": auth})
            store.mark_reply_processed(message_id, f"refused: {judgement.code}", now)
            if judgement.safe_to_answer:
                _answer_refusal(ctx, row, judgement, client_id, token_row.role if token_row else "owner", now)
            ctx.log.warning("reply refused: %s", judgement.reason, extra={"message_id": message_id, "client": client_id})
            return judgement
        ctx.log.info("reply accepted: %s", judgement.reason, extra={"message_id": message_id, "client": client_id})
        if judgement.authentication_skipped:
            ctx.log.warning("reply accepted WITHOUT authentication (review.require_authentication is false)",
                            extra={"message_id": message_id, "client": client_id})
        command = judgement.command
        if is_draft:
            advance(ctx, subject, machine.Event("command", command, token_row.person, token_row.role), now,
                    via_message_id=message_id,
                    data={"person": token_row.person, "role": token_row.role, "command": command.kind,
                          "reason": command.reason, "authentication": auth,
                          "authentication_skipped": judgement.authentication_skipped})
        else:
            close_by_reply(ctx, subject, token_row, judgement, row, auth, now)
        store.mark_reply_processed(message_id, f"accepted: {command.kind}", now)
    return judgement


def _answer_refusal(ctx: Context, row, judgement: core.Judgement, client_id: str | None, role: str,
                    now: datetime) -> None:
    person = next((p for p in ctx.settings.people if p.email == row.from_addr), None)
    if person is None:
        return
    client = ctx.settings.client(client_id) if client_id else None
    queue_mail(ctx, kind="refusal", key=f"refusal:{row.message_id}", template="review_refused.txt.j2",
               context={**common_context(ctx, client, person), "reason": judgement.reason,
                        "instead": judgement.command.problem if judgement.command and judgement.command.problem
                        else core.command_help(role)},
               to=[person.email], now=now, client_id=client_id, in_reply_to=row.message_id)


def draft_of_reply(ctx: Context, message_id: str) -> Draft | None:
    """The draft a stored reply's token names, if any (read without judging the reply)."""
    row = ctx.store.message(message_id)
    token = core.token_from_addresses((*row.to_addrs, *row.cc_addrs), ctx.settings.mailbox.address) if row else None
    parts = core.split_token(token) if token else None
    token_row = ctx.store.token(parts[0]) if parts else None
    if token_row is None or token_row.subject_kind != "draft":
        return None
    return ctx.store.draft(token_row.subject_id)


def hold_after_failure(ctx: Context, message_id: str, reason: str, now: datetime) -> bool:
    """A reply about a draft that could not be handled may have said STOP: its draft is held for a
    day (its release row cancelled) rather than sent unread. True when a draft was held."""
    draft = draft_of_reply(ctx, message_id)
    if draft is None or draft.state not in ("owner_review", "second_review", "sendable"):
        return False
    hold = machine.Event("command", core.Command("hold", reason=reason, days=1), "parting", "owner")
    with ctx.store.transaction():
        advance(ctx, draft, hold, now, via_message_id=message_id,
                data={"person": "parting", "role": "owner", "command": "hold", "reason": reason})
    return True
