"""What every flow step needs, and the one way mail is queued."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from daemon.adapters.publicsuffix import organizational_domain
from daemon.adapters.settings.secret_files import Secrets
from daemon.adapters.store import Store
from daemon.adapters.templates import Templates
from daemon.core import review as core_review
from daemon.core.evidence import evidence_policy, judge_evidence
from daemon.core.model import Client, Person, Settings
from daemon.core.outgoing import build_message, make_message_id
from daemon.core.workhours import Calendar
from daemon.runtime.logs import get_logger


@dataclass
class Context:
    settings: Settings
    secrets: Secrets
    store: Store
    templates: Templates
    log: logging.Logger = field(default_factory=lambda: get_logger("flow"))
    # One Calendar per time zone: it remembers the holidays and working intervals it worked out.
    _calendars: dict[str | None, Calendar] = field(default_factory=dict, init=False, repr=False, compare=False)
    # Clients whose history a step changed without new mail (an answer recorded, a message
    # assigned): the service judges them in its next cycle.
    rejudge: set[str] = field(default_factory=set, init=False, repr=False, compare=False)
    # Whether this Context wrote the public holidays down for the reports (note_holidays).
    _holidays_noted: bool = field(default=False, init=False, repr=False, compare=False)

    @property
    def domain(self) -> str:
        return self.settings.mailbox.address.rsplit("@", 1)[1]

    def calendar(self, client: Client | None = None) -> Calendar:
        zone = client.timezone if client else None
        if zone not in self._calendars:
            self._calendars[zone] = Calendar(self.settings.working_hours, zone)
        return self._calendars[zone]

    def owner_of(self, client: Client) -> Person:
        return self.settings.person(client.owner)

    def note_holidays(self, now: datetime) -> None:
        """Write the public holidays of the years around `now` beside the database, once per
        Context (adapters/holiday_cache.py): `parting status` and `explain` then need not import
        the holidays package. A failure only costs the reports that time, so it is logged, no more."""
        if self._holidays_noted:
            return
        self._holidays_noted = True
        from daemon.adapters import holiday_cache

        try:
            holiday_cache.write(self.settings, self.calendar(), now.year)
        except Exception as problem:  # noqa: BLE001 - the reports compute them instead; the cycle goes on
            self.log.info("public holidays not written for the reports: %s", problem)


def describe_time(when: datetime, tz: str) -> str:
    from zoneinfo import ZoneInfo

    return when.astimezone(ZoneInfo(tz)).strftime("%a %-d %b %Y %H:%M")


def common_context(ctx: Context, client: Client | None, addressee: Person | None) -> dict[str, Any]:
    owner = ctx.owner_of(client) if client else None
    return {
        "company": {"name": ctx.settings.company},
        "client": (
            {"id": client.id, "name": client.name, "contact": client.contact, "phone": client.phone or ""}
            if client else None
        ),
        "owner": {"name": owner.name, "email": owner.email} if owner else None,
        "person": {"name": addressee.name} if addressee else None,
    }


def queue_mail(
    ctx: Context,
    *,
    kind: str,
    key: str,
    template: str,
    context: dict[str, Any],
    to: Sequence[str],
    now: datetime,
    client_id: str | None = None,
    draft_id: int | None = None,
    deadline_id: int | None = None,
    reply_to: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    not_before: datetime | None = None,
    auto_submitted: bool = True,
    from_name: str | None = None,
    subject_prefix: str = "",
) -> tuple[int, str]:
    """Render a template and put the message in the outbox; returns (outbox id, Message-ID).

    `key` names the decision that produced this mail: the Message-ID is derived from it, so the
    same decision queued twice (after a crash, say) is one outbox row, never two.
    """
    rendered = ctx.templates.render(template, **context)
    message_id = make_message_id(kind, key, ctx.domain)
    raw = build_message(
        from_addr=ctx.settings.mailbox.address,
        from_name=from_name or ctx.settings.company,
        to=list(to),
        subject=f"{subject_prefix} {rendered.subject}" if subject_prefix else rendered.subject,
        body=rendered.body,
        message_id=message_id,
        date=now,
        reply_to=list(reply_to),
        in_reply_to=in_reply_to,
        references=list(references),
        kind=kind,
        auto_submitted=auto_submitted,
    )
    outbox_id = ctx.store.enqueue(
        message_id.strip("<>"), kind, ctx.settings.mailbox.address, list(to), raw, now,
        client_id=client_id, draft_id=draft_id, deadline_id=deadline_id, not_before=not_before,
    )
    return outbox_id, message_id.strip("<>")


def park(ctx: Context, what: str, item: str, problem: BaseException, now: datetime, *,
         client_id: str | None = None, draft_id: int | None = None) -> bool:
    """One item (a reply, a client's step, a draft) failed: record it with its reason and tell its
    owner, once; the caller goes on with the rest. Returns False when it was parked before."""
    reason = f"{type(problem).__name__}: {problem}"
    store = ctx.store
    if any((e.data or {}).get("item") == item for e in store.events(client_id=client_id, kinds=["item_parked"])):
        return False
    known = {c.id: c for c in ctx.settings.clients}
    client = known.get(client_id or "")
    people = [ctx.owner_of(client)] if client else list(ctx.settings.people[:1])
    with store.transaction():
        store.append_event("item_parked", at=now, client_id=client_id, draft_id=draft_id,
                           data={"what": what, "item": item, "reason": reason})
        for person in people:
            try:
                with store.transaction():
                    queue_mail(ctx, kind="parked", key=f"parked:{item}", template="item_parked.txt.j2",
                               context={**common_context(ctx, client, person),
                                        "item": {"what": what, "reason": reason}},
                               to=[person.email], now=now, client_id=client_id)
            except Exception as failure:  # noqa: BLE001 - the record stands even if the notice cannot be built
                ctx.log.error("could not tell %s about a parked item: %s", person.id, failure)
    ctx.log.error("%s set aside: %s", what, reason, extra={"client": client_id})
    return True


def judge_staff_reply(ctx: Context, facts: core_review.ReplyFacts, record: core_review.TokenRecord | None,
                      evidence_headers: Sequence[tuple[str, str]], *, current_version: int | None, state: str,
                      now: datetime) -> core_review.Judgement:
    """Every staff reply, whatever its token is for, judged by the same rules: the token, the
    sender, the provider's evidence with the Public Suffix List, the header counts and the Date."""
    return core_review.judge_reply(
        facts, record, key=ctx.secrets.token_key, now=now, authserv_id=ctx.settings.review.authserv_id,
        require_authentication=ctx.settings.review.require_authentication, current_version=current_version,
        draft_state=state, organizational_domain=organizational_domain,
        authentication=judge_evidence(evidence_policy(ctx.settings), facts.from_addr, facts.authentication_results,
                                      evidence_headers, organizational_domain=organizational_domain))


def person_named(ctx: Context, person_id: str) -> Person | None:
    """The staff member with this id, or None (a token or event may name someone since removed)."""
    return next((p for p in ctx.settings.people if p.id == person_id), None)
