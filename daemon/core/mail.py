"""Reading one message into plain values: header fields, first text, auto-reply and bounce signs.

Rules of this module:
- Pure: bytes in, values out; no IO, no clock. Bodies and text helpers live in core/mailbody.py.
- Never crashes on malformed mail. `MalformedMessage` is the only exception, raised only when the
  message as a whole is unusable (no header fields, header section over the size limits).
- Work is bounded before the email package sees anything. Its structured header parser
  (email.policy.default) is quadratic on hostile values, so it gets only short values within a
  per-message budget; everything else takes a conservative path over the raw value.
- Text output never carries control characters or undecodable bytes.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from daemon.core.evidence import EVIDENCE_HEADER_FIELDS
from daemon.core.headers import split_header_block
from daemon.core.mailbody import (
    QUESTION_PHRASES,
    as_unicode,
    asks_something,
    delivery_status_blocks,
    first_text,
    fold,
    one_line,
    parse_body,
    phrase_regex,
)
from daemon.core.model import ParsedMessage
from daemon.core.quicktext import quick_first_text

__all__ = [
    "AUTO_REPLY_SUBJECTS", "DELIVERY_FAILURE_SUBJECTS", "HEADER_FIELDS", "QUESTION_PHRASES", "MalformedMessage",
    "asks_something", "bounce_recipients", "detect_auto_reply", "is_hard_bounce", "message_text", "parse_message",
    "request_header", "SINGLE_FIELDS",
]

MAX_HEADER_SECTION = 256 * 1024
MAX_HEADER_LINE = 64 * 1024
MAX_STRUCTURED_VALUE = 1024  # longer values skip email.policy.default (quadratic parser)
STRUCTURED_BUDGET = 4 * 1024  # characters per message given to email.policy.default
# Address field values read, remembered: a mailbox repeats its correspondents, and reading one
# value (regular expressions, often the structured parser) was a fifth of parsing a header.
ADDRESS_MEMO = 4096

# What the IMAP adapter fetches (BODY.PEEK[HEADER.FIELDS (...)]) for a headers-only parse.
HEADER_FIELDS: tuple[str, ...] = (
    "Message-ID", "From", "Sender", "To", "Cc", "Reply-To", "Subject", "Date",
    "In-Reply-To", "References", "Thread-Index", "Thread-Topic",
    "Auto-Submitted", "X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress", "Precedence",
    "List-Id", "List-Unsubscribe", "Return-Path", "Content-Type", "X-Failed-Recipients",
    "Authentication-Results", "X-Parting-Kind", "X-Parting-Request",
    *EVIDENCE_HEADER_FIELDS,
)

# RFC 5322 section 3.6 allows each of these at most once. A DKIM signature covers only the
# bottom copy of a repeated field, so a copy stacked above is how a genuine mail is replayed.
SINGLE_FIELDS: tuple[str, ...] = (
    "From", "Sender", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
)
# (name, its look-up key): every message reads each of these, so the keys are lowered once.
_SINGLE_KEYS = tuple((name, name.lower()) for name in SINGLE_FIELDS)
_EVIDENCE_KEYS = tuple((name, name.lower()) for name in EVIDENCE_HEADER_FIELDS)


class MalformedMessage(ValueError):
    """The message as a whole cannot be read; `reason` says why in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------------
# Header fields, read tolerantly.

_DEFAULT = email_policy.default
_MSG_ID_TOKEN = re.compile(r"<\s*([^<>\s]+)\s*>")
_ADDR_SPEC = re.compile(r"[^\s@<>()\[\]\\,;:\"]+@[^\s@<>()\[\]\\,;:\"]+")


def _unfold(value: str) -> str:
    return value.replace("\r", "").replace("\n", "")


class _Fields:
    """One message's header fields (unfolded, in order), looked up case-insensitively."""

    def __init__(self, items: Iterable[tuple[str, str]]) -> None:
        self.by_name: dict[str, list[str]] = {}
        for name, value in items:
            self.by_name.setdefault(name.strip().lower(), []).append(_unfold(as_unicode(str(value))))
        self._budget = STRUCTURED_BUDGET
        self.content_type: tuple[str, dict[str, str]] | None = None

    def all(self, name: str) -> list[str]:
        return self.by_name.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        values = self.by_name.get(name.lower())  # (not through all(): asked ~40 times a message)
        return values[0] if values else None

    def reserve(self, value: str) -> bool:
        """Spend budget on `value`; False when it is too long or over budget for the structured parser."""
        if len(value) > min(MAX_STRUCTURED_VALUE, self._budget):
            return False
        self._budget -= len(value)
        return True


def _structured(name: str, value: str) -> Any:
    """`value` parsed by email.policy.default (call after `_Fields.reserve`), or None when broken.
    Any: the header class is made at run time from the field's name (addresses, params...)."""
    try:
        return _DEFAULT.header_fetch_parse(name, value)
    except Exception:  # why: the default policy raises IndexError, HeaderParseError, ValueError...
        return None


# Fast paths: email.policy.default builds a whole parse tree of every structured value, which was
# most of the ingest time (bench/README.md). Values of the plain shapes below read exactly as the
# structured parser reads them (bench/parsing_check.py compares both on random values), so they
# skip it; they still spend the budget, so the fields after them are read as before.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]"  # RFC 5322 atext, less "=" and "?" (no encoded words)
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_PLAIN_ADDRESS = re.compile(rf"(?:({_ATEXT}+(?: {_ATEXT}+)*) <({_DOT_ATOM}@{_DOT_ATOM})>|({_DOT_ATOM}@{_DOT_ATOM}))")
_PLAIN_ADDRESS_LIST = re.compile(
    rf"[ \t]*{_PLAIN_ADDRESS.pattern}(?:[ \t]*,[ \t]*{_PLAIN_ADDRESS.pattern})*[ \t]*")
_TOKEN = r"[A-Za-z0-9!#$%&+.^_`|~-]+"  # RFC 2045 token, less "*" and "'" (RFC 2231 parameters)
_PLAIN_PARAMETER = re.compile(rf';[ \t]*([A-Za-z0-9._-]+)=({_TOKEN}|"[ !#-\[\]-~]*")')
_PLAIN_CONTENT_TYPE = re.compile(rf"[ \t]*({_TOKEN})/({_TOKEN})((?:[ \t]*{_PLAIN_PARAMETER.pattern})*)[ \t]*")


# One RFC 2047 encoded word, of a shape the structured parser reads as one token: no "?" or blank
# inside, Q text of safe characters and =XX escapes (a lone "=" confuses its "?=" search), B text
# of the base64 alphabet.
_ENCODED_WORD = r"=\?[A-Za-z0-9_.:-]+\?(?:[Qq]\?(?:[!-<>@-~]|=[0-9A-Fa-f]{2})*|[Bb]\?[A-Za-z0-9+/]*={0,2})\?="
_ONE_ENCODED_WORD = re.compile(_ENCODED_WORD)
_EW_ADDRESS = re.compile(rf"(?:({_ATEXT}+(?: {_ATEXT}+)*|{_ENCODED_WORD}) <({_DOT_ATOM}@{_DOT_ATOM})>"
                         rf"|({_DOT_ATOM}@{_DOT_ATOM}))")
_EW_ADDRESS_LIST = re.compile(rf"[ \t]*{_EW_ADDRESS.pattern}(?:[ \t]*,[ \t]*{_EW_ADDRESS.pattern})*[ \t]*")
_BLANKS = re.compile(r"[ \t]+")
# The standard library's own encoded-word decoder, which its structured parser calls (private, and
# not in typeshed: hence Any).
_ew: Any = importlib.import_module("email._encoded_words")


def _encoded_word_text(value: str) -> str | None:
    """The text of `value` when it is one encoded word the standard library decodes without a
    defect into text without control characters (as email.policy.default reads it), else None."""
    if not _ONE_ENCODED_WORD.fullmatch(value):
        return None
    try:
        text, _, _, defects = _ew.decode(value)
    except Exception:  # why: the structured parser turns these into defects; let it
        return None
    if defects or not isinstance(text, str) or not text.isprintable():
        return None
    return text


def _plain_addresses(value: str) -> list[tuple[str, str]] | None:
    """(display name, addr-spec) of a list of plain `Name Words <a@b>` or `a@b`; None for other shapes.
    A display name may be one encoded word: the structured parser reads its text with each run
    of blanks as one space."""
    if _PLAIN_ADDRESS_LIST.fullmatch(value):
        return [(m.group(1) or "", m.group(2) or m.group(3)) for m in _PLAIN_ADDRESS.finditer(value)]
    if "=?" not in value or not _EW_ADDRESS_LIST.fullmatch(value):
        return None
    found = []
    for match in _EW_ADDRESS.finditer(value):
        name = match.group(1) or ""
        if name.startswith("=?"):
            text = _encoded_word_text(name)
            if text is None:
                return None
            name = _BLANKS.sub(" ", text)
        found.append((name, match.group(2) or match.group(3)))
    return found


def _plain_content_type(value: str) -> tuple[str, dict[str, str]] | None:
    """(type/subtype, parameters) of `type/subtype; key=token; key="text"`; None for other shapes
    (repeated keys too: the structured parser keeps the first, which is not worth copying)."""
    match = _PLAIN_CONTENT_TYPE.fullmatch(value)
    if match is None:
        return None
    params: dict[str, str] = {}
    for key, text in _PLAIN_PARAMETER.findall(match.group(3)):
        if key.lower() in params:
            return None
        params[key.lower()] = text[1:-1] if text.startswith('"') else text
    return f"{match.group(1)}/{match.group(2)}".lower(), params


def _is_plain_text(value: str) -> bool:
    """ASCII without encoded words: the structured parser returns such a value unchanged."""
    return value.isascii() and "=?" not in value and "\r" not in value and "\n" not in value


def _decode_rfc2047(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # why: unknown charsets and broken encoded words; keep the raw text
        return value


def _text_field(fields: _Fields, name: str) -> str | None:
    value = fields.first(name)
    if value is None:
        return None
    header = None
    if fields.reserve(value):
        if _is_plain_text(value):
            return one_line(value)
        text = _encoded_word_text(value)
        if text is not None:
            return one_line(text)
        header = _structured(name, value)
    try:
        text = str(header) if header is not None else _decode_rfc2047(value)
    except Exception:  # why: str() of a header object can still fail on odd defects
        text = _decode_rfc2047(value)
    return one_line(text)


def _valid_addr(addr: str) -> str | None:
    addr = as_unicode(addr).strip().lower()
    if len(addr) > 254 or not _ADDR_SPEC.fullmatch(addr) or "\ufffd" in addr:
        return None
    domain = addr.rsplit("@", 1)[1]
    if domain.startswith(".") or domain.endswith(".") or ".." in domain:
        return None
    return addr


def _address_pairs(fields: _Fields, name: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) of every valid address in every `name` field, deduplicated."""
    pairs: list[tuple[str, str | None]] = []  # (display name, the valid addr-spec or None)
    for value in fields.all(name):
        pairs.extend(_value_addresses(name, value, fields.reserve(value)))
    seen: set[str] = set()
    result = []
    for display, valid in pairs:
        if valid and valid not in seen:
            seen.add(valid)
            result.append((one_line(display), valid))
    return result


@lru_cache(maxsize=ADDRESS_MEMO)
def _value_addresses(name: str, value: str, structured: bool) -> tuple[tuple[str, str | None], ...]:
    """(display name, the valid addr-spec or None) of each address of one field value; the
    structured parser sees it only when the message's budget let it (`structured`). A function
    of its arguments alone, so its answers are kept (ADDRESS_MEMO)."""
    found: list[tuple[str, str]] = []
    if structured:
        plain = _plain_addresses(value)
        found = plain if plain is not None else _structured_addresses(name, value)
    checked = [(display, _valid_addr(addr)) for display, addr in found]
    if not any(valid for _, valid in checked):
        try:
            found = [(_decode_rfc2047(n), a) for n, a in getaddresses([value])]
        except Exception:  # why: the old parser is tolerant but not proven total
            found = []
        checked = [(display, _valid_addr(addr)) for display, addr in found]
    return tuple(checked)


def _structured_addresses(name: str, value: str) -> list[tuple[str, str]]:
    header = _structured(name, value)
    if header is None:
        return []
    try:
        return [(a.display_name or "", a.addr_spec or "") for a in header.addresses]
    except Exception:  # why: lazy attribute access on a defective parse
        return []


def _message_ids(values: Iterable[str]) -> tuple[str, ...]:
    ids: list[str] = []
    for value in values:
        found = _MSG_ID_TOKEN.findall(value)
        if not found and len(value.split()) == 1 and "@" in value and not re.search("[<>]", value):
            found = [value.strip()]  # why: some clients drop the angle brackets
        ids.extend(i for i in found if i.isprintable() and i not in ids)
    return tuple(ids)


def _date(fields: _Fields) -> datetime | None:
    value = fields.first("Date")
    if value is None:
        return None
    # email.policy.default's DateHeader is parsedate_to_datetime plus a parse tree we never read,
    # so the function is called directly; the budget is spent as the structured parse spent it.
    fields.reserve(value)
    try:
        parsed = parsedate_to_datetime(value)
    except Exception:  # why: ValueError, TypeError, OverflowError on garbage dates
        return None
    try:
        if parsed.tzinfo is None:  # "-0000": local time unknown; UTC is the honest guess
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _content_type(fields: _Fields) -> tuple[str, dict[str, str]]:
    if fields.content_type is None:
        value = (fields.first("Content-Type") or "")[:MAX_STRUCTURED_VALUE]
        header: Any = None
        if fields.reserve(value):
            fields.content_type = _plain_content_type(value)
            if fields.content_type is not None:
                return fields.content_type
            header = _structured("Content-Type", value)
        try:
            params = {k.lower(): str(v) for k, v in header.params.items()}
            fields.content_type = (header.content_type, params)
        except Exception:  # why: no header, or defective parameters; read them by hand
            found = re.findall(r";\s*([\w.-]+)\s*=\s*(\"[^\"]*\"|[^;\s]*)", value)
            params = {k.lower(): v.strip('"') for k, v in found}
            fields.content_type = (value.split(";", 1)[0].strip().lower(), params)
    return fields.content_type


# ------------------------------------------------------------------------------------------
# Auto-replies and bounces.

AUTO_REPLY_SUBJECTS: tuple[str, ...] = (
    "Out of Office", "Out of the Office", "Automatic reply", "Auto reply", "Autoreply", "Auto-Reply",
    "Auto response", "Autoresponse", "Auto-Response", "Vacation reply",
    "Abwesenheitsnotiz", "Automatische Antwort", "Abwesend",  # German
    "Réponse automatique", "Absence du bureau", "Absent du bureau",  # French
    "Respuesta automática", "Fuera de la oficina",  # Spanish
    "Afwezig", "Automatisch antwoord",  # Dutch
    "Frånvaro", "Autosvar", "Automatiskt svar",  # Swedish
    "Fravær", "Fraværende", "Automatisk svar",  # Norwegian, Danish
    "Poissa", "Automaattinen vastaus",  # Finnish
)
DELIVERY_FAILURE_SUBJECTS: tuple[str, ...] = (
    "Undelivered Mail", "Undeliverable", "Delivery Status Notification", "Mail delivery failed",
    "Delivery failure", "Delivery has failed", "failure notice", "Returned mail", "Mail System Error",
    "Unzustellbar", "Nicht zustellbar", "Non remis", "Non distribuable", "No se puede entregar",
    "Onbestelbaar", "Olevererbart", "Kan ikke leveres", "Ei voitu toimittaa",
)
_NULL_SENDERS = ("mailer-daemon", "postmaster")


# At the start only: a person may well write "Re: our out of office rota".
_AUTO_REPLY_SUBJECT_RE = phrase_regex(AUTO_REPLY_SUBJECTS, at_start=True)
_DELIVERY_FAILURE_RE = phrase_regex(DELIVERY_FAILURE_SUBJECTS, at_start=False)


def _auto_reply_reason(fields: _Fields, subject: str) -> str | None:
    submitted = fields.first("Auto-Submitted")
    if submitted is not None and re.split(r"[\s;(]", submitted.strip() + " ", maxsplit=1)[0].lower() != "no":
        return f"Auto-Submitted: {one_line(submitted)[:80]}"
    for name in ("X-Autoreply", "X-Autorespond"):
        value = fields.first(name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            return f"{name}: {one_line(value)[:80]}"
    suppress = fields.first("X-Auto-Response-Suppress") or ""
    if {t.lower() for t in re.split(r"[\s,;]+", suppress)} & {"all", "oof", "autoreply"}:
        return f"X-Auto-Response-Suppress: {one_line(suppress)[:80]}"
    # A person answering through a list or group alias carries list headers too; a message that
    # replies to something is treated as that person's reply, never discounted as bulk mail.
    is_reply = fields.first("In-Reply-To") is not None or fields.first("References") is not None
    precedence = (fields.first("Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "auto_reply") or (precedence == "list" and not is_reply):
        return f"Precedence: {precedence}"
    content_type, params = _content_type(fields)
    if content_type == "multipart/report":
        return f"Content-Type: multipart/report; report-type={params.get('report-type', '')}"
    for name in ("List-Id", "List-Unsubscribe"):
        if fields.first(name) is not None and not is_reply:
            return f"{name} (mailing list)"
    if (fields.first("Return-Path") or "").replace(" ", "") == "<>":
        return "Return-Path: <> (null sender)"
    match = _AUTO_REPLY_SUBJECT_RE.search(fold(subject))
    if match:
        phrase = next(p for p in AUTO_REPLY_SUBJECTS if fold(p) == match.group(1))
        return f"Subject: {phrase}"
    return None


def _is_bounce(fields: _Fields, from_addr: str, subject: str) -> bool:
    content_type, params = _content_type(fields)
    if content_type == "multipart/report" and params.get("report-type", "").lower() == "delivery-status":
        return True
    local = from_addr.split("@", 1)[0]
    return local in _NULL_SENDERS and _DELIVERY_FAILURE_RE.search(fold(subject)) is not None


# ------------------------------------------------------------------------------------------
# Parsing.


def _checked(raw: bytes) -> tuple[bytes, bytes | None]:
    """Split `raw` (NULs removed) into header section and body; None: no body given."""
    data = raw.replace(b"\x00", b"")
    if not data:
        raise MalformedMessage("empty message")
    start, end = _separator(data)
    head = data[: start + 1] if start >= 0 else data
    body = data[end:] if start >= 0 else b""
    # (a section no longer than the limit has no line longer: most need not be split to know)
    if len(head) > MAX_HEADER_LINE and any(len(line) > MAX_HEADER_LINE for line in re.split(rb"[\r\n]", head)):
        raise MalformedMessage("header line longer than 64 KiB")
    if len(head) > MAX_HEADER_SECTION:
        raise MalformedMessage("header section larger than 256 KiB")
    return head, (body if body.strip() else None)


_SEPARATOR = re.compile(rb"\r?\n\r?\n|\r\r")


def _separator(data: bytes) -> tuple[int, int]:
    """(start, end) of the first match of _SEPARATOR in `data`, or (-1, -1).

    Where every LF follows a CR and no two CRs meet before it, the first match is the first
    CRLF CRLF (a match needs two LFs with at most a CR between them, or two CRs): most mail is of
    that shape, and `find` answers it without the expression trying each position."""
    first = data.find(b"\r\n\r\n")
    if first >= 0 and data.count(b"\n") == data.count(b"\r\n") and data.find(b"\r\r", 0, first + 1) < 0:
        return first, first + 4
    found = _SEPARATOR.search(data)
    return (found.start(), found.end()) if found else (-1, -1)


def _read_fields(raw: bytes) -> tuple[_Fields, bytes | None]:
    head, body = _checked(raw)
    # The plain shape by core/headers.py (the same pairs, ~3x faster); anything else by the stdlib.
    items = split_header_block(head + b"\n")
    if items is None:
        items = list(BytesHeaderParser(policy=email_policy.compat32).parsebytes(head + b"\n").raw_items())
    if not items:
        raise MalformedMessage("no header fields")
    fields = _Fields(items)
    # (a value is never longer than the section it came from: most need not be measured)
    if len(head) > MAX_HEADER_LINE and any(len(v) > MAX_HEADER_LINE for values in fields.by_name.values()
                                           for v in values):
        raise MalformedMessage("header field longer than 64 KiB")
    return fields, body


# A Date header this far from the server's INTERNALDATE is not believed: the server's clock wins.
DATE_TRUST_BEFORE = timedelta(days=7)
DATE_TRUST_AFTER = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def message_time(date: datetime | None, internaldate: datetime | None, direction: str) -> datetime:
    """When a message was written or received, from its Date header and the server's INTERNALDATE.

    Our own mail ("out") carries our Date header, which we trust unless it lies in the future of
    the server's INTERNALDATE. For inbound mail the server's INTERNALDATE wins unless the sender's
    Date agrees with it (a forged or skewed Date cannot move a reply in time).
    """
    if internaldate is None:
        return date or _EPOCH
    if date is None or date > internaldate + DATE_TRUST_AFTER:
        return internaldate
    if direction == "out" or internaldate - DATE_TRUST_BEFORE <= date:
        return date
    return internaldate


def parse_message(raw: bytes, *, internaldate: datetime | None = None, size: int | None = None) -> ParsedMessage:
    """Read a header block (IMAP HEADER.FIELDS) or a whole message; raises only MalformedMessage.

    `size` is the whole message's size when `raw` is only its header block. A message without a
    usable Message-ID is named "synthetic-<sha256 of raw and size>@parting": the size keeps apart
    different messages whose fetched header fields happen to be identical.
    `internaldate` is accepted for the caller's convenience and not used: `date` is the Date header.
    """
    fields, body = _read_fields(raw)
    digest = hashlib.sha256(raw).hexdigest()
    own_ids = _message_ids((fields.first("Message-ID") or "",))
    if own_ids and len(own_ids[0]) <= 255:
        message_id = own_ids[0]
    else:  # (the second digest only for the few messages that need it)
        synthetic = digest if size is None else hashlib.sha256(raw + b"\nsize=%d" % size).hexdigest()
        message_id = f"synthetic-{synthetic[:32]}@parting"
    senders = _address_pairs(fields, "From")
    from_name, from_addr = senders[0] if senders else ("", "")
    subject = _text_field(fields, "Subject") or ""
    bounce = _is_bounce(fields, from_addr, subject)
    auto_reply = _auto_reply_reason(fields, subject)
    thread_index = "".join((fields.first("Thread-Index") or "").split()) or None
    return ParsedMessage(
        message_id=message_id,
        from_addr=from_addr,
        from_name=from_name,
        to=tuple(a for _, a in _address_pairs(fields, "To")),
        cc=tuple(a for _, a in _address_pairs(fields, "Cc")),
        reply_to=tuple(a for _, a in _address_pairs(fields, "Reply-To")),
        subject=subject,
        date=_date(fields),
        in_reply_to=_message_ids(fields.all("In-Reply-To")),
        references=_message_ids(fields.all("References")),
        thread_index=thread_index,
        thread_topic=_text_field(fields, "Thread-Topic") or None,
        auto_reply=auto_reply or ("delivery status notification" if bounce else None),
        bounce=bounce,
        authentication_results=tuple(v.strip() for v in fields.all("Authentication-Results")),
        parting_kind=one_line(fields.first("X-Parting-Kind") or "") or None,
        content_hash=digest,
        size=len(raw) if size is None else size,
        text=first_text(raw) if body is not None else None,
        header_counts=tuple((name, len(values)) for name, key in _SINGLE_KEYS
                            if (values := fields.by_name.get(key))),
        evidence_headers=tuple((name, " ".join(value.split())) for name, key in _EVIDENCE_KEYS
                               for value in fields.by_name.get(key, ())),
    )


def message_text(raw: bytes) -> str | None:
    """The text `parse_message(raw).text` reads, without reading the header fields into values (a
    body fetched for its text already had them read from its header block). Raises
    MalformedMessage for an empty message or an oversized header section, as parse_message does."""
    _, body = _checked(raw)
    if body is None:
        return None
    quick = quick_first_text(raw)  # the same answer for plain shapes, without the MIME parser
    return quick if quick is None or isinstance(quick, str) else first_text(raw)


def detect_auto_reply(msg: Message | bytes) -> str | None:
    """Why this message was written by a machine (the header or subject phrase that says so), else
    None. Takes an email.message.Message or raw bytes (unusable bytes raise MalformedMessage)."""
    if isinstance(msg, (bytes, bytearray)):
        fields, _ = _read_fields(bytes(msg))
    else:
        fields = _Fields(msg.raw_items())
    return _auto_reply_reason(fields, _text_field(fields, "Subject") or "")


def request_header(raw: bytes) -> bool:
    """True when the message carries `X-Parting-Request: yes` (we marked it as a request).
    Never raises: an unreadable message carries no mark."""
    if b"x-parting-request" not in raw.replace(b"\x00", b"").lower():
        return False  # why: nearly all mail lacks the field; reading every field again cost ~5% of ingest
    try:
        fields, _ = _read_fields(raw)
    except MalformedMessage:
        return False
    return (fields.first("X-Parting-Request") or "").strip().lower() in ("yes", "true", "1")


def _delivery_reports(message: Message) -> list[tuple[str | None, str, str]]:
    """(final recipient, action, status) of each per-recipient block of the delivery-status parts."""
    reports = []
    for block in delivery_status_blocks(message):
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        if recipient:
            action = str(block.get("Action", "")).strip().lower()
            status = str(block.get("Status", "")).strip()
            reports.append((_valid_addr(recipient.split(";", 1)[-1].strip().strip("<>")), action, status))
    return reports


def _reports(raw: bytes) -> tuple[_Fields | None, list[tuple[str | None, str, str]]]:
    try:
        fields, _ = _read_fields(raw)
    except MalformedMessage:
        return None, []
    message = parse_body(raw)
    try:
        return fields, _delivery_reports(message) if message is not None else []
    except Exception:  # why: a defective report reads as no report
        return fields, []


def bounce_recipients(raw: bytes) -> tuple[str, ...]:
    """Addresses a delivery status notification reports as not delivered (Final-Recipient), else
    those of X-Failed-Recipients. Never raises: an unreadable message names nobody."""
    fields, reports = _reports(raw)
    if fields is None:
        return ()
    if reports:
        found = [a for a, action, _ in reports if a and action not in ("delivered", "relayed", "expanded")]
    else:
        values = [v for v in fields.all("X-Failed-Recipients") if len(v) <= MAX_HEADER_LINE]
        found = [a for a in (_valid_addr(addr) for _, addr in getaddresses(values)) if a]
    return tuple(dict.fromkeys(found))


def is_hard_bounce(raw: bytes) -> bool:
    """True when a recipient block says the delivery failed for good (Action: failed, or Status 5.x.x
    without an Action); False for delays, bounces without a readable report and unreadable mail."""
    _, reports = _reports(raw)
    return any(action == "failed" or (not action and status.startswith("5.")) for _, action, status in reports)
