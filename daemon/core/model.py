"""Plain values shared by the core and the adapters.

Rules of this module:
- Frozen dataclasses and pure functions only; nothing here does IO or reads the clock.
- Settings values are already validated when they reach these classes (adapters/settings.py
  is the only YAML reader and the only place that builds them from a file).
- Times are timezone-aware `datetime`s in UTC unless a field says otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from daemon.core.deliveryfailure import DeliveryFailure as DeliveryFailure
    from daemon.core.mailvalues import ParsedMessage as ParsedMessage
    from daemon.core.oauthsettings import OAuthSettings as OAuthSettings

# --------------------------------------------------------------------------------------------
# Durations, written as people write them: "24 hours", "3 business days", "10 minutes", "0".

TimeUnit = Literal["seconds", "minutes", "hours", "days", "weeks"]
_UNITS: dict[str, TimeUnit] = {
    "second": "seconds", "seconds": "seconds", "sec": "seconds", "secs": "seconds", "s": "seconds",
    "minute": "minutes", "minutes": "minutes", "min": "minutes", "mins": "minutes", "m": "minutes",
    "hour": "hours", "hours": "hours", "h": "hours", "hr": "hours", "hrs": "hours",
    "day": "days", "days": "days", "d": "days",
    "week": "weeks", "weeks": "weeks", "w": "weeks",
}
_DURATION_RE = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<business>business\s+|working\s+)?(?P<unit>[a-z]+)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Duration:
    """A span of time as written in the config.

    `business=True` means it is counted in working time (see core/workhours.py): "3 business
    days" is three working days, "4 business hours" four working hours. Plain durations are
    wall-clock spans.
    """

    amount: float
    unit: Literal["seconds", "minutes", "hours", "days", "weeks"]
    business: bool = False
    text: str = ""

    def as_timedelta(self) -> timedelta:
        """The wall-clock span; for a business duration, the same amount of plain time."""
        return timedelta(**{self.unit: self.amount})

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    def __str__(self) -> str:
        return self.text or f"{self.amount:g} {'business ' if self.business else ''}{self.unit}"


def parse_duration(text: str | int | float) -> Duration:
    """Parse "24 hours", "3 business days", "1.5 days", "90 minutes", "0" (zero seconds).

    Raises ValueError with a message that shows the accepted forms.
    """
    if isinstance(text, bool):
        raise ValueError(f"expected a duration such as '24 hours' or '3 business days', got {text!r}")
    if isinstance(text, (int, float)):
        if text == 0:
            return Duration(0, "seconds", False, "0")
        raise ValueError(f"a duration needs a unit, such as '{text} hours' or '{text} business days'")
    raw = str(text)
    if raw.strip() == "0":
        return Duration(0, "seconds", False, "0")
    match = _DURATION_RE.match(raw)
    unit = _UNITS.get(match.group("unit").lower()) if match else None
    if not match or unit is None:
        raise ValueError(
            f"{raw!r} is not a duration: write a number and a unit, such as '24 hours', "
            "'3 business days', '30 days' or '10 minutes'"
        )
    business = bool(match.group("business"))
    if business and unit not in ("minutes", "hours", "days"):
        raise ValueError(f"{raw!r}: business time is counted in minutes, hours or days, not {unit}")
    amount = float(match.group("amount"))
    return Duration(amount, unit, business, " ".join(raw.split()))


# --------------------------------------------------------------------------------------------
# Settings (built and validated by adapters/settings.py).

Security = Literal["tls", "starttls", "none"]
Action = Literal["nudge", "notify_owner", "draft_release"]
ACTIONS: tuple[str, ...] = ("nudge", "notify_owner", "draft_release")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Person:
    """A member of staff: an owner of clients, a reviewer, or both."""

    id: str
    name: str
    email: str  # lower-case addr-spec


@dataclass(frozen=True)
class Client:
    """A client of the business, as `clients:` lists it: whose mail is theirs, who owns the account."""

    id: str
    name: str
    contact: str
    addresses: tuple[str, ...]  # lower-case addr-specs
    domains: tuple[str, ...]  # lower-case domains; mail from any address there is the client's
    owner: str  # Person.id
    phone: str | None = None
    timezone: str | None = None  # overrides working_hours.timezone for this client's deadlines
    policy: str | None = None  # name of an entry in Settings.policies; None: the default policy
    exempt: bool = False  # never evaluated or escalated; history is still kept


@dataclass(frozen=True)
class HolidayCalendar:
    """The days off besides weekends: a country's public holidays (`holidays` package) and the company's own."""

    country: str | None = None  # ISO 3166 code for the `holidays` package, e.g. "GB"
    subdivision: str | None = None  # e.g. "ENG"
    extra: tuple[date, ...] = ()  # company days off on top of the public holidays


@dataclass(frozen=True)
class WorkingHours:
    """When business time runs (`working_hours:`): the days, the hours and the holidays."""

    timezone: str = "UTC"  # IANA name
    days: tuple[int, ...] = (0, 1, 2, 3, 4)  # Monday is 0, as datetime.weekday()
    start: time = time(9, 0)
    end: time = time(17, 30)
    holidays: HolidayCalendar = field(default_factory=HolidayCalendar)


@dataclass(frozen=True)
class Unresponsive:
    """When a client counts as unresponsive: so many ignored requests in a window, or a long silence."""

    ignored_messages: int = 3  # this many ignored requests ...
    within: Duration = field(default_factory=lambda: parse_duration("30 days"))  # ... inside this window
    or_silent_for: Duration | None = field(default_factory=lambda: parse_duration("21 days"))


@dataclass(frozen=True)
class LadderStep:
    """One escalation step: the action taken once this many requests are ignored."""

    after_ignored: int
    action: Action


@dataclass(frozen=True)
class Policy:
    """The responsiveness policy. `name` is "default" or the key under `policies:`."""

    name: str = "default"
    expects_reply: Literal["all", "questions", "tagged"] = "questions"
    ignored_after: Duration = field(default_factory=lambda: parse_duration("3 business days"))
    unresponsive: Unresponsive = field(default_factory=Unresponsive)
    ladder: tuple[LadderStep, ...] = (
        LadderStep(1, "nudge"),
        LadderStep(2, "notify_owner"),
        LadderStep(3, "draft_release"),
    )
    # A reply answers every open request of the client (True) or only those in its thread.
    reply_answers_all: bool = True
    send_nudges: bool = False  # nudges are drafted for the owner; sent only when this is True
    request_tag: str = "[action needed]"  # subject tag that marks a request under `tagged`


@dataclass(frozen=True)
class ImapSettings:
    """Where and how the mailbox is read (`mailbox.imap`); secrets are named by file or variable, never held."""

    host: str
    port: int = 993
    security: Security = "tls"
    username: str = ""
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None  # a private CA to trust; None: the system's
    inbox: str = "INBOX"
    sent: str = "auto"  # "auto": the folder with the SPECIAL-USE \Sent flag
    lookback_days: int = 90
    connect_timeout: float = 30.0
    read_timeout: float = 120.0
    idle_renew: Duration = field(default_factory=lambda: parse_duration("25 minutes"))


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how mail is sent (`mailbox.smtp`), and how fast and how often a send is tried."""

    host: str
    port: int = 587
    security: Security = "starttls"
    username: str | None = None  # None: no login
    password_file: str | None = None
    password_env: str | None = None
    ca_file: str | None = None
    connect_timeout: float = 30.0
    data_timeout: float = 600.0  # RFC 5321 4.5.3.2.6: ten minutes for the final "."
    max_per_hour: int = 60
    max_attempts: int = 6


Provider = Literal["generic", "microsoft365", "google"]
PROVIDERS: tuple[str, ...] = ("generic", "microsoft365", "google")


@dataclass(frozen=True)
class MailboxSettings:
    """Our mailbox (`mailbox:`): its addresses, its servers and how we sign in."""

    address: str  # our main address, lower-case; review tokens are plus-addresses of it
    aliases: tuple[str, ...]  # further addresses of ours: mail from these is outbound too
    imap: ImapSettings
    smtp: SmtpSettings
    append_to_sent: Literal["auto", "true", "false"] = "auto"
    provider: Provider = "generic"
    auth: Literal["password", "oauth2"] = "password"
    oauth: OAuthSettings | None = None  # set when auth is oauth2
    # (key path, value) the provider preset filled in because the file left them out
    preset_filled: tuple[tuple[str, str], ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        return (self.address, *self.aliases)


@dataclass(frozen=True)
class ReviewSettings:
    """Review by reply (`review:`): who reviews, how many approvals, how long a token lives."""

    reviewers: tuple[str, ...]  # Person ids, in the order a request is offered
    approvals_required: int = 1
    token_ttl: Duration = field(default_factory=lambda: parse_duration("72 hours"))
    authserv_id: str = ""
    require_authentication: bool = True
    send_delay: Duration = field(default_factory=lambda: parse_duration("10 minutes"))
    token_key_file: str | None = None
    token_key_env: str | None = None
    remind_after: Duration = field(default_factory=lambda: parse_duration("1 business days"))


@dataclass(frozen=True)
class FollowupSettings:
    """What follows a release (`followup:`): the phone call and the retrospective, and their reminders."""

    phone_call_after: Duration = field(default_factory=lambda: parse_duration("24 hours"))
    retrospective_after: Duration = field(default_factory=lambda: parse_duration("7 days"))
    # The call is counted in business time: "24 hours" is the next working day at the same time
    # (see in_business_time); false keeps the wall clock.
    business_time: bool = True
    phone_reminders: int = 3  # reminders of the call in all, one each working day until DONE

    @property
    def phone_call_wait(self) -> Duration:
        """phone_call_after as it is counted (business time unless business_time is false)."""
        return in_business_time(self.phone_call_after) if self.business_time else self.phone_call_after


def in_business_time(wait: Duration) -> Duration:
    """A wall-clock wait read in business time: whole days (or multiples of 24 hours) become
    working days, so "24 hours" from Friday 16:00 is Monday 16:00 (the next working day at the
    same time, as a person means it); weeks are five working days; other spans are working hours
    and minutes. A business duration is returned unchanged."""
    if wait.business or wait.is_zero:
        return wait
    seconds = wait.as_timedelta().total_seconds()
    if seconds % 86400 == 0 and wait.unit != "weeks":
        return Duration(seconds / 86400, "days", True, wait.text)
    if wait.unit == "weeks":
        return Duration(wait.amount * 5, "days", True, wait.text)
    if wait.unit == "seconds":
        return Duration(seconds / 60, "minutes", True, wait.text)
    return Duration(wait.amount, wait.unit, True, wait.text)


@dataclass(frozen=True)
class Settings:
    """The whole checked configuration, as adapters/settings builds it from the YAML file."""

    source: str  # the file these settings came from
    company: str
    mailbox: MailboxSettings
    database: str
    people: tuple[Person, ...]
    clients: tuple[Client, ...]
    working_hours: WorkingHours
    policy: Policy
    policies: dict[str, Policy]  # named per-client policies
    review: ReviewSettings
    followup: FollowupSettings
    mode: Literal["live", "dry_run"] = "live"
    dry_run_dir: str | None = None
    templates_dir: str | None = None  # None: the templates shipped with parting

    def person(self, person_id: str) -> Person:
        return next(p for p in self.people if p.id == person_id)

    def client(self, client_id: str) -> Client:
        return next(c for c in self.clients if c.id == client_id)

    def policy_for(self, client: Client) -> Policy:
        return self.policies[client.policy] if client.policy else self.policy


# --------------------------------------------------------------------------------------------
# Messages as the core sees them.

Direction = Literal["in", "out"]


@dataclass(frozen=True, init=False)
class Envelope:
    """A stored message as the policy sees it (one row of the messages table)."""

    message_id: str
    client_id: str | None
    thread_id: str
    direction: Direction
    at: datetime  # when it was sent or received (UTC)
    subject: str
    from_addr: str
    auto_reply: str | None = None
    bounce: bool = False
    question: bool = False  # our new text asks something (a question mark or a request phrase)
    tagged: bool = False  # marked as a request by subject tag or X-Parting-Request header
    parting_kind: str | None = None
    # A bounce: the messages of ours it reports as not delivered (core/bounces.py).
    delivery_failures: tuple[DeliveryFailure, ...] = ()
    # Not a message: what a person recorded, standing in the history as the client's real reply
    # would ("answered:phone", "answered:meeting", "answered:other", "owner_changed"); `subject`
    # holds the note and `from_addr` the person id who recorded it.
    recorded: str | None = None

    def __init__(self, message_id: str, client_id: str | None, thread_id: str, direction: Direction, at: datetime,
                 subject: str, from_addr: str, auto_reply: str | None = None, bounce: bool = False,
                 question: bool = False, tagged: bool = False, parting_kind: str | None = None,
                 delivery_failures: tuple[DeliveryFailure, ...] = (), recorded: str | None = None) -> None:
        # The reports read thousands of these from the store: fields go into __dict__ at once,
        # a third of what the generated frozen __init__ costs (as core/rules.py RuleHit).
        self.__dict__.update(message_id=message_id, client_id=client_id, thread_id=thread_id, direction=direction,
                             at=at, subject=subject, from_addr=from_addr, auto_reply=auto_reply, bounce=bounce,
                             question=question, tagged=tagged, parting_kind=parting_kind,
                             delivery_failures=delivery_failures, recorded=recorded)


# Made on first use (`from daemon.core.model import ParsedMessage` works as before): each frozen
# dataclass costs about a millisecond to create, and the typed reports read none of these.
_ELSEWHERE = {"ParsedMessage": "daemon.core.mailvalues", "DeliveryFailure": "daemon.core.deliveryfailure",
              "OAuthSettings": "daemon.core.oauthsettings"}


def __getattr__(name: str) -> object:
    if name in _ELSEWHERE:
        import importlib

        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
