"""Answers outside email: the client phoned back or met the owner, and a person says so.

`record_answer` writes the answer (store `recorded`, which stands in the client's history as a
real reply, so the policy starts a new episode there and explain and the case file show it)
and its `answer_recorded` event in one transaction. It is reached from `parting answered`
and from the owner's ANSWERED reply to an owner notice (flows/owner_replies.py), which is why
owner notices carry a token (`notice_token`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from daemon.adapters.settings.secret_files import Secrets
from daemon.adapters.store import Recorded, TokenRow
from daemon.core import review as core
from daemon.core.answers import AnswerProblem, check_answer, parse_when
from daemon.core.model import Client, Person
from daemon.flows.context import Context
from daemon.queries.common import Data, ReportError, find_client, iso, opened


def record_answer(ctx: Context, client: Client, *, how: str, note: str, by: str, at: datetime, now: datetime,
                  via: str, message_ids: tuple[str, ...] = ()) -> Recorded:
    """Record that the client answered outside email at `at`; raises AnswerProblem when it cannot be."""
    check_answer(how, note, at, now)
    with ctx.store.transaction():
        record = ctx.store.add_recorded(client.id, "answered", how=how, note=note.strip(), by=by, at=at,
                                        recorded_at=now, via=via)
        ctx.store.append_event("answer_recorded", at=now, client_id=client.id,
                               message_ids=[record.message_id, *message_ids],
                               data={"record_id": record.id, "how": how, "note": record.note, "by": by,
                                     "answered_at": at.isoformat(), "via": via})
    ctx.rejudge.add(client.id)
    ctx.log.info("answer by %s recorded by %s", how, by, extra={"client": client.id})
    return record


def answered_from_command(config_path: str | Path, client_id: str, *, how: str, note: str, at: str | None,
                          who: str, now: datetime) -> Data:
    """`parting answered`: record the answer (at `at`, local time of the client, or now); the daemon
    judges the client again from it."""
    from daemon.adapters.templates import Templates

    with opened(config_path, write=True) as (settings, store):
        client = find_client(settings, client_id)
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        try:
            when = parse_when(at, client.timezone or settings.working_hours.timezone) if at else now
            record = record_answer(ctx, client, how=how, note=note, by=who, at=when, now=now,
                                   via="command line")
        except AnswerProblem as problem:
            raise ReportError(str(problem)) from None
        return {"client": client.id, "name": client.name, "record_id": record.id, "how": record.how,
                "note": record.note, "by": record.by, "at": iso(record.at), "recorded_at": iso(now),
                "episode": f"ep-{record.message_id}"}


@dataclass(frozen=True)
class NoticeToken:
    claims: core.TokenClaims
    reply_to: str
    subject_prefix: str

    def issued_in(self, ctx: Context, message_id: str, now: datetime) -> None:
        """Store the token's claims once the mail carrying it is queued (its Message-ID known)."""
        c = self.claims
        ctx.store.issue_token(TokenRow(c.token_id, "", c.subject_kind, c.subject_id, None, None, c.person, c.role,
                                       c.expires_at, message_id, now))


def notice_token(ctx: Context, client: Client, person: Person, *, kind: str, subject_kind: str, subject_id: int | None,
                 episode: str, now: datetime) -> NoticeToken:
    """A token for an owner email that takes a reply: a notice (ANSWERED) or a triage item (ASSIGN,
    DISMISS). A notice gets its id here (`subject_id` None)."""
    if subject_id is None:
        subject_id = ctx.store.add_notice(client.id, kind, episode, now)
    expires_at = now + ctx.settings.review.token_ttl.as_timedelta()
    claims = core.TokenClaims(core.token_id_from_bytes(secrets.token_bytes(10)), subject_kind,  # type: ignore[arg-type]
                              subject_id, None, None, person.id, subject_kind, expires_at)
    token = core.issue_token(ctx.secrets.token_key, claims)
    return NoticeToken(claims, core.token_address(ctx.settings.mailbox.address, token),
                       core.subject_tag(claims.token_id))
