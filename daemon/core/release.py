"""The release state machine: a draft, its versions, its tokens and its outbox row move together.

Rules of this module:
- A version is sendable when (1) its owner endorsed it, (2) `approvals_required` (at least 1)
  other people endorsed it and (3) someone other than its writer endorsed it. Writing a
  version endorses it; so does APPROVE.
- `transition` is the only place that decides a draft's next state. Its answer says, besides
  the state, what must happen in the same transaction: every decision that leaves `sendable`
  (REJECT, STOP, HOLD, EDIT, a new episode, a paused or exempt client) cancels every queued,
  failed or uncertain release row of the draft; entering `sendable` queues exactly one row and
  gives its owner and every endorser a last chance (a notice whose token lives until the send
  moment; none when send_delay is 0); tokens die with their version (EDIT) and with the final
  states.
- What the release says and where it goes (the envelope: recipients, subject, threading under
  our own request) is frozen when the draft is made; `endorsed_hash` covers the envelope and
  the text, and is what a token signs and an endorsement names.
- Pure: no IO and no clock; `now` is a parameter.

    state            event                        next state
    owner_review     APPROVE by the owner         second_review, or sendable when the rule holds
    second_review    APPROVE by a reviewer        sendable when the rule holds, else second_review
    sendable         APPROVE (late)               sendable (the endorsement is recorded)
    any review state EDIT by the owner            new version -> second_review (writing endorses)
    any review state EDIT by a reviewer           new version -> owner_review
    any review state REJECT or STOP               rejected (in sendable: inside send_delay)
    any review state HOLD n days                  held until now + n days
    held             APPROVE                      held (recorded); EDIT / REJECT / HOLD as above
    held             the n days are over          the review state is recomputed
    any review state the client wrote back        rejected (a new episode: the release is moot)
    any review state paused or exempt             held with no end, until the client is back
    sendable         the outbox sent it           sent
    rejected, sent   anything                     unchanged (final)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from daemon.core.endorsements import Endorsement as Endorsement  # the two-person rule lives there, for `drafts`
from daemon.core.endorsements import Sendability as Sendability
from daemon.core.endorsements import sendable as sendable
from daemon.core.release_states import FINAL_STATES  # the names of the states live there, for status
from daemon.core.release_states import LIVE_ROW_STATES as LIVE_ROW_STATES
from daemon.core.release_states import LIVE_STATES as LIVE_STATES
from daemon.core.release_states import RELEASE_KINDS as RELEASE_KINDS
from daemon.core.release_states import DraftState as DraftState

if TYPE_CHECKING:  # only annotations: `parting drafts` needs these rules, not the reply parser (html.parser)
    from daemon.core.replytext import Command



# --------------------------------------------------------------------------------------------
# The frozen envelope and the endorsed hash.


@dataclass(frozen=True)
class Envelope:
    to: tuple[str, ...]
    subject: str
    in_reply_to: str | None = None  # our own request, found in the Sent folder
    references: tuple[str, ...] = ()
    replying_to_sent_at: str | None = None  # ISO time of that request, for the review emails

    def to_dict(self) -> dict[str, object]:
        return {"to": list(self.to), "subject": self.subject, "in_reply_to": self.in_reply_to,
                "references": list(self.references), "replying_to_sent_at": self.replying_to_sent_at}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Envelope:
        to = data.get("to") or []
        references = data.get("references") or []
        assert isinstance(to, list) and isinstance(references, list)
        return cls(tuple(str(a) for a in to), str(data.get("subject") or ""),
                   str(data["in_reply_to"]) if data.get("in_reply_to") else None,
                   tuple(str(r) for r in references),
                   str(data["replying_to_sent_at"]) if data.get("replying_to_sent_at") else None)


def endorsed_hash(envelope: Envelope | None, text: str) -> str:
    """SHA-256 of what a reader endorses: the envelope (when the draft has one) and the text."""
    if envelope is None:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()
    canonical = json.dumps(["parting-release-1", envelope.to_dict(), text], separators=(",", ":"),
                           ensure_ascii=True, sort_keys=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def reply_subject(our_subject: str | None, fallback: str) -> str:
    """"Re: <our request's subject>", or the draft's own subject when there is no request."""
    base = (our_subject or "").strip() or fallback
    return base if base.lower().startswith("re:") else f"Re: {base}"


@dataclass(frozen=True)
class Step:
    state: DraftState
    ask: tuple[str, ...] = ()  # people to send a review email to now
    missing: str = ""  # what the rule still needs


def next_step(
    draft_state: str, version_writer: str, endorsements: Collection[Endorsement], owner: str,
    reviewers: Sequence[str], approvals_required: int, *, asked: Collection[str] = (),
    version: int | None = None,
) -> Step:
    """Who must be asked next about the current version; any review state is recomputed."""
    if draft_state in ("held", "rejected", "sent"):
        return Step(draft_state)  # type: ignore[arg-type]
    rule = sendable(endorsements, owner=owner, writer=version_writer,
                    approvals_required=approvals_required, version=version)
    if rule.ok:
        return Step("sendable")
    endorsers = {e.person for e in endorsements}
    if owner not in endorsers:
        return Step("owner_review", () if owner in asked else (owner,), rule.missing)
    waiting = [r for r in reviewers if r in asked and r not in endorsers and r != owner]
    fresh = [r for r in reviewers if r not in asked and r not in endorsers and r != owner]
    needed = approvals_required - len(endorsers - {owner}) - len(waiting)
    ask = tuple(dict.fromkeys(fresh))[:max(0, needed)]
    missing = rule.missing
    if len(ask) < needed:
        missing += f"; no further reviewer other than the owner {owner} is configured to ask"
    return Step("second_review", ask, missing)


@dataclass(frozen=True)
class Outcome:
    step: Step  # the draft's next state and whom to ask
    endorsement: Endorsement | None = None  # to record for the version (or, for EDIT, the new one)
    new_text: str | None = None  # EDIT: store as a new version written by the person
    hold_days: int | None = None
    note: str = ""


def apply_command(
    command: Command, *, person: str, role: str, state: str, writer: str,
    endorsements: Collection[Endorsement], owner: str, reviewers: Sequence[str],
    approvals_required: int, asked: Collection[str] = (), version: int | None = None,
) -> Outcome:
    """The draft's next state after an accepted command (the table at the top of this module)."""
    if state in FINAL_STATES:
        return Outcome(Step(state), note=f"the draft is already {state}")  # type: ignore[arg-type]
    if command.kind in ("reject", "stop"):
        return Outcome(Step("rejected"), note=command.reason or command.kind.upper())
    if command.kind == "hold":
        return Outcome(Step("held"), hold_days=command.days, note=command.reason)
    if command.kind == "approve":
        endorsement = Endorsement(person, role, "approved")
        if state == "held":
            return Outcome(Step("held"), endorsement, note=command.reason)
        step = next_step(state, writer, {*endorsements, endorsement}, owner, reviewers,
                         approvals_required, asked=asked, version=version)
        return Outcome(step, endorsement, note=command.reason)
    if command.kind == "edit" and command.text:
        endorsement = Endorsement(person, role, "wrote")
        step = next_step("owner_review", person, (endorsement,), owner, reviewers, approvals_required,
                         version=None if version is None else version + 1)
        return Outcome(step, endorsement, new_text=command.text)
    raise ValueError(f"{command.kind!r} is not a review command")


# --------------------------------------------------------------------------------------------
# The one transition: the state and everything that moves with it.


@dataclass(frozen=True)
class DraftFacts:
    state: str
    version: int
    writer: str
    endorsements: tuple[Endorsement, ...]
    owner: str
    reviewers: tuple[str, ...]  # in the order they are asked, the owner left out
    approvals_required: int
    asked: frozenset[str] = frozenset()  # who holds a live review token for the current version
    hold_until: datetime | None = None
    send_delay: timedelta = timedelta(0)


@dataclass(frozen=True)
class Event:
    """What happened to the draft: a reader's command, or something the draft itself lives by."""

    kind: Literal["command", "hold_over", "withdraw", "suspend", "resume", "sent"]
    command: Command | None = None
    person: str = ""  # who decided (a person id, or "parting")
    role: str = ""  # the token's role for a command
    reason: str = ""


@dataclass(frozen=True)
class Transition:
    state: DraftState
    ask: tuple[str, ...] = ()  # review emails to send now
    missing: str = ""
    endorsement: Endorsement | None = None
    new_text: str | None = None  # a new version, written by the event's person
    hold_until: datetime | None = None
    cancel_releases: bool = False  # every queued, failed or uncertain release row of the draft
    revoke_tokens: bool = False  # every unused token of the draft
    queue_release: bool = False  # exactly one outbox row for the current version
    not_before: datetime | None = None  # the send moment of that row
    last_chance: tuple[str, ...] = ()  # people to send a notice with a token until not_before
    note: str = ""
    changed: bool = True  # False: nothing to record but the event


def transition(facts: DraftFacts, event: Event, now: datetime) -> Transition:
    """The draft's next state and what moves with it (the table and rules at the top)."""
    if event.kind == "sent":  # the mail left: that is the truth, whatever was decided meanwhile
        return Transition("sent", revoke_tokens=True, note="the release left", changed=facts.state != "sent")
    if facts.state in FINAL_STATES:
        return Transition(facts.state, note=f"the draft is already {facts.state}",  # type: ignore[arg-type]
                          changed=False)
    if event.kind == "withdraw":
        return Transition("rejected", cancel_releases=True, revoke_tokens=True, note=event.reason)
    if event.kind == "suspend":
        if facts.state == "held" and facts.hold_until is None:
            return Transition("held", note=event.reason, changed=False)
        return Transition("held", cancel_releases=True, note=event.reason)
    if event.kind in ("hold_over", "resume"):
        if facts.state != "held":
            return Transition(facts.state, changed=False)  # type: ignore[arg-type]
        if event.kind == "hold_over" and (facts.hold_until is None or facts.hold_until > now):
            return Transition("held", hold_until=facts.hold_until, changed=False)
        step = next_step("owner_review", facts.writer, facts.endorsements, facts.owner, facts.reviewers,
                         facts.approvals_required, asked=facts.asked, version=facts.version)
        return _entering(facts, step, now, note=event.reason)
    assert event.command is not None
    outcome = apply_command(
        event.command, person=event.person, role=event.role, state=facts.state, writer=facts.writer,
        endorsements=facts.endorsements, owner=facts.owner, reviewers=facts.reviewers,
        approvals_required=facts.approvals_required, asked=facts.asked, version=facts.version)
    if outcome.step.state == "rejected":
        return Transition("rejected", cancel_releases=True, revoke_tokens=True, note=outcome.note)
    if outcome.step.state == "held" and outcome.hold_days:
        return Transition("held", hold_until=now + timedelta(days=outcome.hold_days), cancel_releases=True,
                          endorsement=outcome.endorsement, note=outcome.note)
    if outcome.new_text is not None:
        # The old version's tokens die with it; a new version starts its review from scratch.
        return Transition(outcome.step.state, ask=outcome.step.ask, missing=outcome.step.missing,
                          endorsement=outcome.endorsement, new_text=outcome.new_text, cancel_releases=True,
                          revoke_tokens=True, note=outcome.note)
    if outcome.step.state == "held":
        return Transition("held", hold_until=facts.hold_until, endorsement=outcome.endorsement, note=outcome.note)
    if facts.state == "sendable":
        # A late APPROVE: recorded, nothing else moves (the row is already queued).
        return Transition("sendable", endorsement=outcome.endorsement, note=outcome.note)
    endorsements = (*facts.endorsements, *((outcome.endorsement,) if outcome.endorsement else ()))
    return _entering(replace(facts, endorsements=endorsements), outcome.step, now,
                     endorsement=outcome.endorsement, note=outcome.note)


def _entering(facts: DraftFacts, step: Step, now: datetime, *, endorsement: Endorsement | None = None,
              note: str = "") -> Transition:
    if step.state != "sendable":
        return Transition(step.state, ask=step.ask, missing=step.missing, endorsement=endorsement, note=note)
    not_before = now + facts.send_delay
    chance = (() if facts.send_delay <= timedelta(0)
              else tuple(dict.fromkeys([facts.owner, *(e.person for e in facts.endorsements)])))
    return Transition("sendable", endorsement=endorsement, cancel_releases=True, queue_release=True,
                      not_before=not_before, last_chance=chance, note=note)


# --------------------------------------------------------------------------------------------
# Reminders and offers to the next reviewer.


@dataclass(frozen=True)
class OpenToken:
    token_id: str
    person: str
    role: str
    issued_at: datetime
    reminded_at: datetime | None = None
    offered: bool = False


@dataclass(frozen=True)
class Nudge:
    kind: Literal["remind", "offer"]
    token_id: str
    person: str
    offer_to: str | None = None  # for an offer: the next reviewer, None when nobody is left


def review_nudges(open_tokens: Iterable[OpenToken], *, reviewers: Sequence[str], owner: str,
                  asked: Collection[str], after: Callable[[datetime], datetime], now: datetime) -> list[Nudge]:
    """Live, unused review tokens of the current version nobody answered: remind once after
    `remind_after` (`after` adds it on the business calendar), then offer a reviewer's review to
    the next reviewer not asked yet."""
    nudges: list[Nudge] = []
    taken = set(asked)
    for token in open_tokens:
        if token.role not in ("owner", "reviewer"):
            continue
        if token.reminded_at is None:
            if after(token.issued_at) <= now:
                nudges.append(Nudge("remind", token.token_id, token.person))
        elif token.role == "reviewer" and not token.offered and after(token.reminded_at) <= now:
            candidate = next((r for r in reviewers if r != owner and r not in taken), None)
            if candidate is not None:
                taken.add(candidate)
            nudges.append(Nudge("offer", token.token_id, token.person, candidate))
    return nudges


def may_leave(draft_state: str, current_version: int, row_version: int | None) -> str:
    """"" when a release row of this version may leave now; otherwise why not, in words."""
    if draft_state != "sendable":
        return f"its draft is {draft_state}, not sendable"
    if row_version is not None and row_version != current_version:
        return f"it carries version {row_version} and the draft is at version {current_version}"
    return ""
