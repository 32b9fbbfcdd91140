"""Building outgoing messages safely: header checks, deterministic Message-IDs, threading.

Rules of this module:
- Pure: no IO, no clock (the Date is a parameter), no network; returns bytes ready for SMTP.
- Headers are set only through `email.message.EmailMessage` with `email.policy.SMTP`, never by
  pasting text; every value that reaches a header (display names included) passes
  `check_header_value` first, which also decodes RFC 2047 encoded words so an encoded newline
  (CVE-2024-6923) is refused whatever the Python version.
- Either a whole message comes back or an exception: nothing partial is ever returned.
- Identifiers (Message-ID, In-Reply-To, References) are never RFC 2047 encoded words: they are
  folded between ids only, and an id too long for a line (over MAX_ID characters) is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime

# The checks a configuration also needs live apart, so that loading one imports no email package.
from daemon.core.headervalues import HeaderInjection, check_header_value

__all__ = [
    "HeaderInjection",
    "InvalidAddress",
    "Recipient",
    "build_message",
    "check_address",
    "check_header_name",
    "check_header_value",
    "make_message_id",
    "normalize_message_id",
    "thread_headers",
]

# An addressee is a bare addr-spec or a (display name, addr-spec) pair.
Recipient = str | tuple[str, str]

# References keeps the thread root and the most recent ids (RFC 5322 3.6.4 advises trimming).
MAX_REFERENCES = 20
# RFC 5322 2.1.1: a line must not exceed 998 characters without its CRLF.
MAX_LINE = 998

# The longest message id kept when threading: "References: " plus the id must fit in one line.
MAX_ID = MAX_LINE - len("In-Reply-To: ") - 2

# Field names: printable US-ASCII except colon (RFC 5322 3.6.8).
_HEADER_NAME = re.compile(r"^[\x21-\x39\x3b-\x7e]+$")
_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
# msg-id without its angle brackets: printable ASCII, no "<", ">" or space, an "@" inside.
_MSG_ID_CORE = re.compile(r"^[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+$")

# Headers build_message sets itself; extra_headers must not duplicate or override them.
_OWN_HEADERS = frozenset(
    h.lower() for h in (
        "From", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To",
        "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
        "X-Parting-Kind", "Auto-Submitted", "X-Auto-Response-Suppress", "Sender", "Return-Path",
    )
)


class _IdentifierHeader(UnstructuredHeader):
    """In-Reply-To and References: folded between ids, never into encoded words (which no mail
    client threads by), however long one id is."""

    def fold(self, *, policy: email_policy.Policy) -> str:
        name = str(getattr(self, "name"))  # noqa: B009 - set by BaseHeader.__new__, unknown to typeshed
        lines: list[str] = [f"{name}:"]
        for ident in str(self).split():
            if len(lines[-1]) + 1 + len(ident) > 78 and lines[-1] != f"{name}:":
                lines.append("")
            lines[-1] += f" {ident}"
        return str(policy.linesep).join(lines) + str(policy.linesep)


_REGISTRY = HeaderRegistry()
for _name in ("in-reply-to", "references"):
    _REGISTRY.map_to_type(_name, _IdentifierHeader)  # type: ignore[arg-type]
# The policy every outgoing message is built (and re-serialised) with.
SMTP_POLICY = email_policy.SMTP.clone(header_factory=_REGISTRY)


class InvalidAddress(ValueError):
    """An email address that is not a plain ASCII addr-spec (local@domain)."""


def check_header_name(name: str) -> str:
    """Return `name` if it is a valid header field name (printable ASCII, no colon or space)."""
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise HeaderInjection(f"header name {name!r} is not a valid field name")
    return name


def check_address(address: str, *, role: str = "address") -> str:
    """Return `address` if it is a plain ASCII addr-spec: one @, no spaces, controls or brackets."""
    if not isinstance(address, str) or not address:
        raise InvalidAddress(f"{role}: an email address is required, got {address!r}")
    if not address.isascii():
        raise InvalidAddress(f"{role} {address!r}: only ASCII addresses are supported")
    if address.count("@") != 1 or not _ADDR_SPEC.match(address):
        raise InvalidAddress(f"{role} {address!r} is not an address of the form name@domain")
    return address


def normalize_message_id(value: str) -> str:
    """`<id@host>` from `id@host` or `<id@host>`; refuses anything that is not one msg-id."""
    check_header_value("Message-ID", value)
    core = value.strip()
    if core.startswith("<") and core.endswith(">"):
        core = core[1:-1]
    if not _MSG_ID_CORE.match(core):
        raise HeaderInjection(f"{value!r} is not a message id of the form <left@right>")
    return f"<{core}>"


def make_message_id(kind: str, key: str, domain: str) -> str:
    """The deterministic Message-ID of one decision: `<parting.{kind}.{sha256(key)[:24]}@{domain}>`.

    The same (kind, key, domain) always gives the same id, so a retried or recovered send can
    be recognised in the Sent folder.
    """
    if not _KIND.match(kind):
        raise ValueError(f"message kind {kind!r}: use lower-case letters, digits, '-' or '_'")
    check_address(f"x@{domain}", role="Message-ID domain")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return f"<parting.{kind}.{digest}@{domain.lower()}>"


def _address(recipient: Recipient, role: str) -> Address:
    name, addr = ("", recipient) if isinstance(recipient, str) else recipient
    check_header_value(role, name)
    check_header_value(role, addr)
    check_address(addr, role=role)
    local, domain = addr.split("@")
    return Address(display_name=name, username=local, domain=domain)


def _addresses(recipients: Sequence[Recipient], role: str) -> list[Address]:
    if isinstance(recipients, str):
        raise TypeError(f"{role}: expected a list of addresses, got a single string")
    return [_address(r, role) for r in recipients]


def _body_text(body: str) -> tuple[str, str]:
    """The body with LF line ends, and the transfer encoding that keeps every line short."""
    text = body.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        raise ValueError("the message body contains a NUL character")
    if not text.endswith("\n"):
        text += "\n"
    fits_7bit = text.isascii() and all(len(line) <= MAX_LINE for line in text.split("\n"))
    return text, "7bit" if fits_7bit else "quoted-printable"


def build_message(
    *,
    from_addr: str,
    from_name: str,
    to: Sequence[Recipient],
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
    auto_submitted: bool,
    reply_to: Sequence[Recipient] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    cc: Sequence[Recipient] = (),
    kind: str | None = None,
    extra_headers: Mapping[str, str] | None = None,
) -> bytes:
    """One text/plain UTF-8 message, serialised with CRLF line ends, ready for SMTP DATA.

    `auto_submitted` adds `Auto-Submitted: auto-generated` (and asks Exchange not to answer with
    out-of-office replies): set it for reviews and notices, not for the release email or a nudge,
    which are personal mail the owner adopted. Raises HeaderInjection, InvalidAddress or
    ValueError, naming the field, before anything is built.
    """
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("the Date of a message must be timezone-aware")
    sender = _address((from_name, from_addr), "From")
    recipients = _addresses(to, "To")
    copies = _addresses(cc, "Cc")
    answers_to = _addresses(reply_to, "Reply-To")
    if not recipients:
        raise InvalidAddress("To: a message needs at least one recipient")
    check_header_value("Subject", subject)
    own_id = normalize_message_id(message_id)
    parent = normalize_message_id(in_reply_to) if in_reply_to else None
    if isinstance(references, str):
        raise TypeError("References: expected a list of message ids, got a single string")
    chain = [ref for ref in (normalize_message_id(ref) for ref in references) if len(ref) <= MAX_ID]
    if parent is not None and len(parent) > MAX_ID:
        parent = None  # too long for any line: threading without it beats an encoded word
    if kind is not None and not _KIND.match(kind):
        raise HeaderInjection(f"header X-Parting-Kind: {kind!r} is not a plain lower-case word")
    extras = []
    for name, value in (extra_headers or {}).items():
        check_header_name(name)
        if name.lower() in _OWN_HEADERS:
            raise HeaderInjection(f"header {name} is set by build_message, not by extra_headers")
        extras.append((name, check_header_value(name, value)))
    text, transfer_encoding = _body_text(body)

    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = sender
    message["To"] = recipients
    if copies:
        message["Cc"] = copies
    if answers_to:
        message["Reply-To"] = answers_to
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = own_id
    if parent:
        message["In-Reply-To"] = parent
    if chain:
        message["References"] = " ".join(chain)
    if kind:
        message["X-Parting-Kind"] = kind
    if auto_submitted:
        message["Auto-Submitted"] = "auto-generated"
        message["X-Auto-Response-Suppress"] = "All"
    for name, value in extras:
        message[name] = value
    message.set_content(text, charset="utf-8", cte=transfer_encoding)
    raw = message.as_bytes()
    if any(len(line) > MAX_LINE for line in raw.split(b"\r\n")):
        # policy.SMTP folds headers and the body encoding keeps lines short; this is a last guard.
        raise ValueError("the serialised message has a line over 998 characters")
    return raw


def thread_headers(
    last_messages: Sequence[tuple[str, Sequence[str]]],
) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) for a reply under the newest of `last_messages`.

    `last_messages` holds (message_id, its references), oldest first; ids with or without angle
    brackets. References becomes the parent's references plus the parent, without repeats,
    trimmed to MAX_REFERENCES ids while keeping the first (the thread root). No messages, no
    threading: (None, ()).
    """
    if not last_messages:
        return None, ()
    parent_id, parent_refs = last_messages[-1]
    parent = _message_id_or_none(parent_id)
    chain: list[str] = []
    # Ids come from other people's mail: a malformed one is left out, never fatal.
    for written in [*parent_refs, parent_id]:
        ref = _message_id_or_none(written)
        if ref and ref not in chain:
            chain.append(ref)
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1):]]
    return parent, tuple(chain)


def _message_id_or_none(value: str) -> str | None:
    try:
        ident = normalize_message_id(value)
    except (HeaderInjection, TypeError):
        return None
    return ident if len(ident) <= MAX_ID else None
