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

from collections.abc import Iterator
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


# The only fields this module's questions read (the content type and its parameters, the
# disposition, the transfer encoding); a Message answers from the first of each, so leaving the
# others out changes no answer, and saves copying a whole header section into every root.
_READ_FIELDS: Final = frozenset({"content-type", "content-disposition", "content-transfer-encoding"})


def _part(items: list[tuple[str, str]]) -> Message:
    part = Message(policy=_BODY_POLICY)
    for name, value in items:
        if name.lower() in _READ_FIELDS:
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


def _boundaries(body: str, separator: str, position: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each boundary line of `body` from `position` on (end: its line break, or
    the end of `body`), found by searching for the separator rather than testing every line."""
    while (found := body.find(separator, position)) >= 0:
        if found == 0 or body[found - 1] == "\n":
            end = body.find("\n", found)
            end = len(body) if end < 0 else end
            if _is_boundary(body[found:end], separator):
                yield found, end
        position = found + 1


def _first_of_multipart(root: Message, text: str, offset: int) -> str | None | _NotPlain:
    boundary = root.get_boundary()
    if not boundary or "\r" in boundary or "\n" in boundary or root.get_content_subtype() == "digest":
        return NOT_PLAIN  # (a digest's parts default to message/rfc822)
    separator = "--" + boundary
    body = text[offset:]
    first = next(_boundaries(body, separator, 0), None)
    if first is None or body[first[0] + len(separator):].startswith("--") or first[1] == len(body):
        return NOT_PLAIN  # no boundary, the closing one first (no parts), or nothing after it
    # The part's header section, up to its empty line; a boundary line in it is another shape.
    start = first[1] + 1
    section = split_header_section(body[start:])
    if section is None or not section[0] or ("\n" + separator) in ("\n" + body[start:start + section[1]]):
        return NOT_PLAIN
    part = _part(section[0])
    if part.get_content_type() != "text/plain" or _is_attachment(part):
        return NOT_PLAIN
    payload_start = start + section[1]
    end = next(_boundaries(body, separator, payload_start), None)
    if end is None:  # no further boundary: the part runs to the end, less its last line break
        payload = body[payload_start:]
        payload = payload[:-2] if payload.endswith("\r\n") else payload.removesuffix("\n")
    else:  # the line break before a boundary belongs to the boundary (RFC 2046)
        payload = body[payload_start:end[0] - 1].removesuffix("\r")
    part.set_payload(payload)
    return plain_text(_decoded(part))
