"""The configuration schema: one table from which defaults, validation and docs all come.

Rules of this module:
- Every key the loader accepts is declared here once, with its kind, default and doc line.
  Unknown-key detection, defaults, docs/configuration.md and the example-config test all read
  this table; nothing else lists keys.
- Defaults are taken from daemon/core/model.py's dataclasses where they exist, so the model
  stays the single source of default values.
- No YAML here: kinds receive plain `Scalar` values; adapters/settings.py reads the file.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Callable, Iterator, Literal, Union
from email.headerregistry import Address
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import holidays

from daemon.core.model import (
    ACTIONS, WEEKDAYS, FollowupSettings, ImapSettings, Policy, ReviewSettings, SmtpSettings,
    WorkingHours, parse_duration,
)


class Invalid(ValueError):
    """A value that does not fit its key; the message becomes the Problem's message."""


@dataclass(frozen=True)
class Scalar:
    value: object  # as YAML's safe constructor built it (str, int, bool, date, ...)
    text: str  # the characters as written, without quotes


@dataclass(frozen=True)
class Kind:
    name: str  # what the value is, for docs and "expected ..." messages
    convert: Callable[[Scalar], object]


def shown(text: object, limit: int = 40) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# Kinds of values.


def _text(s: Scalar) -> str:
    text = s.text.strip()
    if not text:
        raise Invalid("must not be empty")
    return text


TEXT = Kind("text", _text)
PATH = Kind("path", _text)


def _pattern(name: str, regex: str, hint: str) -> Kind:
    compiled = re.compile(regex)

    def convert(s: Scalar) -> str:
        text = _text(s)
        if not compiled.fullmatch(text):
            raise Invalid(f"{shown(text)} is not a valid {name}: {hint}")
        return text

    return Kind(name, convert)


IDENT = _pattern("id", r"[A-Za-z0-9][A-Za-z0-9_.-]*", "use letters, digits, '_', '.' and '-'")
ENV_NAME = _pattern("environment variable name", r"[A-Za-z_][A-Za-z0-9_]*", "e.g. IMAP_PASSWORD")


def whole_number(low: int | None = None, high: int | None = None, why: str = "") -> Kind:
    def convert(s: Scalar) -> int:
        if isinstance(s.value, bool) or not isinstance(s.value, int):
            unquote = " (write it without quotes)" if s.text.strip().isdigit() else ""
            raise Invalid(f"expected a whole number, got {shown(s.text)}{unquote}")
        if low is not None and s.value < low or high is not None and s.value > high:
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise Invalid(f"must be {bounds}, not {s.value}{why}")
        return s.value

    return Kind("whole number" if low is None else f"whole number ≥ {low}", convert)


def _bool(s: Scalar) -> bool:
    if not isinstance(s.value, bool):
        raise Invalid(f"expected true or false, got {shown(s.text)}")
    return s.value


BOOL = Kind("true or false", _bool)
PORT = Kind("port 1-65535", whole_number(1, 65535).convert)


def choice(*options: str) -> Kind:
    def convert(s: Scalar) -> str:
        text = ("true" if s.value else "false") if isinstance(s.value, bool) else s.text.strip()
        if text not in options:
            listed = ", ".join(options)
            raise Invalid(f"expected one of {listed}, got {shown(text)}{did_you_mean(text, options)}")
        return text

    return Kind("one of " + " | ".join(options), convert)


def duration(*, zero: bool = True, business: bool = True, at_most: timedelta | None = None,
             zero_why: str = "", at_most_why: str = "") -> Kind:
    def convert(s: Scalar):
        try:
            value = parse_duration(s.value if isinstance(s.value, (int, float)) else s.text)
        except ValueError as error:
            raise Invalid(str(error)) from None
        if value.is_zero and not zero:
            raise Invalid(f"must not be zero{zero_why}")
        if value.business and not business:
            raise Invalid(f"{shown(value)} is business time; this is wall-clock time, e.g. '30 seconds'")
        if at_most is not None and value.as_timedelta() > at_most:
            raise Invalid(f"must be at most {_span(at_most)}, not {value}{at_most_why}")
        return value

    name = "duration" if business else "wall-clock duration"
    return Kind(name, convert)


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"


DURATION = duration()
TIMEOUT = duration(zero=False, business=False)


def _email(s: Scalar) -> str:
    text = s.text.strip()
    problem = f"{shown(text)} is not an email address: write it as name@example.com, with no display name"
    local, at, domain = text.rpartition("@")
    if not at or "@" in local or not local or any(c.isspace() for c in text) or not _is_domain(domain):
        raise Invalid(problem)
    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError):
        raise Invalid(problem) from None
    return parsed.addr_spec.lower()


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _is_domain(text: str) -> bool:
    try:
        ascii_form = text.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_form.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def _domain(s: Scalar) -> str:
    text = s.text.strip().lower().rstrip(".")
    if text.startswith(("@", "*.")):
        raise Invalid(f"write the domain alone, as {shown(text.lstrip('@*.'))}")
    if not _is_domain(text):
        raise Invalid(f"{shown(text)} is not a domain name such as 'example.com'")
    return text


EMAIL = Kind("email address", _email)
DOMAIN = Kind("domain", _domain)


def _host(s: Scalar) -> str:
    text = _text(s)
    if any(c.isspace() for c in text) or "/" in text or text.count(":") == 1:
        raise Invalid(f"{shown(text)}: write just the host name or IP address, without scheme or port")
    return text


HOST = Kind("host name or IP address", _host)


def is_loopback(host: str) -> bool:
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _timezone(s: Scalar) -> str:
    text = _text(s)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(text, _zone_names())
        raise Invalid(f"{shown(text)} is not a time zone{hint}: use an IANA name such as "
                      "'Europe/London' or 'America/New_York'") from None
    return text


TIMEZONE = Kind("time zone (IANA name)", _timezone)


def _time_of_day(s: Scalar) -> str:
    # YAML 1.1 reads an unquoted 17:30 as the number 1050; the written text is what we want.
    text = s.text.strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise Invalid(f"{shown(text)} is not a time of day: write it as \"09:00\" (24-hour clock)")
    return f"{int(match[1]):02d}:{match[2]}"


TIME_OF_DAY = Kind("time HH:MM", _time_of_day)


def _holiday_date(s: Scalar) -> date:
    value = s.value
    if isinstance(value, datetime) or not isinstance(value, (date, str)):
        raise Invalid(f"expected a date written as 2026-12-24, got {shown(s.text)}")
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise Invalid(f"{shown(s.text)} is not a date: write it as 2026-12-24") from None
    if not 2000 <= value.year <= 2100:
        raise Invalid(f"{value.isoformat()} is a holiday outside any plausible year ({value.year}): "
                      "write a date between 2000 and 2100")
    return value


HOLIDAY_DATE = Kind("date YYYY-MM-DD", _holiday_date)


def _country(s: Scalar) -> str:
    text = _text(s).upper()
    known = holidays.list_supported_countries()
    if text not in known:
        hint = did_you_mean(text, sorted(known))
        raise Invalid(f"{shown(text)} is not a country known to the holidays package{hint}: use an ISO 3166 "
                      "code such as 'GB', 'US' or 'DE'")
    return text


COUNTRY = Kind("country code (ISO 3166)", _country)


def subdivision_spelling(country: str, subdivision: str) -> str | None:
    """`subdivision` as the holidays package spells it for `country`, or None if it has no such one."""
    try:
        holidays.country_holidays(country, subdiv=subdivision)
        return subdivision
    except (NotImplementedError, KeyError):
        known = holidays.list_supported_countries().get(country, [])
        return next((name for name in known if name.casefold() == subdivision.casefold()), None)


# --------------------------------------------------------------------------------------------
# The shape of the table.


@dataclass(frozen=True)
class Leaf:
    kind: Kind
    doc: str
    default: object = None  # written as in the config; None: absent
    required: bool = False
    many: Literal["one", "list", "one_or_list"] = "one"
    nullable: bool = False  # an explicit null means something (else null is "use the default")
    default_doc: str = ""  # shown in the docs when the default depends on other keys


@dataclass(frozen=True)
class Section:
    keys: dict[str, "Spec"]
    doc: str
    required: bool = False


@dataclass(frozen=True)
class Items:
    item: Section
    doc: str
    required: bool = False
    default: tuple[dict, ...] = ()  # items written as in the config
    min_items: int = 0
    default_doc: str = ""


@dataclass(frozen=True)
class Named:
    item: Section  # read partially: keys not written come from `same_keys_as`
    doc: str
    same_keys_as: str


Spec = Union[Leaf, Section, Items, Named]

_IMAP = ImapSettings(host="")
_SMTP = SmtpSettings(host="")
_REVIEW = ReviewSettings(reviewers=())
_FOLLOWUP = FollowupSettings()
_HOURS = WorkingHours()
_POLICY = Policy()


def _seconds(value: float) -> str:
    return f"{value / 60:g} minutes" if value % 60 == 0 else f"{value:g} seconds"


PERSON = Section({
    "id": Leaf(IDENT, "Short id used elsewhere in the file (owner, reviewers).", required=True),
    "name": Leaf(TEXT, "Full name, used when mail is signed or addressed to them.", required=True),
    "email": Leaf(EMAIL, "Their own address: review requests go here, their replies come from here.",
                  required=True),
}, "A member of staff.")

CLIENT = Section({
    "id": Leaf(IDENT, "Short id used in commands and the case file.", required=True),
    "name": Leaf(TEXT, "The client's name.", required=True),
    "contact": Leaf(TEXT, "The person we write to (used in the greeting of emails).", required=True),
    "addresses": Leaf(EMAIL, "Addresses that belong to this client.", default=[], many="list"),
    "domains": Leaf(DOMAIN, "Domains whose every address belongs to this client.", default=[],
                    many="list"),
    "owner": Leaf(IDENT, "Id of the person in `people` who owns the relationship.", required=True),
    "phone": Leaf(TEXT, "Number to call at follow-up (quote it: \"+44 20 7946 0000\")."),
    "timezone": Leaf(TIMEZONE, "The client's time zone for deadlines; default working_hours.timezone."),
    "policy": Leaf(IDENT, "Name of an entry in `policies`, or default: the top-level `policy` "
                   "(also when left out)."),
    "exempt": Leaf(BOOL, "Never evaluated or escalated (history is still kept).", default=False),
}, "A client: whose mail is theirs, who owns them, which policy applies.")

LADDER_STEP = Section({
    "after_ignored": Leaf(whole_number(1), "Fires once this many requests are ignored.", required=True),
    "action": Leaf(choice(*ACTIONS), "What happens: a nudge to the client, a word to the owner, "
                   "or a release draft for review.", required=True),
}, "One step of the escalation ladder.")


def _ladder_text(policy: Policy) -> tuple[dict, ...]:
    return tuple({"after_ignored": s.after_ignored, "action": s.action} for s in policy.ladder)


POLICY = Section({
    "expects_reply": Leaf(choice("all", "questions", "tagged"), "Which of our messages expect a reply: "
                          "all, those asking something, or those tagged with request_tag.",
                          default=_POLICY.expects_reply),
    "ignored_after": Leaf(duration(zero=False, zero_why=": every request would count as ignored the "
                                   "moment it is sent"),
                          "A request unanswered this long counts as ignored.",
                          default=str(_POLICY.ignored_after)),
    "unresponsive": Section({
        "ignored_messages": Leaf(whole_number(1, why=": with none needed every client would be "
                                              "unresponsive at once, so the policy could never be fair"),
                                 "This many ignored requests ...",
                                 default=_POLICY.unresponsive.ignored_messages),
        "within": Leaf(duration(zero=False), "... inside this window make the client unresponsive.",
                       default=str(_POLICY.unresponsive.within)),
        "or_silent_for": Leaf(duration(zero=False, zero_why=": write null to turn silence off"),
                              "Or: no reply to an open request for this long (null: off).",
                              default=str(_POLICY.unresponsive.or_silent_for), nullable=True),
    }, "When a client counts as unresponsive."),
    "ladder": Items(LADDER_STEP, "Escalation steps, in increasing after_ignored; each action at most once.",
                    default=_ladder_text(_POLICY),
                    default_doc="nudge at 1, notify_owner at 2, draft_release at 3"),
    "reply_answers": Leaf(choice("client", "thread"), "A client's reply answers every open request "
                          "of theirs (client) or only those in its thread (thread).",
                          default="client" if _POLICY.reply_answers_all else "thread"),
    "send_nudges": Leaf(BOOL, "Send nudges to clients; false: nudges are drafted for the owner only.",
                        default=_POLICY.send_nudges),
    "request_tag": Leaf(TEXT, "Subject tag that marks a request under expects_reply: tagged.",
                        default=_POLICY.request_tag),
}, "The responsiveness policy every client follows unless it names another.")


def _server(security_default: str, ports: str, timeouts: dict[str, Spec], extra: dict[str, Spec],
            username_doc: str, username_default_doc: str) -> dict[str, Spec]:
    return {
        "host": Leaf(HOST, "Server host name.", required=True),
        "port": Leaf(PORT, "Server port.", default_doc=ports),
        "security": Leaf(choice("tls", "starttls", "none"), "tls: encrypted from the start; starttls: "
                         "upgraded; none: plain text, allowed to a loopback host only.",
                         default=security_default),
        "username": Leaf(TEXT, username_doc, default_doc=username_default_doc),
        "password_file": Leaf(PATH, "File holding the password (or a systemd credential name)."),
        "password_env": Leaf(ENV_NAME, "Environment variable holding the password, instead of a file."),
        "ca_file": Leaf(PATH, "PEM file of a private CA to trust; default: the system's CAs."),
        **extra,
        "timeouts": Section(timeouts, "Network timeouts."),
    }


IMAP = Section(_server(
    _IMAP.security, "993 for tls, 143 for starttls and none",
    {"connect": Leaf(TIMEOUT, "Connecting and logging in.", default=_seconds(_IMAP.connect_timeout)),
     "read": Leaf(TIMEOUT, "Waiting for any one answer.", default=_seconds(_IMAP.read_timeout))},
    {"folders": Section({
        "inbox": Leaf(TEXT, "Folder where clients' mail arrives.", default=_IMAP.inbox),
        "sent": Leaf(TEXT, "Folder of our sent mail; auto: the one with the SPECIAL-USE \\Sent flag.",
                     default=_IMAP.sent),
     }, "Which folders to watch."),
     "lookback": Leaf(duration(zero=False, business=False), "How far back to read history at first start.",
                      default=f"{_IMAP.lookback_days} days"),
     "idle_renew": Leaf(duration(zero=False, business=False, at_most=timedelta(minutes=29),
                                 at_most_why=": servers may end an IDLE after 30 minutes (RFC 2177)"),
                        "Restart IDLE this often.", default=str(_IMAP.idle_renew))},
    "Login name.", "mailbox.address"), "The IMAP server we read mail from.", required=True)

SMTP = Section(_server(
    _SMTP.security, "465 for tls, 587 for starttls, 25 for none",
    {"connect": Leaf(TIMEOUT, "Connecting and greeting.", default=_seconds(_SMTP.connect_timeout)),
     "data": Leaf(TIMEOUT, "Waiting for the answer to the end of a message.",
                  default=_seconds(_SMTP.data_timeout))},
    {"max_per_hour": Leaf(whole_number(1), "At most this many messages an hour.",
                          default=_SMTP.max_per_hour),
     "max_attempts": Leaf(whole_number(1), "Give up on a message after this many failed attempts.",
                          default=_SMTP.max_attempts)},
    "Login name; leave it out when the server needs no login.", "no login"),
    "The SMTP server we send through.", required=True)

SCHEMA = Section({
    "company": Section({"name": Leaf(TEXT, "Company name, used in emails.", required=True)},
                       "Who we are.", required=True),
    "mode": Leaf(choice("live", "dry_run"), "live sends mail; dry_run writes it to dry_run.folder.",
                 default="live"),
    "dry_run": Section({"folder": Leaf(PATH, "Where dry_run writes outgoing mail as .eml files "
                                       "(required in dry_run mode).")}, "Dry-run output."),
    "mailbox": Section({
        "address": Leaf(EMAIL, "Our address, or a list: the first is the main one, the others aliases.",
                        required=True, many="one_or_list"),
        "imap": IMAP,
        "smtp": SMTP,
        "append_to_sent": Leaf(choice("auto", "true", "false"), "File a copy of what we send in the Sent "
                               "folder; auto: not for providers that do it themselves.", default="auto"),
    }, "The company mailbox parting watches and sends from.", required=True),
    "state": Section({"database": Leaf(PATH, "SQLite database file parting keeps its state in.",
                                       required=True)}, "Where state is kept.", required=True),
    "templates": Section({"dir": Leaf(PATH, "Folder of your own email templates; default: the "
                                      "templates shipped with parting.")}, "Email templates."),
    "people": Items(PERSON, "Staff: owners of clients and reviewers.", required=True, min_items=1),
    "clients": Items(CLIENT, "The clients parting watches.", default=()),
    "working_hours": Section({
        "timezone": Leaf(TIMEZONE, "Time zone business time is counted in.", default=_HOURS.timezone),
        "days": Leaf(choice(*WEEKDAYS), "Working days.", many="list",
                     default=[WEEKDAYS[d] for d in _HOURS.days]),
        "start": Leaf(TIME_OF_DAY, "Start of the working day.", default=_HOURS.start.strftime("%H:%M")),
        "end": Leaf(TIME_OF_DAY, "End of the working day.", default=_HOURS.end.strftime("%H:%M")),
        "holidays": Section({
            "country": Leaf(COUNTRY, "Public holidays of this country are days off."),
            "subdivision": Leaf(TEXT, "Region of the country, e.g. ENG for England."),
            "extra": Leaf(HOLIDAY_DATE, "Company days off on top of public holidays.", default=[],
                          many="list"),
        }, "Days off."),
    }, "When business time runs: business durations count only these hours."),
    "policy": POLICY,
    "policies": Named(POLICY, "Named policies for clients with `policy: <name>`: the top-level "
                      "policy with the keys written here replaced (unresponsive merged key by key, "
                      "ladder replaced whole).", same_keys_as="policy"),
    "review": Section({
        "reviewers": Leaf(IDENT, "Ids of people who may check release emails, in the order asked.",
                          required=True, many="list"),
        "approvals_required": Leaf(whole_number(1), "Endorsements needed besides the owner's.",
                                   default=_REVIEW.approvals_required),
        "token_ttl": Leaf(duration(zero=False), "How long a review request can be answered.",
                          default=str(_REVIEW.token_ttl)),
        "authserv_id": Leaf(TEXT, "Whose Authentication-Results header to trust (your receiving "
                            "server); required when require_authentication is true."),
        "require_authentication": Leaf(BOOL, "Accept review replies only with DMARC or aligned DKIM/SPF "
                                       "pass; false only for test setups.",
                                       default=_REVIEW.require_authentication),
        "send_delay": Leaf(DURATION, "Wait this long after the last approval before sending (0: at once).",
                           default=str(_REVIEW.send_delay)),
        "token_key_file": Leaf(PATH, "File with the secret key (32 bytes or more) review tokens are "
                               "signed with."),
        "token_key_env": Leaf(ENV_NAME, "Environment variable holding that key, instead of a file."),
        "remind_after": Leaf(duration(zero=False), "Remind a reviewer who has not answered after this long.",
                             default=str(_REVIEW.remind_after)),
    }, "Two-person review of release emails.", required=True),
    "followup": Section({
        "phone_call_after": Leaf(duration(zero=False), "Phone a client who has not answered the release "
                                 "email after this long.", default=str(_FOLLOWUP.phone_call_after)),
        "retrospective_after": Leaf(DURATION, "Offer the case file for a retrospective after this long.",
                                    default=str(_FOLLOWUP.retrospective_after)),
    }, "After the release email."),
}, "The whole file.", required=True)

# Keys written inline that would hold a secret: refused wherever they appear.
SECRET_NAMES = frozenset({"password", "passwd", "secret", "token_key", "key"})
SECRET_SUFFIXES = ("_password", "_passwd", "_secret")
SECRET_MESSAGE = ("secrets are never written in the config: use password_file (a file, or a systemd "
                  "credential name) or password_env")


def is_inline_secret(key: str) -> bool:
    return key.lower() in SECRET_NAMES or key.lower().endswith(SECRET_SUFFIXES)


# --------------------------------------------------------------------------------------------
# Reading the table for docs and tests.


def iter_specs(section: Section = SCHEMA, prefix: str = "") -> Iterator[tuple[str, Spec]]:
    """Every accepted key as (canonical path, spec): list items as `people[].id`, named policies as
    `policies.<name>` (their keys are those of `same_keys_as`)."""
    for key, spec in section.keys.items():
        path = f"{prefix}{key}"
        yield path, spec
        if isinstance(spec, Section):
            yield from iter_specs(spec, path + ".")
        elif isinstance(spec, Items):
            yield from iter_specs(spec.item, path + "[].")
        elif isinstance(spec, Named):
            yield f"{path}.<name>", spec.item


def accepted_key_paths() -> list[str]:
    return [path for path, _ in iter_specs()]


def canonical_key_path(concrete: str) -> str:
    """`clients[3].owner` -> `clients[].owner`; `policies.patient.ladder[0].action` -> `policy.ladder[].action`."""
    parts = re.sub(r"\[\d+\]", "[]", concrete).split(".")
    section: Section = SCHEMA
    out: list[str] = []
    for index, part in enumerate(parts):
        key = part.removesuffix("[]")
        spec = section.keys.get(key)
        out.append(part)
        if isinstance(spec, Named):
            if index + 1 < len(parts) - 1:
                return canonical_key_path(".".join([spec.same_keys_as, *parts[index + 2:]]))
            return ".".join(out + ["<name>"] if index + 1 < len(parts) else out)
        if isinstance(spec, Section):
            section = spec
        elif isinstance(spec, Items):
            section = spec.item
        else:
            break
    return ".".join(out)


def _default_shown(spec: Spec) -> str:
    if isinstance(spec, (Section, Named)):
        return "required" if getattr(spec, "required", False) else ""
    if spec.required:
        return "required"
    if spec.default_doc:
        return spec.default_doc
    value = spec.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]" if value else "[]"
    return str(value)


def _type_shown(spec: Spec) -> str:
    if isinstance(spec, Section):
        return "mapping"
    if isinstance(spec, Items):
        return "list of mappings"
    if isinstance(spec, Named):
        return "mapping of name to policy"
    return {"one": spec.kind.name, "list": f"list of {spec.kind.name}",
            "one_or_list": f"{spec.kind.name}, or a list"}[spec.many] + (" or null" if spec.nullable else "")


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(key path, type, default, meaning) for every accepted key, in table order."""
    rows = []
    for path, spec in iter_specs():
        if path.endswith(".<name>"):
            named = SCHEMA.keys[path.removesuffix(".<name>")]
            rows.append((path, "mapping", "", f"One named policy: any keys of `{named.same_keys_as}`, "
                         "each replacing the top-level value; the others are inherited."))
        else:
            rows.append((path, _type_shown(spec), _default_shown(spec), spec.doc))
    return rows


def reference_markdown() -> str:
    lines: list[str] = []
    current = None
    for path, kind, default, doc in reference_rows():
        top = path.split(".")[0].split("[")[0]
        if top != current:
            current = top
            lines += ["", f"### `{top}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        cells = [f"`{path}`", kind, default, doc]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines).lstrip("\n") + "\n"


# --------------------------------------------------------------------------------------------
# Rules across keys, run on the converted tree after every key was read on its own.

BAD = object()  # a value that failed its own check; its problem is already reported
Report = Callable[..., None]  # report(key_path, message, at=key_path_for_the_line)


def ok(*values: object) -> bool:
    return all(value is not BAD for value in values)


def cross_check(tree: dict, written: set[str], report: Report) -> None:
    """Rules across keys. `written`: key paths present in the file; a missing section was already
    reported, so rules about its defaults stay quiet."""
    if tree["mode"] == "dry_run" and tree["dry_run"]["folder"] is None:
        report("dry_run.folder", "required when mode is dry_run: the folder outgoing mail is written to",
               at="mode")
    our_addresses = _check_mailbox(tree["mailbox"], written, report)
    people = _check_people(tree["people"], report)
    _check_working_hours(tree["working_hours"], report)
    _check_policy(tree["policy"], "policy", None, report)
    for name, partial in tree["policies"].items():
        _check_policy(merge_policy(tree["policy"], partial), f"policies.{name}", partial, report)
    staff_emails = [p["email"] for p in tree["people"] if p is not BAD and ok(p["email"])]
    _check_clients(tree["clients"], people, set(tree["policies"]), {*our_addresses, *staff_emails}, report)
    if "review" in written:
        _check_review(tree["review"], tree["clients"], people, report)


def merge_policy(base: dict, partial: dict) -> dict:
    """A named policy: the top-level one with the written keys replaced (`unresponsive` key by key)."""
    merged = {**base, **{key: value for key, value in partial.items() if key != "unresponsive"}}
    merged["unresponsive"] = {**base["unresponsive"], **partial.get("unresponsive", {})}
    return merged


def _listed(values: object) -> list:
    return values if isinstance(values, list) else []


def _check_mailbox(mailbox: dict, written: set[str], report: Report) -> list[str]:
    addresses = [a for a in _listed(mailbox["address"]) if a is not BAD]
    for index, address in enumerate(_listed(mailbox["address"])):
        if address is not BAD and address in _listed(mailbox["address"])[:index]:
            report(f"mailbox.address[{index}]", f"{address} is listed twice")
    for protocol in ("imap", "smtp"):
        server, path = mailbox[protocol], f"mailbox.{protocol}"
        if path not in written or not ok(server["host"]):
            continue
        if server["security"] == "none" and not is_loopback(server["host"]):
            report(f"{path}.security", "security none sends passwords and mail unencrypted, so it is allowed "
                   f"only to a loopback host (127.0.0.1, ::1, localhost), not {server['host']!r}: "
                   "use tls or starttls")
        has_file, has_env = server["password_file"] is not None, server["password_env"] is not None
        if has_file and has_env:
            report(f"{path}.password_env", "give password_file or password_env, not both")
        if protocol == "imap" and not (has_file or has_env):
            report(path, "needs password_file or password_env: the password to log in with")
        if protocol == "smtp" and server["username"] is None and (has_file or has_env):
            report(f"{path}.{'password_file' if has_file else 'password_env'}", "a password but no username: "
                   "add mailbox.smtp.username, or remove the password for a server without login")
        if protocol == "smtp" and server["username"] not in (None, BAD) and not (has_file or has_env):
            report(f"{path}.username", "a username but no password: add password_file or password_env, "
                   "or remove username for a server without login")
    return addresses


def _check_people(people: list, report: Report) -> set[str] | None:
    """The person ids, or None when some id is unreadable (so references cannot be judged)."""
    ids: dict[str, int] = {}
    emails: dict[str, int] = {}
    complete = True
    for index, person in enumerate(people):
        if person is BAD or not ok(person["id"]):
            complete = False
            continue
        if person["id"] in ids:
            report(f"people[{index}].id", f"{person['id']!r} is already the id of people[{ids[person['id']]}]")
        ids.setdefault(person["id"], index)
        if ok(person["email"]) and person["email"] in emails:
            report(f"people[{index}].email", f"{person['email']} is already the email of "
                   f"people[{emails[person['email']]}]")
        emails.setdefault(person["email"], index)
    return set(ids) if complete else None


def _check_working_hours(hours: dict, report: Report) -> None:
    if ok(hours["start"], hours["end"]) and hours["start"] >= hours["end"]:
        report("working_hours.end", f"the working day must end after it starts ({hours['start']})")
    days = _listed(hours["days"])
    if ok(hours["days"]) and not days:
        report("working_hours.days", "needs at least one working day")
    for index, day in enumerate(days):
        if day is not BAD and day in days[:index]:
            report(f"working_hours.days[{index}]", f"{day} is listed twice")
    calendar = hours["holidays"]
    country, subdivision = calendar["country"], calendar["subdivision"]
    if subdivision in (None, BAD):
        return
    if country is None:
        report("working_hours.holidays.subdivision", "a subdivision needs working_hours.holidays.country")
    elif country is not BAD:
        spelling = subdivision_spelling(country, subdivision)
        if spelling is None:
            known = ", ".join(holidays.list_supported_countries().get(country, [])) or "none"
            report("working_hours.holidays.subdivision",
                   f"{country} has no subdivision {shown(subdivision)}; known: {known}")
        calendar["subdivision"] = spelling


def _check_policy(policy: dict, path: str, written: dict | None, report: Report) -> None:
    """Sanity of one policy; for a named policy only rules touching keys it writes itself."""
    if written is None or "ladder" in written:
        previous, actions = 0, {}
        for index, step in enumerate(_listed(policy["ladder"])):
            if step is BAD:
                continue
            after, action = step["after_ignored"], step["action"]
            if ok(after) and after <= previous:
                report(f"{path}.ladder[{index}].after_ignored", f"must be greater than the step before it "
                       f"({previous}): the ladder is climbed in order, one step at a time")
            if ok(after):
                previous = max(previous, after)
            if ok(action) and action in actions:
                report(f"{path}.ladder[{index}].action", f"{action} is already step {actions[action]}: "
                       "each action appears at most once")
            actions.setdefault(action, index)
    window_written = written is None or "within" in written.get("unresponsive", {})
    ignored_after, within = policy["ignored_after"], policy["unresponsive"]["within"]
    if (window_written or "ignored_after" in written) and ok(ignored_after, within) \
            and within.as_timedelta() < ignored_after.as_timedelta():
        report(f"{path}.unresponsive.within" if window_written else f"{path}.ignored_after",
               f"this policy can never fire: a request counts as ignored only after {ignored_after}, so "
               f"none can be ignored inside a window of {within}; make unresponsive.within longer than "
               "ignored_after")


def _check_clients(clients: list, people: set[str] | None, policies: set[str], ours: set[str],
                   report: Report) -> None:
    our_domains = {address.rpartition("@")[2] for address in ours}
    ids: dict[str, int] = {}
    seen: dict[str, dict[str, str]] = {"addresses": {}, "domains": {}}
    domain_owner: dict[str, str] = {}
    for client in clients:
        for domain in _listed(client["domains"]) if client is not BAD else []:
            if domain is not BAD and domain not in our_domains:
                domain_owner.setdefault(domain, client["id"])
    for index, client in enumerate(clients):
        if client is BAD:
            continue
        path, client_id = f"clients[{index}]", client["id"]
        if ok(client_id) and client_id in ids:
            report(f"{path}.id", f"{client_id!r} is already the id of clients[{ids[client_id]}]")
        ids.setdefault(client_id, index)
        if ok(client["addresses"], client["domains"]) and not client["addresses"] and not client["domains"]:
            report(path, f"client {client_id} needs at least one address or domain, or no mail can be "
                   "recognised as theirs")
        owner = client["owner"]
        if people is not None and ok(owner) and owner not in people:
            report(f"{path}.owner", f"{owner!r} is not a person in people{did_you_mean(owner, sorted(people))}")
        policy = client["policy"]
        if policy not in (None, BAD, "default") and policy not in policies:
            hint = did_you_mean(policy, sorted(policies)) or ("" if policies else " (there are no policies)")
            report(f"{path}.policy", f"{policy!r} is not a policy in policies{hint}")
        for kind, our_own in (("domains", our_domains), ("addresses", ours)):
            for position, value in enumerate(_listed(client[kind])):
                if value is BAD:
                    continue
                value_path = f"{path}.{kind}[{position}]"
                earlier = seen[kind].setdefault(value, client_id)
                domain_client = domain_owner.get(value.rpartition("@")[2], client_id)
                if value in our_own:
                    report(value_path, f"{value} is ours (the mailbox or a member of staff), not the client's")
                elif earlier != client_id:
                    report(value_path, f"{value} already belongs to client {earlier}: it can belong to one "
                           "client only")
                elif kind == "addresses" and domain_client != client_id:
                    report(value_path, f"{value} is in the domain of client {domain_client}: mail from it "
                           "would belong to two clients")


def _check_review(review: dict, clients: list, people: set[str] | None, report: Report) -> None:
    reviewers = [r for r in _listed(review["reviewers"]) if r is not BAD]
    seen: set[str] = set()
    for index, reviewer in enumerate(_listed(review["reviewers"])):
        if reviewer is BAD:
            continue
        if people is not None and reviewer not in people:
            report(f"review.reviewers[{index}]", f"{reviewer!r} is not a person in people"
                   f"{did_you_mean(reviewer, sorted(people))}")
        elif reviewer in seen:
            report(f"review.reviewers[{index}]", f"{reviewer} is listed twice")
        seen.add(reviewer)
    if review["require_authentication"] is True and review["authserv_id"] is None:
        report("review.authserv_id", "required while require_authentication is true: the authserv-id that "
               "your receiving server writes in Authentication-Results, e.g. mx.example.com")
    has_file, has_env = review["token_key_file"] is not None, review["token_key_env"] is not None
    if has_file == has_env:
        report("review.token_key_env" if has_env else "review", "give exactly one of token_key_file and "
               "token_key_env: the secret key review tokens are signed with")
    needed = review["approvals_required"]
    if not ok(needed, review["reviewers"]):
        return
    unique = list(dict.fromkeys(reviewers))
    for index, client in enumerate(clients):
        if client is BAD or not ok(client["owner"], client["id"]) or client["exempt"] is True:
            continue
        owner, client_id = client["owner"], client["id"]
        others = [r for r in unique if r != owner and (people is None or r in people)]
        if len(others) >= needed:
            continue
        if not others and owner in unique:
            message = f"{owner} owns {client_id} and is its only reviewer: add another reviewer to review.reviewers"
        elif not others:
            message = f"no reviewer other than its owner {owner}: add a person to review.reviewers"
        else:
            message = (f"{client_id} needs {needed} reviewers besides its owner {owner}, but review.reviewers "
                       f"has {len(others)} ({', '.join(others)}): add reviewers or lower "
                       "review.approvals_required")
        report(f"clients[{index}].owner", message)


if __name__ == "__main__":  # regenerates the reference part of docs/configuration.md
    print(reference_markdown(), end="")
