"""The responsiveness policy: one client's history in, a Verdict with its reasons out.

Rules of this module:
- The policy is the ordered table of named rules in core/rules.py (Mailman-style rules and a
  chain): every rule is consulted, every hit is kept as a reason, and the state is the strongest
  state any firing rule implies: exempt > paused > unresponsive > overdue > awaiting > active.
- A verdict depends only on (client, the set of messages, policy, calendar, now, paused): never on
  the order of the history, never on the clock.
- Ignored requests count only inside the current episode, which a real reply from the client
  ends; the ladder is every step whose after_ignored <= the episode's ignored count, and each step
  is done at most once per episode (`due_actions`).
- `next_due` is the next moment the verdict can change without new mail, so the daemon knows when
  to look again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

from daemon.core.model import Client, Duration, Envelope, Policy
from daemon.core.rules import (
    RULES, STATE_PRECEDENCE, Facts, Request, Rule, RuleHit, format_time, ladder_reached, read_facts,
)
from daemon.core.workhours import Calendar

__all__ = [
    "RULES", "STATE_RANK", "Request", "Rule", "RuleHit", "Verdict",
    "compare", "due_actions", "evaluate", "explain", "policy_hash",
]

# How unresponsive each mail-driven state is; exempt and paused are outside the scale.
STATE_RANK: dict[str, int] = {"active": 0, "awaiting": 1, "overdue": 2, "unresponsive": 3}


@dataclass(frozen=True)
class Verdict:
    client_id: str
    state: str  # active | awaiting | overdue | unresponsive | paused | exempt
    reasons: tuple[RuleHit, ...]  # in RULES order, each rule's hits oldest first
    open_requests: tuple[Request, ...]  # unanswered requests of the current episode, oldest first
    ignored_count: int  # requests ignored in the current episode
    next_due: datetime | None  # when the verdict may change without new mail
    ladder: tuple[str, ...]  # escalation steps reached, in ladder order
    episode: str  # "ep-<message id of the reply that began it>" or "ep-start"
    policy_hash: str
    policy_name: str
    evaluated_at: datetime

    def fired(self, rule: str) -> tuple[RuleHit, ...]:
        """The hits of one rule (by hit name, so "ladder:nudge" or "request-ignored")."""
        return tuple(hit for hit in self.reasons if hit.rule == rule)

    def to_dict(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "state": self.state,
            "reasons": [hit.to_dict() for hit in self.reasons],
            "open_requests": [request.to_dict() for request in self.open_requests],
            "ignored_count": self.ignored_count,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "ladder": list(self.ladder),
            "episode": self.episode,
            "policy_hash": self.policy_hash,
            "policy_name": self.policy_name,
            "evaluated_at": self.evaluated_at.isoformat(),
        }


def evaluate(client: Client, history: Sequence[Envelope], policy: Policy, calendar: Calendar, now: datetime,
             *, paused: bool = False) -> Verdict:
    """Judge how responsive `client` is at `now` from every stored message of theirs."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    now = now.astimezone(UTC)
    facts = read_facts(client, history, policy, calendar, now, paused)
    reasons: list[RuleHit] = []
    implied: list[str] = []
    for rule in RULES:
        hits = rule.check(facts)
        reasons.extend(hits)
        if hits and rule.state:
            implied.append(rule.state)
    state = max(implied, key=STATE_PRECEDENCE.index)
    closing = facts.closing_reply
    return Verdict(
        client_id=client.id,
        state=state,
        reasons=tuple(reasons),
        open_requests=tuple(r.as_request() for r in facts.open),
        ignored_count=len(facts.ignored),
        next_due=None if state in ("exempt", "paused") else _next_due(facts),
        ladder=ladder_reached(facts),
        episode="ep-" + (closing.message_id if closing else "start"),
        policy_hash=policy_hash(policy),
        policy_name=policy.name,
        evaluated_at=now,
    )


def _next_due(facts: Facts) -> datetime | None:
    moments = [r.due_at for r in facts.open if not r.ignored]
    if facts.silent_at and facts.silent_at > facts.now:
        moments.append(facts.silent_at)
    if facts.ignored_for_threshold and not facts.silent:
        # Unresponsive by count only: it ends when enough ignored requests leave the window.
        within = facts.policy.unresponsive.within
        leaving = sorted(facts.calendar.add(r.due_at, within) for r in facts.in_window)
        moments.append(leaving[len(leaving) - facts.threshold])
    return min(moments, default=None)


def policy_hash(policy: Policy) -> str:
    """The first 16 hex digits of sha256 over a canonical JSON of the policy's fields.

    A Duration counts by its amount, unit and business flag, not by how it was written, so
    "3 working days" and "3 business days" hash alike.
    """
    text = json.dumps(_canonical(policy), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _canonical(value: object) -> object:
    if isinstance(value, Duration):
        return {"amount": float(value.amount), "unit": value.unit, "business": value.business}
    if is_dataclass(value) and not isinstance(value, type):
        return {item.name: _canonical(getattr(value, item.name)) for item in fields(value)}
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    return value


def due_actions(verdict: Verdict, done: Collection[str]) -> tuple[str, ...]:
    """Ladder steps reached but not yet done in this episode, in ladder order."""
    return tuple(action for action in verdict.ladder if action not in done)


def explain(verdict: Verdict, client: Client, tz: str | tzinfo) -> list[str]:
    """The evidence chain in plain words, one fact a line, in time order, times in `tz`."""
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    lines = [
        f"{client.name} ({client.id}): policy '{verdict.policy_name}' [{verdict.policy_hash}], "
        f"evaluated {format_time(verdict.evaluated_at, zone)}, episode {verdict.episode}."
    ]
    # (time, tie-break, line): a sending comes before what followed from it at the same minute.
    timed: list[tuple[datetime, int, str]] = [
        (request.sent_at, -1, f"{format_time(request.sent_at, zone)}: we sent {request.subject!r}, expecting a "
                              f"reply by {format_time(request.due_at, zone)} [request]")
        for request in verdict.open_requests if request.ignored
    ]
    timed.extend(
        (hit.at, index, f"{format_time(hit.at, zone)}: {hit.render(zone)} [{hit.rule}]")
        for index, hit in enumerate(verdict.reasons) if hit.at
    )
    lines.extend(line for _, _, line in sorted(timed, key=lambda row: row[:2]))
    lines.extend(f"{hit.render(zone)} [{hit.rule}]" for hit in verdict.reasons if not hit.at)
    lines.append(f"State: {verdict.state}, {verdict.ignored_count} ignored request(s) in this episode; "
                 f"{_ladder_words(verdict.ladder)}.")
    lines.append(_next_words(verdict, zone))
    return lines


def _ladder_words(ladder: tuple[str, ...]) -> str:
    return "ladder reached: " + ", ".join(ladder) if ladder else "no ladder step reached"


def _next_words(verdict: Verdict, zone: tzinfo) -> str:
    if verdict.state == "exempt":
        return "Next: nothing; the client is exempt."
    if verdict.state == "paused":
        return "Next: nothing until evaluation is resumed."
    if verdict.next_due is None:
        if verdict.state == "active":
            return "Next: nothing until we ask the client something."
        return "Next: nothing changes without new mail; a real reply from the client starts a new episode."
    return (f"Next: the verdict may change on {format_time(verdict.next_due, zone)} without new mail; "
            "a real reply from the client before then starts a new episode.")


def compare(before: Verdict, after: Verdict) -> str | None:
    """One line saying how the state or ladder moved between two verdicts, or None if neither did."""
    if before.state == after.state and before.ladder == after.ladder:
        return None
    moved = f"{before.state} -> {after.state}" if before.state != after.state else f"still {after.state}"
    parts = [f"{after.client_id}: {moved} ({after.ignored_count} ignored)"]
    reached = [action for action in after.ladder if action not in before.ladder]
    dropped = [action for action in before.ladder if action not in after.ladder]
    if reached:
        parts.append("ladder reached " + ", ".join(reached))
    if dropped:
        parts.append("ladder reset (" + ", ".join(dropped) + " no longer reached)")
    return "; ".join(parts)
