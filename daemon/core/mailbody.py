"""The text of mail: stray 8-bit bytes, one-line values, the bounded MIME walk to the first text
part, delivery-status blocks, and whether a text asks for something.

Rules of this module:
- Pure; no IO, no clock. core/mail.py reads header fields and builds on these helpers.
- Every step is bounded or linear in its input, because mail is attacker-controlled: MIME part
  headers are cut short before compat32 parses their parameters (quadratic), and the walk stops
  at MAX_PARTS parts and MAX_DEPTH levels.
- HTML-only mail is read by core/htmltext.py, the one HTML converter (linear, quote-aware), so an
  HTML reply is read in production exactly as the reply tests read it.
- Output strings can always be stored: no lone surrogates, no control characters in one-liners.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable, Iterator
from email import policy as email_policy
from email.message import Message
from email.parser import BytesParser, HeaderParser

from daemon.core.htmltext import html_to_text

MAX_PART_HEADER = 1024  # MIME part header values are cut here: compat32 parameter parsing is quadratic
MAX_CONTAINERS = 100  # multipart/message parts; with more the body is not read (deep nesting)
MAX_PARTS = 200
MAX_DEPTH = 20

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # keeps tab and line breaks


def utf8_or_cp1252(data: bytes) -> str:
    """Undeclared 8-bit text: UTF-8 when it is valid UTF-8, else Windows-1252 (old Western mail)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def as_unicode(value: str) -> str:
    """`value` without lone surrogates. The email package hands undecodable bytes over as
    surrogate escapes; each word of them is read with utf8_or_cp1252."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        words = re.split(rb"(\s+)", value.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # surrogates that did not come from bytes
        return value.encode("utf-8", "replace").decode("utf-8")
    return "".join(utf8_or_cp1252(word) for word in words)


def one_line(value: str) -> str:
    """Display text for a header value: no control characters or line breaks, spaces folded."""
    return " ".join(_CONTROL.sub(" ", as_unicode(value)).split())


def plain_text(value: str) -> str:
    """Body text: "\\n" line ends, no control characters other than tab and line breaks."""
    text = as_unicode(value).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL_IN_TEXT.sub("", text)


def fold(text: str) -> str:
    """Case-, accent- and whitespace-insensitive form for phrase matching."""
    if text.isascii():  # ASCII has no accents or compatibility forms: only case and blanks to fold
        return " ".join(text.lower().split())
    decomposed = unicodedata.normalize("NFKD", text.replace("\u2019", "'").replace("\u2018", "'"))
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.casefold().split())


def phrase_regex(phrases: Iterable[str], *, at_start: bool) -> re.Pattern[str]:
    """A regex over fold()ed text finding any of `phrases` as whole words; group 1 is the phrase."""
    alternatives = "|".join(re.escape(fold(p)) for p in sorted(phrases, key=len, reverse=True))
    prefix = r"^[\s\[\(*]*" if at_start else r"(?<!\w)"
    return re.compile(prefix + "(" + alternatives + r")(?!\w)")


# ------------------------------------------------------------------------------------------
# MIME: a bounded walk to the first text part.


class _BoundedPolicy(email_policy.Compat32):
    """compat32, with every header value of every MIME part cut to MAX_PART_HEADER characters."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        return name, value[:MAX_PART_HEADER]


_BODY_POLICY = _BoundedPolicy()
_CONTAINER_RE = re.compile(rb"(?im)^content-type:\s*(?:multipart|message)/")


def parse_body(raw: bytes) -> Message | None:
    """The whole message as a MIME tree, or None when it is too deeply nested or unparseable."""
    data = raw.replace(b"\x00", b"")
    if len(_CONTAINER_RE.findall(data)) > MAX_CONTAINERS:
        return None
    try:
        return BytesParser(policy=_BODY_POLICY).parsebytes(data)
    except Exception:  # why: the parser is tolerant, but bodies are attacker-controlled
        return None


def walk_parts(part: Message) -> Iterator[Message]:
    """Depth-first, at most MAX_PARTS parts and MAX_DEPTH levels; attached messages are not entered."""
    stack = [(part, 0)]
    seen = 0
    while stack and seen < MAX_PARTS:
        current, level = stack.pop()
        seen += 1
        yield current
        # is_multipart() first: get_payload() of a leaf decodes with its charset, which may raise
        if current.is_multipart() and current.get_content_maintype() == "multipart" and level < MAX_DEPTH:
            parts = current.get_payload()
            if isinstance(parts, list):
                stack.extend((p, level + 1) for p in reversed(parts) if isinstance(p, Message))


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    try:
        codec = codecs.lookup(part.get_content_charset() or "")
        name = codec.name if getattr(codec, "_is_text_encoding", True) else ""
    except Exception:  # why: missing, unknown or nonsensical charset names
        name = ""
    try:  # why as_unicode: escape codecs such as unicode_escape can yield lone surrogates
        return as_unicode(payload.decode(name, "replace") if name else utf8_or_cp1252(payload))
    except Exception:  # why: some codecs raise despite errors="replace"
        return payload.decode("utf-8", "replace")


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";", 1)[0]
    return disposition.strip().lower() == "attachment"


def first_text(raw: bytes) -> str | None:
    """The first text/plain part, else the first text/html as text; None when unreadable."""
    message = parse_body(raw)
    if message is None:
        return None
    try:
        parts = [p for p in walk_parts(message) if not _is_attachment(p)]
        plain = next((p for p in parts if p.get_content_type() == "text/plain"), None)
        if plain is not None:
            return plain_text(_decoded(plain))
        rich = next((p for p in parts if p.get_content_type() == "text/html"), None)
        return plain_text(html_to_text(_decoded(rich))) if rich is not None else None
    except Exception:  # why: a defective body must never lose the header fields
        return None


def delivery_status_blocks(message: Message) -> list[Message]:
    """The field blocks of every message/delivery-status part (RFC 3464), per-message block first."""
    blocks: list[Message] = []
    for part in walk_parts(message):
        if part.get_content_type() in ("message/delivery-status", "message/global-delivery-status"):
            if part.is_multipart():
                blocks.extend(p for p in part.get_payload() if isinstance(p, Message))
            else:  # why: the global variant arrives as text; read its blocks the same way
                chunks = re.split(r"\n[ \t]*\n", _decoded(part).replace("\r\n", "\n"))
                blocks.extend(HeaderParser(policy=_BODY_POLICY).parsestr(c) for c in chunks if c.strip())
    return blocks


# ------------------------------------------------------------------------------------------
# Does our text ask for something? (Called with the new text of a message only.)

QUESTION_PHRASES: tuple[str, ...] = (
    "please send", "please provide", "please confirm", "please let me know", "please let us know",
    "please advise", "please reply", "please respond", "please return", "please sign",
    "please review", "please get back", "could you", "can you", "would you", "will you",
    "let me know", "let us know", "we need", "i need", "we require", "waiting for", "awaiting your",
    "get back to me", "get back to us", "look forward to hearing",
    # German
    "bitte senden", "bitte schicken", "bitte bestätigen", "bitte teilen sie", "könnten sie",
    "können sie", "würden sie", "wir benötigen", "ich benötige", "wir brauchen", "ich brauche",
    "geben sie bescheid", "bitte um rückmeldung", "warten auf ihre",
    # French
    "pourriez-vous", "pouvez-vous", "merci de", "veuillez", "nous avons besoin", "j'ai besoin",
    "dans l'attente de votre", "tenez-moi au courant",
    # Spanish
    "por favor envíe", "por favor confirme", "podría", "podrías", "puede enviar", "necesitamos",
    "necesito", "quedo a la espera", "avíseme",
    # Dutch
    "kunt u", "kun je", "zou u", "wilt u", "graag ontvangen", "laat het me weten", "laat ons weten",
    "hebben wij nodig", "hebben we nodig", "in afwachting van",
)
_QUESTION_RE = phrase_regex(QUESTION_PHRASES, at_start=False)
_LINK = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|mailto:\S+", re.IGNORECASE)


def may_hold_link(text: str) -> bool:
    """False only when _LINK cannot match: each of its branches needs "://", "www." or "mailto:"
    (case-insensitively, where "i" also matches "İ" and "ı": hence only "lto:", whose letters have
    no such twins). The scan of _LINK itself, with its three branches and no literal prefix, was
    an eighth of reading one of our requests' bodies."""
    if "://" in text:
        return True
    lowered = text.lower()
    return "www." in lowered or "lto:" in lowered


def asks_something(new_text: str) -> bool:
    """A question mark (outside links) or a request phrase, in any of the languages above."""
    text = _LINK.sub(" ", new_text) if may_hold_link(new_text) else new_text
    return any(mark in text for mark in "?\uff1f\u00bf") or _QUESTION_RE.search(fold(text)) is not None
