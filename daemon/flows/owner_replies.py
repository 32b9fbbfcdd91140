"""Owner replies that are not about a draft or a deadline: ANSWERED to an owner notice, and ASSIGN
or DISMISS to a triage email.

They go through the same judgement as review replies (core/review.judge_reply: the token, the
sender, Authentication-Results, auto-replies, the command read from the new text only), and
each reply is handled once: the token's single use, the decision, the event and the processed
mark commit together. flows/replies.handle_reply hands these tokens over here.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from daemon.adapters.store import MessageRow, TokenRow
from daemon.core import review as core
from daemon.core.answers import AnswerProblem, check_answer, read_answered
from daemon.flows.context import Context, common_context, judge_staff_reply, person_named, queue_mail

SUBJECTS = ("notice", "triage")


def handle_owner_reply(ctx: Context, row: MessageRow, token_row: TokenRow, facts: core.ReplyFacts,
                       now: datetime) -> core.Judgement:
    store = ctx.store
    person = person_named(ctx, token_row.person)
    client_id, state = _subject(ctx, token_row)
    record = core.TokenRecord(
        core.TokenClaims(token_row.token_id, token_row.subject_kind, token_row.subject_id, None, None,
                         token_row.person, token_row.role, token_row.expires_at),
        person.email if person else "", token_row.review_message_id, token_row.used_at, token_row.issued_at)
    judgement = judge_staff_reply(ctx, facts, record, row.evidence_headers, current_version=None, state=state, now=now)
    auth = asdict(judgement.authentication) if judgement.authentication else None
    problem = _problem(ctx, judgement.command, client_id, row, now) if judgement.accepted else None
    if problem is not None:  # refused before the token is spent, so a corrected reply to it still counts
        judgement = core.Judgement(False, problem, judgement.command, judgement.safe_to_answer, "unknown_command",
                                   judgement.authentication)
    with store.transaction():
        if judgement.accepted and not store.use_token(token_row.token_id, now, row.message_id):
            judgement = core.Judgement(False, "this token was already used", None, False, "replayed",
                                       judgement.authentication)
        if judgement.accepted and judgement.command is not None:
            _apply(ctx, token_row, judgement.command, row, client_id, now)
        if not judgement.accepted:
            store.append_event("reply_refused", at=now, client_id=client_id, message_ids=[row.message_id],
                               data={"code": judgement.code, "reason": judgement.reason, "from": row.from_addr,
                                     "authentication": auth})
            store.mark_reply_processed(row.message_id, f"refused: {judgement.code}", now)
            if judgement.safe_to_answer and person is not None:
                client = ctx.settings.client(client_id) if client_id else None
                queue_mail(ctx, kind="refusal", key=f"refusal:{row.message_id}", template="review_refused.txt.j2",
                           context={**common_context(ctx, client, person), "reason": judgement.reason,
                                    "instead": core.command_help(token_row.role)},
                           to=[person.email], now=now, client_id=client_id, in_reply_to=row.message_id)
            ctx.log.warning("reply refused: %s", judgement.reason, extra={"message_id": row.message_id})
            return judgement
        store.mark_reply_processed(row.message_id, f"accepted: {judgement.command.kind}", now)  # type: ignore[union-attr]
    return judgement


def _subject(ctx: Context, token_row: TokenRow) -> tuple[str | None, str]:
    """(client id, "open" or "closed") of the token's notice or triage item."""
    if token_row.subject_kind == "notice":
        return ctx.store.notice(token_row.subject_id).client_id, "open"
    item = next((t for t in ctx.store.triage(open_only=False) if t.id == token_row.subject_id), None)
    if item is None:
        return None, "closed"
    return item.client_id, "open" if item.closed_at is None else "closed"


def _problem(ctx: Context, command: core.Command | None, client_id: str | None, row: MessageRow,
             now: datetime) -> str | None:
    """Why an accepted command cannot be carried out, in words; None when it can."""
    if command is None:
        return "no command"
    if command.kind == "answered":
        how, note = read_answered(command.reason)
        try:
            check_answer(how, note, row.at, now)
        except AnswerProblem as problem:
            return f"{problem}: write ANSWERED and what the client said, e.g. ANSWERED by phone: she agreed"
        return None if client_id is not None else "the notice names no client"
    if command.kind in ("assign", "dismiss"):
        from daemon.flows.triage import triage_problem

        return triage_problem(ctx, command)
    return f"{command.kind.upper()} does not apply here"


def _apply(ctx: Context, token_row: TokenRow, command: core.Command, row: MessageRow, client_id: str | None,
           now: datetime) -> None:
    if command.kind == "answered" and client_id is not None:
        from daemon.flows.answered import record_answer

        how, note = read_answered(command.reason)
        record_answer(ctx, ctx.settings.client(client_id), how=how, note=note, by=token_row.person, at=row.at,
                      now=now, via=f"reply {row.message_id}", message_ids=(row.message_id,))
    elif command.kind in ("assign", "dismiss"):
        from daemon.flows.triage import apply_triage_command

        apply_triage_command(ctx, token_row.subject_id, command, token_row.person, now, via=f"reply {row.message_id}")
