"""Review by reply, applied: drafts, review emails with tokens, and the replies that decide.

The core judges (core/review.py); this module only reads what the judgement needs from the
store and writes its consequences, each reply in one transaction: the token's single use, the
endorsement or new version, the draft's new state, the next review emails, the release email's
outbox row (not before `send_delay`) and the event. A reply is handled once, even across
restarts (`processed_reply`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict
from datetime import datetime, timedelta

from daemon.adapters.publicsuffix import organizational_domain
from daemon.adapters.store import Draft, TokenRow
from daemon.adapters.templates import TemplateProblem
from daemon.core import review as core
from daemon.core.evidence import evidence_policy, judge_evidence
from daemon.core.model import Client, Person
from daemon.core.outgoing import HeaderInjection, InvalidAddress, build_message, make_message_id, thread_headers
from daemon.core.policy import Verdict, explain
from daemon.flows import owner_replies
from daemon.flows.context import Context, common_context, describe_time, queue_mail
from daemon.runtime.faults import crash_point

REVIEW_TEMPLATES = {"owner": "owner_review.txt.j2", "reviewer": "review_request.txt.j2"}
DRAFT_TEMPLATES = {"release": "release.txt.j2", "nudge": "nudge.txt.j2"}


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def start_draft(ctx: Context, client: Client, verdict: Verdict, kind: str, now: datetime,
                extra: dict | None = None) -> int:
    """Draft version 1 of a release (or nudge) email and ask the client's owner to decide."""
    owner = ctx.owner_of(client)
    context = {**common_context(ctx, client, None), "person": {"name": client.contact}, **(extra or {})}
    rendered = ctx.templates.render(DRAFT_TEMPLATES[kind], **context)
    with ctx.store.transaction():
        draft_id = ctx.store.create_draft(client.id, kind, rendered.subject, rendered.body, sha256_text(rendered.body),
                                          "parting", verdict.episode, now, "owner_review")
        ctx.store.append_event("draft_created", at=now, client_id=client.id, draft_id=draft_id,
                               message_ids=_evidence_ids(verdict), policy_hash=verdict.policy_hash,
                               data={"kind": kind, "version": 1, "writer": "parting",
                                     "text_sha256": sha256_text(rendered.body), "state": "owner_review"})
        ask(ctx, ctx.store.draft(draft_id), owner, "owner", now, verdict)
    crash_point("after_draft_created")  # inside the ladder step's transaction: a crash here undoes both
    ctx.log.info("%s drafted, owner %s asked to decide", kind, owner.id, extra={"client": client.id, "draft": draft_id})
    return draft_id


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


def review_email(ctx: Context, draft: Draft, person: Person, claims: core.TokenClaims, now: datetime,
                 verdict: Verdict | None = None, *, reminder_of: str | None = None) -> str:
    """Queue the review email carrying `claims`' token (a reminder threads under the first one,
    so a reply to either references the review email the token went out in)."""
    client = ctx.settings.client(draft.client_id)
    version = next(v for v in ctx.store.versions(draft.id) if v.version == claims.version)
    token = core.issue_token(ctx.secrets.token_key, claims)
    context = {
        **common_context(ctx, client, person),
        "draft": {"id": draft.id, "version": version.version, "writer": _writer_name(ctx, version.writer),
                  "text": version.text},
        "explain": _evidence_lines(ctx, client, verdict),
        "expires_at": describe_time(claims.expires_at, ctx.settings.working_hours.timezone),
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


def handle_reply(ctx: Context, message_id: str, now: datetime) -> core.Judgement | None:
    """Judge one staff reply to a review email and apply it; None when it was handled before."""
    store = ctx.store
    if store.processed_reply(message_id):
        return None
    row = store.message(message_id)
    our = ctx.settings.mailbox.address
    facts = core.reply_facts(
        from_addr=row.from_addr, to_addrs=row.to_addrs, cc_addrs=row.cc_addrs, in_reply_to=row.in_reply_to,
        references=row.references, subject=row.subject, auto_reply=row.auto_reply,
        authentication_results=row.auth_results, text=row.body_text, our_address=our,
        header_counts=row.header_counts, date=row.date_header,
    )
    parts = core.split_token(facts.token) if facts.token else None
    token_row = store.token(parts[0]) if parts else None
    if facts.token and token_row is not None and token_row.subject_kind in owner_replies.SUBJECTS:
        return owner_replies.handle_owner_reply(ctx, row, token_row, facts.token, now)  # ANSWERED, ASSIGN, DISMISS
    record, draft, deadline = None, None, None
    if token_row is not None:
        person = _person(ctx, token_row.person)
        record = core.TokenRecord(
            core.TokenClaims(token_row.token_id, token_row.subject_kind, token_row.subject_id, token_row.version,
                             token_row.text_sha256, token_row.person, token_row.role, token_row.expires_at),
            person.email if person else "", token_row.review_message_id, token_row.used_at, token_row.issued_at)
        if token_row.subject_kind == "draft":
            draft = store.draft(token_row.subject_id)
        else:
            deadline = store.deadline(token_row.subject_id)
    judgement = core.judge_reply(
        facts, record, key=ctx.secrets.token_key, now=now, authserv_id=ctx.settings.review.authserv_id,
        require_authentication=ctx.settings.review.require_authentication,
        current_version=draft.current_version if draft else None,
        draft_state=draft.state if draft else (deadline.state if deadline else "unknown"),
        organizational_domain=organizational_domain,
        authentication=judge_evidence(evidence_policy(ctx.settings), facts.from_addr, facts.authentication_results,
                                      row.evidence_headers,  # type: ignore[union-attr]  # as row.to_addrs above
                                      organizational_domain=organizational_domain),
    )
    client_id = draft.client_id if draft else (deadline.client_id if deadline else None)
    auth = asdict(judgement.authentication) if judgement.authentication else None
    try:
        judgement = _record(ctx, judgement, row, token_row, draft, deadline, client_id, auth, now)
    except (HeaderInjection, InvalidAddress, TemplateProblem) as problem:
        # The decision could not be carried out without writing an unsafe or broken mail: it is
        # recorded once (never retried every cycle) and a person fixes the config or template.
        with store.transaction():
            store.append_event("mail_refused", at=now, client_id=client_id, draft_id=draft.id if draft else None,
                               message_ids=[message_id],
                               data={"reason": f"{type(problem).__name__}: {problem}", "reply_from": row.from_addr})
            store.mark_reply_processed(message_id, "refused: the resulting mail could not be built", now)
        ctx.log.error("reply from %s could not be applied, nothing queued: %s", row.from_addr, problem,
                      extra={"message_id": message_id, "client": client_id})
        return judgement
    crash_point("after_reply_committed")  # the fault tests: a decision (and any release it queued) is committed
    return judgement


def _record(ctx: Context, judgement: core.Judgement, row, token_row, draft, deadline, client_id, auth,
            now: datetime) -> core.Judgement:
    """The judgement's consequences, in one transaction; returns it (a lost race for the token is a replay)."""
    store, message_id = ctx.store, row.message_id
    with store.transaction():
        if judgement.accepted and not store.use_token(token_row.token_id, now, message_id):
            judgement = core.Judgement(False, "this review token was already used", None, False, "replayed",
                                       judgement.authentication)
        if not judgement.accepted:
            store.append_event("reply_refused", at=now, client_id=client_id, draft_id=draft.id if draft else None,
                               message_ids=[message_id],
                               data={"code": judgement.code, "reason": judgement.reason, "from": row.from_addr,
                                     "authentication": auth})
            store.mark_reply_processed(message_id, f"refused: {judgement.code}", now)
            if judgement.safe_to_answer:
                _answer_refusal(ctx, row, judgement, client_id, now)
            ctx.log.warning("reply refused: %s", judgement.reason, extra={"message_id": message_id, "client": client_id})
            return judgement
        ctx.log.info("reply accepted: %s", judgement.reason, extra={"message_id": message_id, "client": client_id})
        if judgement.authentication_skipped:
            ctx.log.warning("reply accepted WITHOUT authentication (review.require_authentication is false)",
                            extra={"message_id": message_id, "client": client_id})
        if draft is not None:
            _apply_to_draft(ctx, draft, token_row, judgement, row, auth, now)
        else:
            from daemon.flows.followup import close_by_reply

            close_by_reply(ctx, deadline, token_row, judgement, row, auth, now)
        store.mark_reply_processed(message_id, f"accepted: {judgement.command.kind}", now)
    return judgement


def _apply_to_draft(ctx: Context, draft: Draft, token_row: TokenRow, judgement: core.Judgement, row, auth, now) -> None:
    store, settings = ctx.store, ctx.settings
    client = settings.client(draft.client_id)
    version = store.versions(draft.id)[-1]
    endorsements = [core.Endorsement(e.person, e.role, e.how) for e in store.endorsements(draft.id, version.version)]
    asked = {t.person for t in store.tokens_for("draft", draft.id) if t.version == version.version}
    reviewers = [r for r in settings.review.reviewers if r != client.owner]
    outcome = core.apply_command(
        judgement.command, person=token_row.person, role=token_row.role, state=draft.state, writer=version.writer,
        endorsements=endorsements, owner=client.owner, reviewers=reviewers,
        approvals_required=settings.review.approvals_required, asked=asked, version=version.version)
    current = version.version
    if outcome.new_text is not None:
        text = outcome.new_text.rstrip() + "\n"
        current = store.add_version(draft.id, text, sha256_text(text), token_row.person, now)
    if outcome.endorsement is not None:
        store.endorse(draft.id, current, outcome.endorsement.person, outcome.endorsement.role,
                      outcome.endorsement.how, now, via_message_id=row.message_id, auth_verdict=auth)
    hold_until = now + timedelta(days=outcome.hold_days) if outcome.hold_days else None
    store.set_draft_state(draft.id, outcome.step.state, now, hold_until=hold_until)
    store.append_event("review_decision", at=now, client_id=client.id, draft_id=draft.id, message_ids=[row.message_id],
                       data={"person": token_row.person, "role": token_row.role, "command": judgement.command.kind,
                             "reason": judgement.command.reason, "version": version.version,
                             "new_version": current if current != version.version else None,
                             "state": outcome.step.state, "missing": outcome.step.missing,
                             "authentication": auth, "authentication_skipped": judgement.authentication_skipped})
    if outcome.step.state == "rejected":
        cancelled = store.cancel_for_draft(draft.id, now)
        if cancelled:
            store.append_event("release_cancelled", at=now, client_id=client.id, draft_id=draft.id,
                               data={"outbox_rows": cancelled, "by": token_row.person})
    fresh = store.draft(draft.id)
    for person_id in outcome.step.ask:
        ask(ctx, fresh, settings.person(person_id), "owner" if person_id == client.owner else "reviewer", now)
    if outcome.step.state == "sendable" and draft.state != "sendable":
        queue_release(ctx, fresh, now)


def queue_release(ctx: Context, draft: Draft, now: datetime) -> int:
    """The endorsed version goes to the outbox, not before send_delay, threaded under the last conversation."""
    client = ctx.settings.client(draft.client_id)
    version = ctx.store.versions(draft.id)[-1]
    owner = ctx.owner_of(client)
    history = [m for m in ctx.store.messages_for_client(client.id) if not m.auto_reply and not m.bounce]
    in_reply_to, references = thread_headers([(m.message_id, m.references) for m in history[-1:]])
    recipients = [_client_recipient(ctx, client, history)]
    message_id = make_message_id(draft.kind, f"{draft.id}:{version.version}:{version.text_sha256}", ctx.domain)
    subject = draft.subject if not in_reply_to else _reply_subject(history[-1].subject, draft.subject)
    raw = build_message(from_addr=ctx.settings.mailbox.address, from_name=f"{owner.name} ({ctx.settings.company})",
                        to=recipients, subject=subject, body=version.text, message_id=message_id, date=now,
                        reply_to=[owner.email], in_reply_to=in_reply_to, references=references,
                        cc=[owner.email], kind=draft.kind, auto_submitted=False)
    not_before = now + ctx.settings.review.send_delay.as_timedelta()
    outbox_id = ctx.store.enqueue(message_id.strip("<>"), draft.kind, ctx.settings.mailbox.address,
                                  [*recipients, owner.email], raw, now, client_id=client.id, draft_id=draft.id,
                                  not_before=not_before)
    ctx.store.append_event("release_queued" if draft.kind == "release" else "nudge_queued", at=now,
                           client_id=client.id, draft_id=draft.id, message_ids=[message_id.strip("<>")],
                           data={"version": version.version, "text_sha256": version.text_sha256,
                                 "outbox_id": outbox_id, "not_before": not_before.isoformat()})
    crash_point("after_release_queued")  # inside the approval's transaction: a crash here undoes it
    return outbox_id


def _client_recipient(ctx: Context, client: Client, history) -> str:
    if client.addresses:
        return client.addresses[0]
    inbound = [m.from_addr for m in history if m.direction == "in"]
    if inbound:
        return inbound[-1]
    outbound = [a for m in history if m.direction == "out" for a in m.to_addrs]
    if outbound:
        return outbound[-1]
    raise ValueError(f"client {client.id} has no address to write to: add one to clients[].addresses")


def _reply_subject(last: str, fallback: str) -> str:
    base = last.strip() or fallback
    return base if base.lower().startswith("re:") else f"Re: {base}"


def _answer_refusal(ctx: Context, row, judgement: core.Judgement, client_id: str | None, now: datetime) -> None:
    person = next((p for p in ctx.settings.people if p.email == row.from_addr), None)
    if person is None:
        return
    client = ctx.settings.client(client_id) if client_id else None
    queue_mail(ctx, kind="refusal", key=f"refusal:{row.message_id}", template="review_refused.txt.j2",
               context={**common_context(ctx, client, person), "reason": judgement.reason,
                        "instead": judgement.command.problem if judgement.command and judgement.command.problem
                        else core.command_help("owner")},
               to=[person.email], now=now, client_id=client_id, in_reply_to=row.message_id)


def _person(ctx: Context, person_id: str) -> Person | None:
    return next((p for p in ctx.settings.people if p.id == person_id), None)


def _writer_name(ctx: Context, writer: str) -> str:
    person = _person(ctx, writer)
    return person.name if person else "parting (generated from the template)"


def _evidence_ids(verdict: Verdict) -> list[str]:
    return list(dict.fromkeys(mid for hit in verdict.reasons for mid in hit.message_ids))


def _evidence_lines(ctx: Context, client: Client, verdict: Verdict | None) -> list[str]:
    if verdict is None:
        saved = ctx.store.latest_verdicts().get(client.id)
        return list(saved.get("explain", [])) if saved else []
    return explain(verdict, client, client.timezone or ctx.settings.working_hours.timezone)
