"""Review requests nobody answers: remind once, then offer the review to the next reviewer.

Computed from the tokens themselves (issued, unused, unexpired, for the current version), so
there is no separate schedule to keep in step; each reminder and offer is an event, which is
also what makes it happen only once.
"""

from __future__ import annotations

from datetime import datetime

from daemon.core import review as core
from daemon.faults import crash_point
from daemon.flows.context import Context
from daemon.flows.review import ask, review_email


def remind_reviews(ctx: Context, now: datetime) -> None:
    wait = ctx.settings.review.remind_after
    for draft in ctx.store.drafts(["owner_review", "second_review"]):
        client = ctx.settings.client(draft.client_id)
        calendar = ctx.calendar(client)
        history = {(e.kind, e.data.get("token_id")): e for e in ctx.store.events(
            client_id=client.id, kinds=["review_reminded", "review_offered"]) if e.draft_id == draft.id}
        tokens = ctx.store.tokens_for("draft", draft.id)
        asked = {t.person for t in tokens if t.version == draft.current_version}
        for token in tokens:
            if token.version != draft.current_version or token.used_at or token.expires_at <= now:
                continue
            reminded = history.get(("review_reminded", token.token_id))
            if reminded is None and calendar.add(token.issued_at, wait) <= now:
                _remind(ctx, draft, token, now)
            elif (reminded is not None and token.role == "reviewer"
                  and ("review_offered", token.token_id) not in history
                  and calendar.add(reminded.at, wait) <= now):
                _offer_to_next(ctx, draft, token, asked, now)


def _remind(ctx: Context, draft, token, now: datetime) -> None:
    person = ctx.settings.person(token.person)
    claims = core.TokenClaims(token.token_id, "draft", draft.id, token.version, token.text_sha256, token.person,
                              token.role, token.expires_at)
    with ctx.store.transaction():
        message_id = review_email(ctx, draft, person, claims, now, reminder_of=token.review_message_id)
        ctx.store.append_event("review_reminded", at=now, client_id=draft.client_id, draft_id=draft.id,
                               message_ids=[message_id],
                               data={"token_id": token.token_id, "person": token.person, "role": token.role,
                                     "version": token.version})
    crash_point("after_reminder_queued")  # the review reminder and its event are committed
    ctx.log.info("review reminder sent to %s", token.person, extra={"client": draft.client_id, "draft": draft.id})


def _offer_to_next(ctx: Context, draft, token, asked: set[str], now: datetime) -> None:
    client = ctx.settings.client(draft.client_id)
    candidates = [r for r in ctx.settings.review.reviewers if r != client.owner and r not in asked]
    with ctx.store.transaction():
        ctx.store.append_event("review_offered", at=now, client_id=client.id, draft_id=draft.id,
                               data={"token_id": token.token_id, "silent": token.person,
                                     "offered_to": candidates[0] if candidates else None})
        if candidates:
            ask(ctx, ctx.store.draft(draft.id), ctx.settings.person(candidates[0]), "reviewer", now)
    if candidates:
        ctx.log.info("%s did not answer: review offered to %s", token.person, candidates[0],
                     extra={"client": client.id, "draft": draft.id})
    else:
        ctx.log.warning("%s did not answer and no other reviewer is configured", token.person,
                        extra={"client": client.id, "draft": draft.id})
