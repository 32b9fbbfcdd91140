"""Review requests nobody answers: remind once, then offer the review to the next reviewer;
and when every request for a needed reader has expired unanswered, ask again with a new token
(an expired token must never leave a draft stuck with no way to decide it by mail).

Computed from the tokens themselves (issued, unused, unexpired, for the current version), so
there is no separate schedule to keep in step; each reminder and offer is an event, which is
also what makes it happen only once.
"""

from __future__ import annotations

from datetime import datetime

from daemon.core import review as core
from daemon.flows.context import Context
from daemon.flows.review import ask, review_email
from daemon.runtime.faults import crash_point


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
        _renew_expired(ctx, draft, tokens, now)


def _renew_expired(ctx: Context, draft, tokens, now: datetime) -> None:
    """Ask again whoever the draft still needs but holds no live token for it."""
    client = ctx.settings.client(draft.client_id)
    version = ctx.store.versions(draft.id)[-1]
    current = [t for t in tokens if t.version == version.version]
    live = {t.person for t in current if t.used_at is None and t.expires_at > now}
    expired = {t.person for t in current if t.used_at is None and t.expires_at <= now}
    if not expired - live:
        return
    endorsements = [core.Endorsement(e.person, e.role, e.how) for e in ctx.store.endorsements(draft.id, version.version)]
    reviewers = [r for r in ctx.settings.review.reviewers if r != client.owner]
    step = core.next_step(draft.state, version.writer, endorsements, client.owner, reviewers,
                          ctx.settings.review.approvals_required, asked=live, version=version.version)
    renew = [person for person in step.ask if person in expired]
    if not renew:
        return
    with ctx.store.transaction():
        for person_id in renew:
            ask(ctx, ctx.store.draft(draft.id), ctx.settings.person(person_id),
                "owner" if person_id == client.owner else "reviewer", now)
            ctx.store.append_event("review_renewed", at=now, client_id=client.id, draft_id=draft.id,
                                   data={"person": person_id, "version": version.version,
                                         "reason": "the review request expired unanswered"})
    ctx.log.info("review request renewed for %s (the last one expired unanswered)", ", ".join(renew),
                 extra={"client": client.id, "draft": draft.id})


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
