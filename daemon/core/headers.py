"""A header block split into (name, raw value) pairs, as the standard library's compat32 parser
splits it, without its machinery for the common case.

Rules of this module:
- The answer is exactly `BytesHeaderParser(policy=compat32).parsebytes(head).raw_items()`:
  names as written, values with their folding line breaks, leading blanks of the first line
  removed, the final line break stripped; bytes decoded as ASCII with surrogateescape.
- Only the plain shape is read here: lines ending in LF or CRLF, each `Name: value` with a name
  of printable ASCII other than ':', or a continuation line starting with a blank, up to the
  first empty line. Anything else (a bare CR, a first line that is a continuation, a line with no
  name or no colon, an mbox "From " line, a field with an empty name) gives None, and the caller
  uses the standard library, which knows how each of those is read.
- Pure: no IO, never raises for any input.

Why: the `email` package's feed parser checks every line against several expressions and builds
a Message object; a backfill reads one header block per message, so that was a large part of the
time spent reading each message's fields.
"""

from __future__ import annotations

import re

# One field: the feed parser's header-line test (less its "From " and continuation branches: a
# name of printable ASCII other than ":" cannot hold the space of "From "), then its value's
# line and the continuation lines (starting with a blank) that fold it, each with its line break.
_FIELD = re.compile(r"([\x21-\x39\x3b-\x7e]+):([^\n]*\n(?:[ \t][^\n]*\n)*)")


def split_header_block(head: bytes) -> list[tuple[str, str]] | None:
    """The (name, raw value) pairs of a header block, or None when it is not of the plain shape."""
    found = split_header_section(head.decode("ascii", "surrogateescape"), whole=True)
    return None if found is None else found[0]


def split_header_section(text: str, *, whole: bool = False) -> tuple[list[tuple[str, str]], int] | None:
    """(pairs, offset of what follows the header section) of `text` (bytes decoded as ASCII with
    surrogateescape), or None when it is not of the plain shape. The section ends at its empty
    line; without one, `whole` reads `text` to its end (which must end in a line break), and
    otherwise the answer is None (the caller wanted what follows)."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None  # a bare CR is a line break to the feed parser: let it read those
    items: list[tuple[str, str]] = []
    position, end = 0, len(text)
    match = _FIELD.match
    while position < end:
        found = match(text, position)
        if found is None:
            if text.startswith("\n", position):
                return items, position + 1  # the empty line that ends the header section
            if text.startswith("\r\n", position):
                return items, position + 2
            return None  # a continuation first, a line with no name or colon, a "From " line, no last break
        items.append((found.group(1), found.group(2).lstrip(" \t").rstrip("\r\n")))
        position = found.end()
    return (items, position) if whole else None
