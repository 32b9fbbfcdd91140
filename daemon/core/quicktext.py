"""The first text of a message of the plain shape, without the MIME parser: a fast path for
core/mailbody.first_text.

Rules of this module:
- The answer is exactly `first_text(raw)` or NOT_PLAIN, never anything else: NOT_PLAIN says "ask
  first_text", which knows every other shape. Plain is: line breaks LF or CRLF (no bare CR), a
  header section core/headers.py reads, and either a text/plain root or a multipart root whose
  first part (right after the first boundary line, preceded by any preamble) is a text/plain part
  that is not an attachment, with a header section of the plain shape ended by an empty line.
- The part's header values go into an email.message.Message (compat32, cut as mailbody cuts
  them) and its payload is decoded by mailbody's own code: charsets, transfer encodings and the
  parameters' quoting are read by the standard library exactly as when it parses the whole tree.
- Pure: no IO, never raises for any input.

Why: the feed parser walks every line of every part and compiles a regular expression for each
new boundary (each message has its own); backfilling a Sent folder reads the first text of each
of our requests ("does it ask something?"), and that parse was the largest cost of the backfill.
"""

from __future__ import annotations

from email.message import Message
from typing import Final

from daemon.core.headers import split_header_section
from daemon.core.mailbody import (
    _BODY_POLICY,
    _CONTAINER_RE,
    MAX_CONTAINERS,
    MAX_PART_HEADER,
    _decoded,
    _is_attachment,
    plain_text,
)


class _NotPlain:
    def __repr__(self) -> str:
        return "NOT_PLAIN"


NOT_PLAIN: Final = _NotPlain()


def quick_first_text(raw: bytes) -> str | None | _NotPlain:
    """`first_text(raw)` for a message of the plain shape (see the module rules), else NOT_PLAIN."""
    try:
        return _first_text(raw.replace(b"\x00", b""))
    except Exception:  # why: a fast path never decides a failure; first_text does
        return NOT_PLAIN


def _part(items: list[tuple[str, str]]) -> Message:
    part = Message(policy=_BODY_POLICY)
    for name, value in items:
        part.set_raw(name, value[:MAX_PART_HEADER])
    return part


def _first_text(data: bytes) -> str | None | _NotPlain:
    if len(_CONTAINER_RE.findall(data)) > MAX_CONTAINERS:
        return NOT_PLAIN
    text = data.decode("ascii", "surrogateescape")
    section = split_header_section(text)
    if section is None or not section[0]:
        return NOT_PLAIN
    items, offset = section
    root = _part(items)
    if root.get_content_maintype() == "multipart":
        return _first_of_multipart(root, text, offset)
    if root.get_content_type() != "text/plain" or _is_attachment(root):
        return NOT_PLAIN
    root.set_payload(text[offset:])
    return plain_text(_decoded(root))


def _is_boundary(line: str, separator: str) -> bool:
    """The feed parser's boundary test (`--boundary`, an optional `--`, blanks, the line break)."""
    if not line.startswith(separator):
        return False
    rest = line[len(separator):].removesuffix("\r")
    return not rest.removeprefix("--").strip(" \t")


def _first_of_multipart(root: Message, text: str, offset: int) -> str | None | _NotPlain:
    boundary = root.get_boundary()
    if not boundary or "\r" in boundary or "\n" in boundary or root.get_content_subtype() == "digest":
        return NOT_PLAIN  # (a digest's parts default to message/rfc822)
    separator = "--" + boundary
    lines = text[offset:].split("\n")  # the last item is what follows the last line break
    first = next((n for n, line in enumerate(lines) if _is_boundary(line, separator)), None)
    if first is None or lines[first][len(separator):].startswith("--"):
        return NOT_PLAIN  # no boundary, or the closing one first: no parts
    # The part's header section, up to its empty line; a boundary before it is another shape.
    start = first + 1
    blank = start
    while blank < len(lines) - 1 and lines[blank] not in ("", "\r"):
        if _is_boundary(lines[blank], separator):
            return NOT_PLAIN
        blank += 1
    if blank >= len(lines) - 1 or blank == start:
        return NOT_PLAIN
    section = split_header_section("\n".join(lines[start:blank + 1]) + "\n")
    if section is None or not section[0]:
        return NOT_PLAIN
    part = _part(section[0])
    if part.get_content_type() != "text/plain" or _is_attachment(part):
        return NOT_PLAIN
    end = next((n for n in range(blank + 1, len(lines)) if _is_boundary(lines[n], separator)), None)
    if end is None:  # no further boundary: the part runs to the end, less its last line break
        payload = "\n".join(lines[blank + 1:])
        payload = payload[:-2] if payload.endswith("\r\n") else payload.removesuffix("\n")
    else:  # the line break before a boundary belongs to the boundary (RFC 2046)
        payload = "\n".join(lines[blank + 1:end]).removesuffix("\r")
    part.set_payload(payload)
    return plain_text(_decoded(part))
