"""The responsiveness policy: one client's history in, a Verdict with its reasons out.

Rules of this module:
- The policy is the ordered table of named rules in core/rules.py (Mailman-style rules and a
  chain): every rule is consulted, every hit is kept as a reason, and the state is the strongest
  state any firing rule implies: exempt > paused > unresponsive > overdue > awaiting > active.
- A verdict depends only on (client, the set of messages, policy, calendar, now, paused): never on
  the order of the history, never on the clock.
- A real reply (core/rules.py) answers the requests sent strictly before it: all of them, or with
  reply_answers_all=False only those in its thread. The episode starts at the last real reply
  that left no earlier request unanswered (with reply_answers_all, simply the last real reply).
- A request is ignored once `calendar.add(sent_at, ignored_after) <= now` and no answer came by
  then; messages dated after `now` have not happened yet and are left out.
- Ignored requests count only inside the current episode, which a real reply from the client
  ends; the ladder is every step whose after_ignored <= the episode's ignored count, and each step
  is done at most once per episode (`due_actions`).
- Reading a history is the hot path. The usual one goes through passes that run in C and reads
  only what follows the last real replies; anything else takes the plain, checked reading. Both
  give the same facts: tests/core/test_policy_speedups.py holds them to the original definition.
- A verdict under a policy with reply_answers_all reads nothing dated before the client's second
  latest real reply dated by `now` but the bounces that report failures (`replies_read`), so the
  read-side commands load only that much: tests/core/test_policy_speedups.py and
  tests/test_store_histories.py check it over generated histories and stores.
- `next_due` is the next moment the verdict can change without new mail, so the daemon knows when
  to look again.
"""

from __future__ import annotations

import json
from bisect import bisect_left, bisect_right
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, tzinfo
from itertools import islice
from operator import attrgetter, countOf, lt
from typing import TYPE_CHECKING, NamedTuple
from zoneinfo import ZoneInfo

from daemon.core.digest import sha256
from daemon.core.model import Client, Duration, Envelope, Policy
from daemon.core.rules import (
    RULES,
    STATE_PRECEDENCE,
    Facts,
    Request,
    Rule,
    RuleHit,
    TrackedRequest,
    format_time,
    is_real_reply,
    is_request,
    ladder_reached,
)
from daemon.core.workhours import Calendar

if TYPE_CHECKING:  # annotations only: a verdict on a history without bounces makes none
    from daemon.core.model import DeliveryFailure

__all__ = [
    "RULES", "STATE_RANK", "Request", "Rule", "RuleHit", "Verdict",
    "compare", "due_actions", "evaluate", "explain", "policy_hash", "replies_read",
]

# How unresponsive each mail-driven state is; exempt and paused are outside the scale.
STATE_RANK: dict[str, int] = {"active": 0, "awaiting": 1, "overdue": 2, "unresponsive": 3, "unreachable": 4}


@dataclass(frozen=True, init=False)
class Verdict:
    """A client's state at one moment, with the rule hits (and their messages) that decided it."""

    client_id: str
    state: str  # active | awaiting | overdue | unresponsive | unreachable | paused | exempt
    reasons: tuple[RuleHit, ...]  # in RULES order, each rule's hits oldest first
    open_requests: tuple[Request, ...]  # unanswered requests of the current episode, oldest first
    ignored_count: int  # requests ignored in the current episode
    next_due: datetime | None  # when the verdict may change without new mail
    ladder: tuple[str, ...]  # escalation steps reached, in ladder order
    episode: str  # "ep-<message id of the reply that began it>" or "ep-start"
    policy_hash: str
    policy_name: str
    evaluated_at: datetime

    def __init__(self, client_id: str, state: str, reasons: tuple[RuleHit, ...], open_requests: tuple[Request, ...],
                 ignored_count: int, next_due: datetime | None, ladder: tuple[str, ...], episode: str,
                 policy_hash: str, policy_name: str, evaluated_at: datetime) -> None:
        # One per client per evaluation: fields go into __dict__ at once, as in RuleHit.
        self.__dict__.update(client_id=client_id, state=state, reasons=reasons, open_requests=open_requests,
                             ignored_count=ignored_count, next_due=next_due, ladder=ladder, episode=episode,
                             policy_hash=policy_hash, policy_name=policy_name, evaluated_at=evaluated_at)

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
        if hits:
            reasons.extend(hits)
            if rule.state:
                implied.append(rule.state)
    state = max(implied, key=STATE_PRECEDENCE.index)
    closing = facts.closing_reply
    return Verdict(
        client_id=client.id,
        state=state,
        reasons=tuple(reasons),
        open_requests=tuple([r.as_request() for r in facts.open]),
        ignored_count=len(facts.ignored),
        next_due=None if state in ("exempt", "paused", "unreachable") else _next_due(facts),
        ladder=ladder_reached(facts),
        episode="ep-" + (closing.message_id if closing else "start"),
        policy_hash=policy_hash(policy),
        policy_name=policy.name,
        evaluated_at=now,
    )


def replies_read(policy: Policy) -> int | None:
    """How far back a verdict under `policy` reads: from the client's latest real replies dated by
    `now`, this many of them (None: the whole history). Before the earliest of them it reads only
    the failures bounces report; keeping more of the history never changes a verdict.

    With reply_answers_all the episode begins at the last real reply and the requests it settled
    were sent from the one before it (episode_after_last_reply); otherwise one unanswered request,
    however old, decides which reply begins the episode."""
    return 2 if policy.reply_answers_all else None


# ---- reading the history ----------------------------------------------------------------------

_AT = attrgetter("at")
_MESSAGE_ID = attrgetter("message_id")
_CLIENT_ID = attrgetter("client_id")
_BEFORE_EVERYTHING = datetime.min.replace(tzinfo=UTC)


class Episode(NamedTuple):
    """Where the current episode begins, and the requests it holds."""

    closing_reply: Envelope | None  # the real reply that began it; None: it began with the history
    closed_requests: tuple[Envelope, ...]  # requests the closing reply settled
    requests: tuple[tuple[Envelope, Envelope | None], ...]  # (request, its answer) sent since it began


def read_facts(client: Client, history: Sequence[Envelope], policy: Policy, calendar: Calendar,
               now: datetime, paused: bool) -> Facts:
    """Everything the rules read, from every stored message of the client."""
    messages, times = timeline(client, history, now)
    find_episode = episode_after_last_reply if policy.reply_answers_all else episode_by_answers
    episode = find_episode(messages, times, policy)
    closing = episode.closing_reply

    # A request a bounce reports as not delivered was never seen by the client: not ignored.
    failures = {failure.original_message_id: (env, failure) for env in messages if env.delivery_failures
                for failure in env.delivery_failures}
    tracked: list[TrackedRequest] = []
    undeliverable: list[tuple[Envelope, Envelope, DeliveryFailure]] = []
    for request, answer in episode.requests:
        if failures and request.message_id in failures and answer is None:
            undeliverable.append((request, *failures[request.message_id]))
            continue
        due = calendar.add(request.at, policy.ignored_after)
        ignored = due <= now and (answer is None or answer.at > due)
        tracked.append(TrackedRequest(request, due, answer, ignored))

    window = policy.unresponsive.within
    in_window = tuple([r for r in tracked if r.ignored and calendar.add(r.due_at, window) > now])
    oldest_open = next((r for r in tracked if r.answer is None), None)
    silence = policy.unresponsive.or_silent_for
    # A zero or missing or_silent_for switches the silence rule off rather than firing at once.
    silent_at = None
    if oldest_open and silence is not None and not silence.is_zero:
        silent_at = calendar.add(oldest_open.envelope.at, silence)

    since_start = messages[bisect_right(times, closing.at):] if closing else messages
    inbound = [env for env in since_start if env.direction == "in"]
    return Facts(
        client=client, policy=policy, calendar=calendar, now=now, paused=paused,
        closing_reply=closing, closed_requests=episode.closed_requests, requests=tuple(tracked),
        auto_replies=tuple([env for env in inbound if env.auto_reply and not env.bounce]),
        bounces=tuple([env for env in inbound if env.bounce]),
        in_window=in_window, silent_at=silent_at, undeliverable=tuple(undeliverable),
    )


def timeline(client: Client, history: Sequence[Envelope], now: datetime) -> tuple[list[Envelope], list[datetime]]:
    """The messages that count, in _order, and their times: none dated after `now`, each message id
    once (its first copy in _order). Refuses another client's message and a date without a zone."""
    quick = _quick_timeline(client, history, now)
    return quick if quick is not None else _checked_timeline(client, history, now)


def _quick_timeline(client: Client, history: Sequence[Envelope],
                    now: datetime) -> tuple[list[Envelope], list[datetime]] | None:
    # The usual history in a few loops that run in C. None when it holds another client's message,
    # a date without a zone (comparing one with an aware date raises TypeError, and every pair of
    # neighbours is compared), two messages at one moment (only the whole _order ranks those) or
    # a message id twice: _checked_timeline then decides, and raises.
    try:
        if countOf(map(_CLIENT_ID, history), client.id) != len(history):
            if set(map(_CLIENT_ID, history)) - {None, client.id}:
                return None
        ordered = history
        times = list(map(_AT, ordered))
        if not all(map(lt, times, islice(times, 1, None))):  # not in time order yet
            ordered = sorted(history, key=_AT)
            times = list(map(_AT, ordered))
            if not all(map(lt, times, islice(times, 1, None))):
                return None
        count = bisect_right(times, now)
        # The caller's list is only read, so it is not copied unless something is cut off.
        if count < len(ordered) or not isinstance(ordered, list):
            ordered = list(ordered[:count])
            del times[count:]
        if len(set(map(_MESSAGE_ID, ordered))) != count:
            return None
    except TypeError:
        return None
    return ordered, times


def _checked_timeline(client: Client, history: Sequence[Envelope],
                      now: datetime) -> tuple[list[Envelope], list[datetime]]:
    seen: dict[str, Envelope] = {}
    for env in sorted(history, key=lambda env: _order(_require_aware(env))):
        if env.client_id is not None and env.client_id != client.id:
            raise ValueError(f"message {env.message_id} belongs to client {env.client_id}, not {client.id}")
        if env.at <= now:
            seen.setdefault(env.message_id, env)  # the same message stored twice counts once
    messages = list(seen.values())  # in _order still: each kept copy went in when first met
    return messages, [env.at for env in messages]


def _order(env: Envelope) -> tuple[object, ...]:
    # A total order on envelopes, so that nothing downstream depends on the history's order.
    return (env.at, env.message_id, env.direction, env.thread_id, env.subject, env.from_addr,
            env.auto_reply or "", env.bounce, env.question, env.tagged, env.parting_kind or "",
            env.client_id or "", env.recorded or "", repr(env.delivery_failures))


def _require_aware(env: Envelope) -> Envelope:
    if env.at.tzinfo is None or env.at.utcoffset() is None:
        raise ValueError(f"message {env.message_id} has a date without a time zone: {env.at.isoformat()}")
    return env


def episode_after_last_reply(messages: list[Envelope], times: list[datetime], policy: Policy) -> Episode:
    """What episode_by_answers finds when a reply answers every request before it, reading only the
    end of the history: the last real reply begins the episode, nothing since is answered, and it
    settled the requests sent from the moment of the real reply before it."""
    last = _previous_real_reply(messages, len(messages))
    if last < 0:
        return Episode(None, (), tuple([(env, None) for env in messages if is_request(env, policy)]))
    closing = messages[last]
    previous = _previous_real_reply(messages, last)
    settled_from = bisect_left(times, times[previous]) if previous >= 0 else 0
    start = bisect_left(times, closing.at)
    return Episode(closing, tuple([env for env in messages[settled_from:start] if is_request(env, policy)]),
                   tuple([(env, None) for env in messages[start:] if is_request(env, policy)]))


def _previous_real_reply(messages: list[Envelope], before: int) -> int:
    """The index of the last real reply before index `before`; -1 when there is none."""
    index = before - 1
    while index >= 0 and not is_real_reply(messages[index]):
        index -= 1
    return index


def episode_by_answers(messages: list[Envelope], times: list[datetime], policy: Policy) -> Episode:
    """Under any policy: each request's answer, then the last real reply that left no earlier
    request unanswered begins the episode."""
    requests = [env for env in messages if is_request(env, policy)]
    replies = [env for env in messages if is_real_reply(env)]
    answers = _answers(requests, replies, policy.reply_answers_all)
    request_times = [env.at for env in requests]
    # settled_by[k]: when the first k requests had all been answered; None: one of them never was.
    settled_by: list[datetime | None] = [_BEFORE_EVERYTHING]
    for answer in answers:
        so_far = settled_by[-1]
        settled_by.append(None if so_far is None or answer is None else max(so_far, answer.at))
    closing = next((reply for reply in reversed(replies)
                    if (settled := settled_by[bisect_left(request_times, reply.at)]) is not None
                    and settled <= reply.at), None)
    pairs = tuple(zip(requests, answers))
    if closing is None:
        return Episode(None, (), pairs)
    start = closing.at
    return Episode(closing, tuple(request for request, answer in pairs if request.at < start and answer is closing),
                   tuple(pair for pair in pairs if not pair[0].at < start))


def _answers(requests: list[Envelope], replies: list[Envelope], any_thread: bool) -> list[Envelope | None]:
    """The first real reply after each request: any reply, or the first in the request's thread."""
    group_of = (lambda env: None) if any_thread else attrgetter("thread_id")
    groups: dict[str | None, list[Envelope]] = {}
    # What a person recorded (an answer by phone) belongs to no thread: it answers every request.
    everywhere = [] if any_thread else [reply for reply in replies if reply.recorded]
    for reply in replies:
        if everywhere and reply.recorded:
            continue
        groups.setdefault(group_of(reply), []).append(reply)
    group_times = {key: [reply.at for reply in group] for key, group in groups.items()}
    answers: list[Envelope | None] = []
    for request in requests:
        key = group_of(request)
        group = groups.get(key, [])
        index = bisect_right(group_times.get(key, []), request.at)
        answer = group[index] if index < len(group) else None
        recorded = next((reply for reply in everywhere if reply.at > request.at), None)
        if recorded is not None and (answer is None or recorded.at < answer.at):
            answer = recorded
        answers.append(answer)
    return answers


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


# Every verdict carries its policy's hash, and a company has a handful of policies: each Policy
# object's hash is kept, by identity. Equality would not do: Policy(...3...) equals Policy(...3.0...)
# yet their JSON differs. Each entry holds its policy, so its id cannot pass to another object
# while the entry lives.
_HASHES: dict[int, tuple[Policy, str]] = {}
_HASHES_KEPT = 64


def policy_hash(policy: Policy) -> str:
    """The first 16 hex digits of sha256 over a canonical JSON of the policy's fields.

    A Duration counts by its amount, unit and business flag, not by how it was written, so
    "3 working days" and "3 business days" hash alike.
    """
    known = _HASHES.get(id(policy))
    if known is not None and known[0] is policy:
        return known[1]
    text = json.dumps(_canonical(policy), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = sha256(text.encode("ascii")).hexdigest()[:16]
    if len(_HASHES) >= _HASHES_KEPT:
        _HASHES.clear()
    _HASHES[id(policy)] = (policy, digest)
    return digest


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
