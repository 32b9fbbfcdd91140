"""Review requests nobody answers: remind once, then offer the review to the next reviewer;
and when every request for a needed reader has expired unanswered, ask again with a new token
(an expired token must never leave a draft stuck with no way to decide it by mail).

Who is reminded or offered the review is decided in the core (core/release.py `review_nudges`,
`next_step`) from the tokens themselves (issued, unused, unexpired, for the current version),
so there is no separate schedule to keep in step; each reminder and offer is an event, which is
also what makes it happen only once.
"""

from __future__ import annotations

from datetime import datetime

from daemon.adapters.store import Draft
from daemon.core import release as machine
from daemon.core import review as core
from daemon.flows.context import Context, park
from daemon.flows.drafts import ask, facts, review_email
from daemon.runtime.faults import crash_point


def remind_reviews(ctx: Context, now: datetime) -> None:
    for draft in ctx.store.drafts(["owner_review", "second_review"]):
        try:
            _remind_draft(ctx, draft, now)
        except Exception as problem:  # noqa: BLE001 - one draft's failure must not stop the others
            park(ctx, f"reminders for draft {draft.id}", f"draft:{draft.id}:reminders:{draft.current_version}",
                 problem, now, client_id=draft.client_id, draft_id=draft.id)


def _remind_draft(ctx: Context, draft: Draft, now: datetime) -> None:
    wait = ctx.settings.review.remind_after
    client = ctx.settings.client(draft.client_id)
    calendar = ctx.calendar(client)
    history = {(e.kind, (e.data or {}).get("token_id")): e for e in ctx.store.events(
        client_id=client.id, kinds=["review_reminded", "review_offered"]) if e.draft_id == draft.id}
    tokens = ctx.store.tokens_for("draft", draft.id)
    open_tokens = [
        machine.OpenToken(t.token_id, t.person, t.role, t.issued_at,
                          reminded_at=history[("review_reminded", t.token_id)].at
                          if ("review_reminded", t.token_id) in history else None,
                          offered=("review_offered", t.token_id) in history)
        for t in tokens
        if t.version == draft.current_version and not t.used_at and t.expires_at > now]
    asked = {t.person for t in tokens if t.version == draft.current_version}
    by_id = {t.token_id: t for t in tokens}
    for nudge in machine.review_nudges(open_tokens, reviewers=ctx.settings.review.reviewers, owner=client.owner,
                                       asked=asked, after=lambda start: calendar.add(start, wait), now=now):
        if nudge.kind == "remind":
            _remind(ctx, draft, by_id[nudge.token_id], now)
        else:
            _offer_to_next(ctx, draft, by_id[nudge.token_id], nudge.offer_to, now)
    _renew_expired(ctx, ctx.store.draft(draft.id), now)


def _renew_expired(ctx: Context, draft, now: datetime) -> None:
    """Ask again whoever the draft still needs but holds no live token for it."""
    if draft.state not in ("owner_review", "second_review"):
        return
    client = ctx.settings.client(draft.client_id)
    known = facts(ctx, draft, now)
    current = [t for t in ctx.store.tokens_for("draft", draft.id)
               if t.version == known.version and t.role in ("owner", "reviewer")]
    expired = {t.person for t in current if t.used_at is None and t.expires_at <= now}
    if not expired - known.asked:
        return
    step = machine.next_step(draft.state, known.writer, known.endorsements, known.owner, known.reviewers,
                             known.approvals_required, asked=known.asked, version=known.version)
    renew = [person for person in step.ask if person in expired]
    if not renew:
        return
    with ctx.store.transaction():
        for person_id in renew:
            ask(ctx, ctx.store.draft(draft.id), ctx.settings.person(person_id),
                "owner" if person_id == client.owner else "reviewer", now)
            ctx.store.append_event("review_renewed", at=now, client_id=client.id, draft_id=draft.id,
                                   data={"person": person_id, "version": known.version,
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


def _offer_to_next(ctx: Context, draft, token, candidate: str | None, now: datetime) -> None:
    client = ctx.settings.client(draft.client_id)
    with ctx.store.transaction():
        ctx.store.append_event("review_offered", at=now, client_id=client.id, draft_id=draft.id,
                               data={"token_id": token.token_id, "silent": token.person, "offered_to": candidate})
        if candidate:
            ask(ctx, ctx.store.draft(draft.id), ctx.settings.person(candidate), "reviewer", now)
    if candidate:
        ctx.log.info("%s did not answer: review offered to %s", token.person, candidate,
                     extra={"client": client.id, "draft": draft.id})
    else:
        ctx.log.warning("%s did not answer and no other reviewer is configured", token.person,
                        extra={"client": client.id, "draft": draft.id})
