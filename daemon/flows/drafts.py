"""Drafts and what moves with them: review emails with tokens, the release row, the last chance.

The core decides (core/release.py `transition`); `advance` writes the whole answer in the
caller's transaction: the new version, the endorsement, the draft's state, cancelled release
rows, revoked tokens, the next review emails, the release row (not before `send_delay`) and the
last-chance notices, with one `review_decision` (or named) event. No other module changes a
draft's state.

The release's envelope (recipients, subject, threading under our own request in the Sent
folder) is frozen when the draft is made and shown to every reader; the endorsed hash covers it.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from daemon.adapters.store import Draft, TokenRow
from daemon.adapters.store.review import DraftKind
from daemon.core import release as machine
from daemon.core import review as core
from daemon.core.model import Client, Person
from daemon.core.outgoing import build_message, make_message_id, thread_headers
from daemon.core.policy import Verdict, explain
from daemon.flows.context import Context, common_context, describe_time, person_named, queue_mail
from daemon.runtime.faults import crash_point

REVIEW_TEMPLATES = {"owner": "owner_review.txt.j2", "reviewer": "review_request.txt.j2"}
DRAFT_TEMPLATES = {"release": "release.txt.j2", "nudge": "nudge.txt.j2"}
LAST_CHANCE_TEMPLATE = "last_chance.txt.j2"


def start_draft(ctx: Context, client: Client, verdict: Verdict, kind: DraftKind, now: datetime,
                extra: dict[str, Any] | None = None) -> int:
    """Draft version 1 of a release (or nudge) email, its envelope frozen, and ask the owner."""
    owner = ctx.owner_of(client)
    context = {**common_context(ctx, client, None), "person": {"name": client.contact}, **(extra or {})}
    rendered = ctx.templates.render(DRAFT_TEMPLATES[kind], **context)
    envelope = frozen_envelope(ctx, client, rendered.subject)
    digest = machine.endorsed_hash(envelope, rendered.body)
    with ctx.store.transaction():
        draft_id = ctx.store.create_draft(client.id, kind, rendered.subject, rendered.body, digest, "parting",
                                          verdict.episode, now, "owner_review", envelope=envelope.to_dict())
        ctx.store.append_event("draft_created", at=now, client_id=client.id, draft_id=draft_id,
                               message_ids=_evidence_ids(verdict), policy_hash=verdict.policy_hash,
                               data={"kind": kind, "version": 1, "writer": "parting", "text_sha256": digest,
                                     "state": "owner_review", "envelope": envelope.to_dict()})
        ask(ctx, ctx.store.draft(draft_id), owner, "owner", now, verdict)
    crash_point("after_draft_created")  # inside the ladder step's transaction: a crash here undoes both
    ctx.log.info("%s drafted, owner %s asked to decide", kind, owner.id, extra={"client": client.id, "draft": draft_id})
    return draft_id


def frozen_envelope(ctx: Context, client: Client, subject: str) -> machine.Envelope:
    """To whom, under which subject and below which message the release will go: decided now,
    from the configuration and our own mail in the Sent folder, never from inbound mail."""
    history = [m for m in ctx.store.messages_for_client(client.id) if not m.auto_reply and not m.bounce]
    ours = [m for m in history if m.direction == "out" and not m.parting_kind]
    in_reply_to, references = thread_headers([(m.message_id, m.references) for m in ours[-1:]])
    if client.addresses:
        to = client.addresses[0]
    else:
        written_to = [a for m in ours for a in m.to_addrs]
        inbound = [m.from_addr for m in history if m.direction == "in"]
        if not written_to and not inbound:
            raise ValueError(f"client {client.id} has no address to write to: add one to clients[].addresses")
        to = written_to[-1] if written_to else inbound[-1]
    return machine.Envelope(
        to=(to,), subject=machine.reply_subject(ours[-1].subject, subject) if in_reply_to else subject,
        in_reply_to=in_reply_to, references=references,
        replying_to_sent_at=ours[-1].at.isoformat() if in_reply_to else None)


def envelope_of(ctx: Context, draft: Draft) -> machine.Envelope:
    if draft.envelope is not None:
        return machine.Envelope.from_dict(draft.envelope)
    return frozen_envelope(ctx, ctx.settings.client(draft.client_id), draft.subject)  # a draft from before #17


def facts(ctx: Context, draft: Draft, now: datetime) -> machine.DraftFacts:
    """What the core needs to know about the draft's current version."""
    client = ctx.settings.client(draft.client_id)
    version = ctx.store.versions(draft.id)[-1]
    endorsements = tuple(machine.Endorsement(e.person, e.role, e.how)
                         for e in ctx.store.endorsements(draft.id, version.version))
    asked = frozenset(t.person for t in ctx.store.tokens_for("draft", draft.id)
                      if t.version == version.version and t.role in ("owner", "reviewer")
                      and t.used_at is None and t.expires_at > now)
    return machine.DraftFacts(
        state=draft.state, version=version.version, writer=version.writer, endorsements=endorsements,
        owner=client.owner, reviewers=tuple(r for r in ctx.settings.review.reviewers if r != client.owner),
        approvals_required=ctx.settings.review.approvals_required, asked=asked, hold_until=draft.hold_until,
        send_delay=ctx.settings.review.send_delay.as_timedelta())


def advance(ctx: Context, draft: Draft, event: machine.Event, now: datetime, *, event_kind: str = "review_decision",
            via_message_id: str | None = None, data: dict[str, Any] | None = None) -> machine.Transition:
    """Decide the draft's next state in the core and write all of it; the caller holds the transaction."""
    store = ctx.store
    known = facts(ctx, draft, now)
    step = machine.transition(known, event, now)
    if not step.changed and event.kind != "command":
        return step
    current = known.version
    if step.new_text is not None:
        text = step.new_text.rstrip() + "\n"
        current = store.add_version(draft.id, text, machine.endorsed_hash(envelope_of(ctx, draft), text),
                                    event.person, now)
    if step.endorsement is not None:
        store.endorse(draft.id, current, step.endorsement.person, step.endorsement.role, step.endorsement.how, now,
                      via_message_id=via_message_id, auth_verdict=(data or {}).get("authentication"))
    store.set_draft_state(draft.id, step.state, now, hold_until=step.hold_until)
    cancelled = store.cancel_releases(draft.id, now) if step.cancel_releases else []
    revoked = store.revoke_tokens("draft", draft.id, now) if step.revoke_tokens else 0
    store.append_event(event_kind, at=now, client_id=draft.client_id, draft_id=draft.id,
                       message_ids=[via_message_id] if via_message_id else [],
                       data={**(data or {}), "version": known.version,
                             "new_version": current if current != known.version else None,
                             "state": step.state, "from_state": draft.state, "missing": step.missing,
                             "asking": list(step.ask), "note": step.note, "tokens_revoked": revoked})
    if cancelled:
        store.append_event("release_cancelled", at=now, client_id=draft.client_id, draft_id=draft.id,
                           data={"outbox_rows": len(cancelled), "outbox_ids": cancelled,
                                 "by": event.person or "parting", "reason": step.note or event.kind})
    client = ctx.settings.client(draft.client_id)
    fresh = store.draft(draft.id)
    for person_id in step.ask:
        ask(ctx, fresh, ctx.settings.person(person_id), "owner" if person_id == client.owner else "reviewer", now)
    if step.queue_release:
        queue_release(ctx, fresh, now)
        for person_id in step.last_chance:
            last_chance(ctx, fresh, ctx.settings.person(person_id), step.not_before or now, now)
    return step


def follow_client(ctx: Context, client_id: str, verdict_state: str, episode: str | None, now: datetime) -> None:
    """A client's live drafts follow the client: paused or exempt suspends them (their release rows
    cancelled), back again resumes them, and a new episode (the client wrote back) withdraws them."""
    for draft in ctx.store.drafts(list(machine.LIVE_STATES["draft"]), client_id=client_id):
        if verdict_state in ("paused", "exempt"):
            event = machine.Event("suspend", person="parting", reason=f"the client is {verdict_state}")
        elif draft.episode != episode:
            event = machine.Event("withdraw", person="parting", reason="the client wrote back: a new episode")
        elif draft.state == "held" and draft.hold_until is None:
            event = machine.Event("resume", person="parting", reason="the client is no longer paused or exempt")
        else:
            continue
        with ctx.store.transaction():
            advance(ctx, draft, event, now, event_kind=f"draft_{event.kind}", data={"reason": event.reason})


def ask(ctx: Context, draft: Draft, person: Person, role: str, now: datetime, verdict: Verdict | None = None) -> str:
    """Send `person` a review email for the draft's current version; returns its Message-ID."""
    version = ctx.store.versions(draft.id)[-1]
    expires_at = now + ctx.settings.review.token_ttl.as_timedelta()
    claims = core.TokenClaims(core.token_id_from_bytes(secrets.token_bytes(10)), "draft", draft.id,
                              version.version, version.text_sha256, person.id, role, expires_at)
    message_id = review_email(ctx, draft, person, claims, now, verdict)
    ctx.store.issue_token(TokenRow(claims.token_id, "", "draft", draft.id, version.version, version.text_sha256,
                                   person.id, role, expires_at, message_id, now))
    ctx.store.append_event("review_requested", at=now, client_id=draft.client_id, draft_id=draft.id,
                           message_ids=[message_id],
                           data={"person": person.id, "role": role, "version": version.version,
                                 "token_id": claims.token_id, "expires_at": expires_at.isoformat()})
    crash_point("after_review_requested")  # inside the caller's transaction: a crash here undoes it all
    return message_id


def _envelope_context(ctx: Context, draft: Draft, tz: str) -> dict[str, str]:
    envelope = envelope_of(ctx, draft)
    when = envelope.replying_to_sent_at
    return {"to": ", ".join(envelope.to), "subject": envelope.subject,
            "threading": (f"in reply to our message of {describe_time(datetime.fromisoformat(when), tz)}"
                          if when else "a new conversation (no message of ours to reply to)")}


def review_email(ctx: Context, draft: Draft, person: Person, claims: core.TokenClaims, now: datetime,
                 verdict: Verdict | None = None, *, reminder_of: str | None = None) -> str:
    """Queue the review email carrying `claims`' token (a reminder threads under the first one,
    so a reply to either references the review email the token went out in)."""
    client = ctx.settings.client(draft.client_id)
    version = next(v for v in ctx.store.versions(draft.id) if v.version == claims.version)
    token = core.issue_token(ctx.secrets.token_key, claims)
    tz = ctx.settings.working_hours.timezone
    context = {
        **common_context(ctx, client, person),
        "draft": {"id": draft.id, "version": version.version, "writer": _writer_name(ctx, version.writer),
                  "text": version.text},
        "envelope": _envelope_context(ctx, draft, tz),
        "explain": _evidence_lines(ctx, client, verdict),
        "expires_at": describe_time(claims.expires_at, tz),
    }
    tag = core.subject_tag(claims.token_id)
    _, message_id = queue_mail(
        ctx, kind="review", key=f"{draft.id}:{version.version}:{claims.person}:{claims.role}:{claims.token_id}"
        + (":reminder" if reminder_of else ""), template=REVIEW_TEMPLATES[claims.role], context=context,
        to=[person.email], now=now, client_id=client.id, draft_id=draft.id,
        reply_to=[core.token_address(ctx.settings.mailbox.address, token)],
        subject_prefix=f"{tag} Reminder:" if reminder_of else tag,
        in_reply_to=reminder_of, references=[reminder_of] if reminder_of else (),
    )
    return message_id


def last_chance(ctx: Context, draft: Draft, person: Person, send_at: datetime, now: datetime) -> str:
    """The notice that the version leaves at `send_at`, with a token (STOP, REJECT, HOLD) valid until then."""
    version = ctx.store.versions(draft.id)[-1]
    claims = core.TokenClaims(core.token_id_from_bytes(secrets.token_bytes(10)), "draft", draft.id,
                              version.version, version.text_sha256, person.id, "last_chance", send_at)
    token = core.issue_token(ctx.secrets.token_key, claims)
    client = ctx.settings.client(draft.client_id)
    tz = ctx.settings.working_hours.timezone
    _, message_id = queue_mail(
        ctx, kind="last-chance", key=f"{draft.id}:{version.version}:{person.id}:{claims.token_id}",
        template=LAST_CHANCE_TEMPLATE, now=now, client_id=client.id, draft_id=draft.id, to=[person.email],
        context={**common_context(ctx, client, person), "draft": {"id": draft.id, "version": version.version},
                 "envelope": _envelope_context(ctx, draft, tz), "send_at": describe_time(send_at, tz)},
        reply_to=[core.token_address(ctx.settings.mailbox.address, token)],
        subject_prefix=core.subject_tag(claims.token_id))
    ctx.store.issue_token(TokenRow(claims.token_id, "", "draft", draft.id, version.version, version.text_sha256,
                                   person.id, "last_chance", send_at, message_id, now))
    ctx.store.append_event("last_chance_sent", at=now, client_id=client.id, draft_id=draft.id,
                           message_ids=[message_id],
                           data={"person": person.id, "version": version.version, "token_id": claims.token_id,
                                 "send_at": send_at.isoformat()})
    return message_id


def queue_release(ctx: Context, draft: Draft, now: datetime) -> int:
    """The endorsed version goes to the outbox in its frozen envelope, not before send_delay."""
    client = ctx.settings.client(draft.client_id)
    version = ctx.store.versions(draft.id)[-1]
    owner = ctx.owner_of(client)
    envelope = envelope_of(ctx, draft)
    # Each queueing of a version is its own message: a version held and released again is a new
    # row, never the cancelled one brought back.
    earlier = len(ctx.store.release_rows_of(draft.id))
    message_id = make_message_id(draft.kind, f"{draft.id}:{version.version}:{version.text_sha256}:{earlier}",
                                 ctx.domain)
    raw = build_message(from_addr=ctx.settings.mailbox.address, from_name=f"{owner.name} ({ctx.settings.company})",
                        to=list(envelope.to), subject=envelope.subject, body=version.text, message_id=message_id,
                        date=now, reply_to=[owner.email], in_reply_to=envelope.in_reply_to,
                        references=list(envelope.references), cc=[owner.email], kind=draft.kind,
                        auto_submitted=False)
    not_before = now + ctx.settings.review.send_delay.as_timedelta()
    outbox_id = ctx.store.enqueue(message_id.strip("<>"), draft.kind, ctx.settings.mailbox.address,
                                  [*envelope.to, owner.email], raw, now, client_id=client.id, draft_id=draft.id,
                                  not_before=not_before, draft_version=version.version)
    ctx.store.append_event("release_queued" if draft.kind == "release" else "nudge_queued", at=now,
                           client_id=client.id, draft_id=draft.id, message_ids=[message_id.strip("<>")],
                           data={"version": version.version, "text_sha256": version.text_sha256,
                                 "outbox_id": outbox_id, "not_before": not_before.isoformat()})
    crash_point("after_release_queued")  # inside the approval's transaction: a crash here undoes it
    return outbox_id


def _writer_name(ctx: Context, writer: str) -> str:
    person = person_named(ctx, writer)
    return person.name if person else "parting (generated from the template)"


def _evidence_ids(verdict: Verdict) -> list[str]:
    return list(dict.fromkeys(mid for hit in verdict.reasons for mid in hit.message_ids))


def _evidence_lines(ctx: Context, client: Client, verdict: Verdict | None) -> list[str]:
    if verdict is None:
        saved = ctx.store.latest_verdicts().get(client.id)
        return list(saved.get("explain", [])) if saved else []
    return explain(verdict, client, client.timezone or ctx.settings.working_hours.timezone)
