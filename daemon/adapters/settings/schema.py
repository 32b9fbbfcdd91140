"""The configuration schema: one table from which defaults, validation and docs all come.

Rules of this module:
- Every key the loader accepts is declared here once, with its kind, default and doc line.
  Unknown-key detection, defaults, docs/configuration.md and the example-config test all read
  this table; nothing else lists keys.
- Defaults are taken from daemon/core/model.py's dataclasses where they exist, so the model
  stays the single source of default values.
- No YAML here: the kinds (settings_kinds.py) receive plain `Scalar` values; adapters/settings.py
  reads the file, and settings_rules.py checks rules across keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from daemon.adapters.settings.kinds import (
    BOOL,
    COUNTRY,
    DOMAIN,
    DURATION,
    EMAIL,
    ENV_NAME,
    HOLIDAY_DATE,
    HOST,
    IDENT,
    PATH,
    PORT,
    TEXT,
    TIME_OF_DAY,
    TIMEOUT,
    TIMEZONE,
    Kind,
    choice,
    duration,
    whole_number,
)
from daemon.core.model import (
    ACTIONS,
    PROVIDERS,
    WEEKDAYS,
    FollowupSettings,
    ImapSettings,
    Policy,
    ReviewSettings,
    SmtpSettings,
    WorkingHours,
)

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
    keys: dict[str, Spec]
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


Spec = Leaf | Section | Items | Named

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
        "host": Leaf(HOST, "Server host name (required when mailbox.provider is generic).",
                     default_doc="from mailbox.provider; required for generic"),
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
    "Login name.", "mailbox.address"), "The IMAP server we read mail from (required when mailbox.provider "
    "is generic).")

SMTP = Section(_server(
    _SMTP.security, "465 for tls, 587 for starttls, 25 for none",
    {"connect": Leaf(TIMEOUT, "Connecting and greeting.", default=_seconds(_SMTP.connect_timeout)),
     "data": Leaf(TIMEOUT, "Waiting for the answer to the end of a message.",
                  default=_seconds(_SMTP.data_timeout))},
    {"max_per_hour": Leaf(whole_number(1), "At most this many messages an hour.",
                          default=_SMTP.max_per_hour),
     "max_attempts": Leaf(whole_number(1), "Give up on a message after this many failed attempts.",
                          default=_SMTP.max_attempts)},
    "Login name; leave it out when the server needs no login (with auth oauth2: mailbox.address).",
    "no login"), "The SMTP server we send through (required when mailbox.provider is generic).")

OAUTH = Section({
    "client_id": Leaf(TEXT, "The application (client) id of your app registration.",
                      default_doc="required with auth oauth2"),
    "tenant": Leaf(TEXT, "Microsoft 365: your directory (tenant) id or domain; {tenant} in the URLs "
                   "becomes it.", default_doc="organizations (microsoft365)"),
    "client_secret_file": Leaf(PATH, "File holding the client secret (or a systemd credential name); "
                               "needed by client_credentials and by Google's installed-app clients."),
    "client_secret_env": Leaf(ENV_NAME, "Environment variable holding the client secret, instead of a file."),
    "client_certificate_file": Leaf(PATH, "PEM file of the app's certificate (or a systemd credential name), "
                                    "instead of a client secret: token requests then carry a JWT signed "
                                    "with its private key (RFC 7523 private_key_jwt; Microsoft's "
                                    "certificate credential). Give client_private_key_file with it."),
    "client_certificate_env": Leaf(ENV_NAME, "Environment variable holding that PEM certificate, instead "
                                   "of a file."),
    "client_private_key_file": Leaf(PATH, "PEM file of the certificate's private key, unencrypted RSA (or a "
                                    "systemd credential name); a secret: chmod 600 it."),
    "client_private_key_env": Leaf(ENV_NAME, "Environment variable holding that PEM private key, instead "
                                   "of a file."),
    "flow": Leaf(choice("device", "browser", "client_credentials"), "How `parting login` enrols: device "
                 "code (RFC 8628), browser sign-in with PKCE, or the app's own client credentials "
                 "(Microsoft 365, no person's token).", default_doc="device; browser for google"),
    "authorize_url": Leaf(TEXT, "Authorization endpoint (browser flow).", default_doc="from mailbox.provider"),
    "token_url": Leaf(TEXT, "Token endpoint.", default_doc="from mailbox.provider; required for generic"),
    "device_url": Leaf(TEXT, "Device authorization endpoint (device flow).", default_doc="from mailbox.provider"),
    "revoke_url": Leaf(TEXT, "Token revocation endpoint (RFC 7009), used by `parting login --revoke`.",
                       default_doc="from mailbox.provider"),
    "scopes": Leaf(TEXT, "Scopes asked for.", many="list", default_doc="from mailbox.provider"),
    "token_file": Leaf(PATH, "Where the refresh token is kept (mode 0600), relative to the state "
                       "database's folder.", default="oauth-token.json"),
}, "OAuth2 sign-in (mailbox.auth: oauth2); `parting login` writes the token file.")

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
        "provider": Leaf(choice(*PROVIDERS), "Who hosts the mailbox: fills hosts, ports, security, the Sent "
                         "folder, append_to_sent and the OAuth endpoints and scopes; every value it "
                         "fills can still be written here.", default="generic"),
        "auth": Leaf(choice("password", "oauth2"), "How parting signs in to IMAP and SMTP: password, or "
                     "oauth2 (run `parting login` once; the token lives in the state folder).",
                     default="password"),
        "oauth": OAUTH,
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
                                 "email after this long (in business time unless business_time is false: "
                                 "24 hours is the next working day at the same time).",
                                 default=str(_FOLLOWUP.phone_call_after)),
        "business_time": Leaf(BOOL, "Count phone_call_after in working days and hours (true) or on the wall "
                              "clock (false).", default=_FOLLOWUP.business_time),
        "phone_reminders": Leaf(whole_number(1, 30), "Remind the owner of the call this many times in all, "
                                "one each working day, until they reply DONE.", default=_FOLLOWUP.phone_reminders),
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
            same = named.same_keys_as if isinstance(named, Named) else ""
            rows.append((path, "mapping", "", f"One named policy: any keys of `{same}`, "
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


if __name__ == "__main__":  # regenerates the reference part of docs/configuration.md
    print(reference_markdown(), end="")
