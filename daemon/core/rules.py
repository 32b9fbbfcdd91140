"""The responsiveness rules: the facts read from one client's history, and the ordered rule table.

Rules of this module:
- `read_facts` (core/policy.py) turns the history into Facts once; each Rule is a small pure
  function of those facts that returns its hits (empty: it did not fire). RULES is read top to
  bottom and every hit is recorded, Mailman-style; a rule's `state` is what its firing implies,
  and the verdict takes the strongest implied state (STATE_PRECEDENCE), so the table order is the
  order of the evidence, not a priority list.
- Requests are our outbound messages that expect a reply under `policy.expects_reply`; our own
  auto-replies and the mail parting generates (review, release...; nudges excepted) never are.
- A real reply is inbound, written by a person (no auto_reply, no bounce, not parting's mail), or
  what a person recorded in its place (`Envelope.recorded`: an answer by phone or in a meeting,
  an owner change), which answers every open request whatever the thread.
- Every verdict builds these values for each client, so the hot ones fill their fields in one
  step (see RuleHit.__init__) and format_time keeps the words of each day it has written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Protocol

from daemon.core.model import Client, Envelope, Policy
from daemon.core.workhours import Calendar

if TYPE_CHECKING:  # annotations only: a verdict on a history without bounces makes none
    from daemon.core.model import DeliveryFailure

# Weakest first; exempt and paused override whatever the mail says.
# unreachable (every address of the client bounced) outranks unresponsive: it calls for fixing an
# address, never for a release.
STATE_PRECEDENCE: tuple[str, ...] = ("active", "awaiting", "overdue", "unresponsive", "unreachable", "paused",
                                     "exempt")
# Kinds of our own generated mail that still ask the client for something.
REQUESTING_KINDS = frozenset({"nudge"})

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TWO_DIGITS = tuple(f"{number:02d}" for number in range(60))
# Every rule hit formats its times, a few per client: the words for a day ("Fri 6 Nov 2026 ") are
# kept by day number, as few as the days mail was sent on.
_DAY_WORDS: dict[int, str] = {}
_DAY_WORDS_KEPT = 20_000


def format_time(moment: datetime, zone: tzinfo) -> str:
    """'Fri 6 Nov 2026 16:00' in `zone`, the same in every locale."""
    local = moment.astimezone(zone)
    day = local.toordinal()
    words = _DAY_WORDS.get(day)
    if words is None:
        if len(_DAY_WORDS) >= _DAY_WORDS_KEPT:
            _DAY_WORDS.clear()
        words = _DAY_WORDS[day] = f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local.year} "
    return f"{words}{_TWO_DIGITS[local.hour]}:{_TWO_DIGITS[local.minute]}"


@dataclass(frozen=True, init=False)
class RuleHit:
    """One rule firing on some messages. `detail` is in plain words, times in the client's zone.

    `at` is when the fact came about (orders explain()); `template` and `times` let explain()
    render the same words in another zone.
    """

    rule: str
    message_ids: tuple[str, ...]
    detail: str
    at: datetime | None = None
    template: str = field(default="", repr=False)
    times: tuple[datetime, ...] = field(default=(), repr=False)

    def __init__(self, rule: str, message_ids: tuple[str, ...], detail: str, at: datetime | None = None,
                 template: str = "", times: tuple[datetime, ...] = ()) -> None:
        # Frozen, so the generated __init__ sets each field through object.__setattr__; filling
        # __dict__ at once costs a third of that, and every verdict makes a few hits.
        self.__dict__.update(rule=rule, message_ids=message_ids, detail=detail, at=at, template=template,
                             times=times)

    @classmethod
    def worded_later(cls, rule: str, message_ids: tuple[str, ...], template: str, times: tuple[datetime, ...],
                     at: datetime | None, zone: tzinfo) -> RuleHit:
        """A hit whose `detail` is written in `zone` when first read: most verdicts are only
        looked at for their state (status, simulate), and writing the times was a quarter of
        judging a client."""
        hit = cls.__new__(cls)
        hit.__dict__.update(rule=rule, message_ids=message_ids, at=at, template=template, times=times,
                            _zone=zone)
        return hit

    def __getattr__(self, name: str) -> str:
        # Only reached for what __dict__ lacks: the detail of a hit made by worded_later.
        zone = self.__dict__.get("_zone")
        if name != "detail" or zone is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        detail = self.__dict__["detail"] = self.template.format(*[format_time(moment, zone) for moment in self.times])
        return detail

    def render(self, zone: tzinfo) -> str:
        if not self.template:
            return self.detail
        return self.template.format(*(format_time(moment, zone) for moment in self.times))

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule,
            "message_ids": list(self.message_ids),
            "detail": self.detail,
            "at": self.at.isoformat() if self.at else None,
        }


@dataclass(frozen=True, init=False)
class Request:
    """One of our messages that expects a reply, as the verdict reports it."""

    message_id: str
    subject: str
    sent_at: datetime
    due_at: datetime
    ignored: bool
    thread_id: str

    def __init__(self, message_id: str, subject: str, sent_at: datetime, due_at: datetime, ignored: bool,
                 thread_id: str) -> None:
        self.__dict__.update(message_id=message_id, subject=subject, sent_at=sent_at, due_at=due_at,
                             ignored=ignored, thread_id=thread_id)  # as RuleHit's

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "sent_at": self.sent_at.isoformat(), "due_at": self.due_at.isoformat()}


@dataclass(frozen=True, init=False)
class TrackedRequest:
    """A request of the current episode with what became of it."""

    envelope: Envelope
    due_at: datetime
    answer: Envelope | None  # the first real reply that answers it, if any (by `now`)
    ignored: bool  # unanswered when due, and due by now (even if answered later)

    def __init__(self, envelope: Envelope, due_at: datetime, answer: Envelope | None, ignored: bool) -> None:
        self.__dict__.update(envelope=envelope, due_at=due_at, answer=answer, ignored=ignored)  # as RuleHit's

    @property
    def open(self) -> bool:
        return self.answer is None

    def as_request(self) -> Request:
        env = self.envelope
        return Request(env.message_id, env.subject, env.at, self.due_at, self.ignored, env.thread_id)


@dataclass(frozen=True, init=False)
class Facts:
    """Everything the rules read, computed once from the history."""

    client: Client
    policy: Policy
    calendar: Calendar
    now: datetime
    paused: bool
    closing_reply: Envelope | None  # the real reply that started the current episode
    closed_requests: tuple[Envelope, ...]  # requests the closing reply settled
    requests: tuple[TrackedRequest, ...]  # the current episode's requests, oldest first
    auto_replies: tuple[Envelope, ...]  # since the episode began
    bounces: tuple[Envelope, ...]  # since the episode began
    in_window: tuple[TrackedRequest, ...]  # ignored requests still inside unresponsive.within
    silent_at: datetime | None  # when the oldest open request has been unanswered or_silent_for
    # The episode's requests a bounce reports as not delivered: (request, bounce, failure).
    undeliverable: tuple[tuple[Envelope, Envelope, DeliveryFailure], ...] = ()
    # Read by several rules, so sorted out once, in __init__.
    ignored: tuple[TrackedRequest, ...] = field(init=False, repr=False, compare=False)
    open: tuple[TrackedRequest, ...] = field(init=False, repr=False, compare=False)

    def __init__(self, client: Client, policy: Policy, calendar: Calendar, now: datetime, paused: bool,
                 closing_reply: Envelope | None, closed_requests: tuple[Envelope, ...],
                 requests: tuple[TrackedRequest, ...], auto_replies: tuple[Envelope, ...],
                 bounces: tuple[Envelope, ...], in_window: tuple[TrackedRequest, ...],
                 silent_at: datetime | None,
                 undeliverable: tuple[tuple[Envelope, Envelope, DeliveryFailure], ...] = ()) -> None:
        self.__dict__.update(client=client, policy=policy, calendar=calendar, now=now, paused=paused,
                             closing_reply=closing_reply, closed_requests=closed_requests, requests=requests,
                             auto_replies=auto_replies, bounces=bounces, in_window=in_window,
                             silent_at=silent_at, undeliverable=undeliverable,
                             ignored=tuple([r for r in requests if r.ignored]),
                             open=tuple([r for r in requests if r.answer is None]))  # as RuleHit's

    @property
    def zone(self) -> tzinfo:
        return self.calendar.zone

    @property
    def threshold(self) -> int:
        # "0 ignored messages" would call every client unresponsive; one is the least that is evidence.
        return max(1, self.policy.unresponsive.ignored_messages)

    @property
    def ignored_for_threshold(self) -> bool:
        return len(self.in_window) >= self.threshold

    @property
    def unreachable_at(self) -> datetime | None:
        """When the last of the client's addresses bounced in this episode; None while one of them
        has not (or the client has no address of its own, only domains)."""
        if not self.client.addresses:
            return None
        bounced: dict[str, datetime] = {}
        for env in self.bounces:
            for failure in env.delivery_failures:
                bounced.setdefault(failure.recipient, env.at)
        if not set(self.client.addresses) <= set(bounced):
            return None
        return max(bounced[address] for address in self.client.addresses)

    @property
    def silent(self) -> bool:
        return self.silent_at is not None and self.silent_at <= self.now

    def hit(self, rule: str, ids: Sequence[str], template: str, times: Sequence[datetime] = (),
            at: datetime | None = None) -> RuleHit:
        return RuleHit.worded_later(rule, tuple(ids), template, tuple(times), at, self.calendar.zone)


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def quote(text: str) -> str:
    """A subject inside a hit's template: quoted, with format braces escaped."""
    return "'" + _escape(text or "(no subject)") + "'"


# ---- requests and replies ---------------------------------------------------------------------


def is_request(env: Envelope, policy: Policy) -> bool:
    if env.direction != "out" or env.auto_reply:
        return False
    if env.parting_kind and env.parting_kind not in REQUESTING_KINDS:
        return False
    if policy.expects_reply == "all":
        return True
    if policy.expects_reply == "questions":
        return env.question
    return env.tagged


class MailSigns(Protocol):
    """What tells a real reply: an Envelope, or a stored message row."""

    @property
    def direction(self) -> str: ...
    @property
    def auto_reply(self) -> str | None: ...
    @property
    def bounce(self) -> bool: ...
    @property
    def parting_kind(self) -> str | None: ...


def is_real_reply(mail: MailSigns) -> bool:
    """Inbound and written by a person (or what a person recorded in its place: an answer outside
    email, an owner change): no auto-reply, no bounce, not parting's own mail. Either begins a new
    episode. The one test of a reply, for the verdict, for ingest's client replies and for answered
    follow-up calls."""
    return mail.direction == "in" and not mail.auto_reply and not mail.bounce and not mail.parting_kind


# ---- the rules --------------------------------------------------------------------------------


Hits = tuple[RuleHit, ...]


@dataclass(frozen=True)
class Rule:
    """One named rule of the policy table: what it checks in the facts, and the state it implies."""

    name: str
    description: str
    check: Callable[[Facts], Hits]
    state: str | None = None  # the state this rule implies when it fires; None: evidence only


def _exempt(f: Facts) -> Hits:
    if not f.client.exempt:
        return ()
    return (f.hit("exempt", (), f"client {quote(f.client.name)} is exempt: never escalated"),)


def _paused(f: Facts) -> Hits:
    return (f.hit("paused", (), "evaluation is paused for this client"),) if f.paused else ()


def _no_requests(f: Facts) -> Hits:
    if f.open:
        return ()
    if f.closing_reply:
        env = f.closing_reply
        return (f.hit("no-requests", (env.message_id,), "no request of ours is waiting for a reply since the "
                      "client wrote on {0}", (env.at,), env.at),)
    return (f.hit("no-requests", (), "no message of ours is waiting for a reply"),)


def _request_open(f: Facts) -> Hits:
    return tuple([
        f.hit("request-open", (r.envelope.message_id,),
              f"our request {quote(r.envelope.subject)} of {{0}} awaits a reply; ignored if unanswered by {{1}}",
              (r.envelope.at, r.due_at), r.envelope.at)
        for r in f.open if not r.ignored
    ])


def _request_ignored(f: Facts) -> Hits:
    hits = []
    for r in f.ignored:
        env = r.envelope
        if r.answer is None:
            template = f"our request {quote(env.subject)} of {{0}} went unanswered; ignored since {{1}}"
            times: tuple[datetime, ...] = (env.at, r.due_at)
        else:
            template = (f"our request {quote(env.subject)} of {{0}} went unanswered until {{2}}; "
                        "ignored since {1}")
            times = (env.at, r.due_at, r.answer.at)
        hits.append(f.hit("request-ignored", (env.message_id,), template, times, r.due_at))
    return tuple(hits)


def _answered(f: Facts) -> Hits:
    reply = f.closing_reply
    if reply is None or reply.recorded == "owner_changed":
        return ()
    ids = (reply.message_id, *(r.message_id for r in f.closed_requests))
    what = f"answering {len(f.closed_requests)} request(s) of ours" if f.closed_requests else "unprompted"
    if reply.recorded:
        how = reply.recorded.partition(":")[2] or "other"
        words = "in a meeting" if how == "meeting" else "by phone" if how == "phone" else "outside email"
        return (f.hit("answered", ids, f"the client answered {words} on {{0}}, recorded by "
                      f"{_escape(reply.from_addr)}: {quote(reply.subject)} ({what}); a new episode began",
                      (reply.at,), reply.at),)
    return (f.hit("answered", ids, f"the client replied {quote(reply.subject)} on {{0}} ({what}); "
                  "a new episode began", (reply.at,), reply.at),)


def _owner_changed(f: Facts) -> Hits:
    change = f.closing_reply
    if change is None or change.recorded != "owner_changed":
        return ()
    ids = (change.message_id, *(r.message_id for r in f.closed_requests))
    return (f.hit("owner-changed", ids, f"{_escape(change.subject)} on {{0}} (settling {len(f.closed_requests)} "
                  "open request(s)); a new episode began", (change.at,), change.at),)


def _auto_reply_ignored(f: Facts) -> Hits:
    if not f.auto_replies:
        return ()
    return tuple([
        f.hit("auto-reply-ignored", (env.message_id,),
              f"automatic reply {quote(env.subject)} of {{0}} disregarded ({_escape(env.auto_reply or '')})",
              (env.at,), env.at)
        for env in f.auto_replies
    ])


def _bounced(f: Facts) -> Hits:
    if not f.bounces:
        return ()
    return tuple([
        f.hit("bounced", (env.message_id,),
              f"delivery failure {quote(env.subject)} of {{0}}: our mail may not be reaching the client",
              (env.at,), env.at)
        for env in f.bounces
    ])


def _undeliverable(f: Facts) -> Hits:
    return tuple([
        f.hit("undeliverable", (request.message_id, bounce.message_id),
              f"our request {quote(request.subject)} of {{0}} was not delivered to {_escape(failure.recipient)} "
              f"({_escape(failure.reason)}), reported {{1}}: not counted as ignored", (request.at, bounce.at),
              bounce.at)
        for request, bounce, failure in f.undeliverable
    ])


def _unreachable(f: Facts) -> Hits:
    at = f.unreachable_at
    if at is None:
        return ()
    ids = tuple(dict.fromkeys(env.message_id for env in f.bounces if env.delivery_failures))
    return (f.hit("unreachable", ids, f"every address of the client bounced ({_escape(', '.join(f.client.addresses))}),"
                  " the last on {0}: fix the address; never escalated", (at,), at),)


def _ignored_threshold(f: Facts) -> Hits:
    if not f.ignored_for_threshold:
        return ()
    within = f.policy.unresponsive.within
    ids = tuple(r.envelope.message_id for r in f.in_window)
    reached = max(r.due_at for r in f.in_window)
    return (f.hit("ignored-threshold", ids, f"{len(f.in_window)} request(s) ignored within {_escape(str(within))} "
                  f"(threshold {f.threshold})", (), reached),)


def _silent_too_long(f: Facts) -> Hits:
    if not f.silent or f.silent_at is None:
        return ()
    oldest = next(r for r in f.requests if r.open)
    silence = f.policy.unresponsive.or_silent_for
    return (f.hit("silent-too-long", (oldest.envelope.message_id,),
                  f"our request {quote(oldest.envelope.subject)} of {{0}} has had no reply for "
                  f"{_escape(str(silence))}, as of {{1}}", (oldest.envelope.at, f.silent_at), f.silent_at),)


def _silence_reached(f: Facts) -> bool:
    """A client unresponsive by silence has reached every step: the count alone could never
    escalate a client who was asked once and never answered."""
    return bool(f.silent and f.silent_at is not None)


def ladder_reached(f: Facts) -> tuple[str, ...]:
    if f.client.exempt or f.paused or f.unreachable_at is not None:
        return ()
    count = len(f.ignored)
    silenced = _silence_reached(f)
    return tuple([step.action for step in f.policy.ladder if step.after_ignored <= count or silenced])


def _ladder(f: Facts) -> Hits:
    if f.client.exempt or f.paused or f.unreachable_at is not None:
        return ()
    by_due = sorted(f.ignored, key=lambda r: (r.due_at, r.envelope.message_id))
    hits = []
    for step in f.policy.ladder:
        if step.after_ignored > len(by_due):
            if _silence_reached(f) and f.silent_at is not None:  # (silence reached implies the time)
                oldest = next(r for r in f.requests if r.open)
                hits.append(f.hit(f"ladder:{step.action}", (oldest.envelope.message_id,),
                                  f"{step.action} reached because the client has been silent for "
                                  f"{_escape(str(f.policy.unresponsive.or_silent_for))}, as of {{0}}",
                                  (f.silent_at,), f.silent_at))
            continue
        # The request whose ignoring reached this step (a step at 0 is reached with the episode).
        trigger = by_due[step.after_ignored - 1] if step.after_ignored > 0 else None
        if trigger:
            hits.append(f.hit(f"ladder:{step.action}", (trigger.envelope.message_id,),
                              f"{step.action} reached with {step.after_ignored} ignored request(s), on {{0}}",
                              (trigger.due_at,), trigger.due_at))
        else:
            hits.append(f.hit(f"ladder:{step.action}", (), f"{step.action} is due with no ignored request"))
    return tuple(hits)


RULES: tuple[Rule, ...] = (
    Rule("exempt", "the client is exempt from the policy", _exempt, "exempt"),
    Rule("paused", "evaluation is paused for the client", _paused, "paused"),
    Rule("no-requests", "no request of ours is waiting for a reply", _no_requests, "active"),
    Rule("request-open", "a request is waiting for a reply inside its window", _request_open, "awaiting"),
    Rule("request-ignored", "a request went unanswered past ignored_after (one hit each)", _request_ignored,
         "overdue"),
    Rule("answered", "the client's real reply that began the current episode", _answered),
    Rule("owner-changed", "a new owner took the client over: a new episode began", _owner_changed),
    Rule("auto-reply-ignored", "automatic replies seen and disregarded", _auto_reply_ignored),
    Rule("bounced", "delivery failures: evidence, never an answer", _bounced),
    Rule("undeliverable", "a request a bounce reports as not delivered: never counted as ignored", _undeliverable),
    Rule("unreachable", "every address of the client bounced: fix the address, never escalate", _unreachable,
         "unreachable"),
    Rule("ignored-threshold", "enough requests ignored within the unresponsive window", _ignored_threshold,
         "unresponsive"),
    Rule("silent-too-long", "a request has been open for or_silent_for", _silent_too_long, "unresponsive"),
    Rule("ladder", "escalation steps reached by the ignored count (hits named ladder:<action>)", _ladder),
)
