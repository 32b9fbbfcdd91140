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

# The feed parser's header-line test, less its "From " and continuation branches (handled below).
_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+:")


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
    name: str | None = None
    parts: list[str] = []
    position = 0
    end = len(text)
    while True:
        if position == end:
            if not whole:
                return None
            break
        newline = text.find("\n", position)
        if newline < 0:
            return None  # a last line without its line break: not the shape callers give
        line = text[position:newline + 1]
        position = newline + 1
        if line == "\n" or line == "\r\n":
            break  # the empty line that ends the header section
        if line[0] in " \t":
            if name is None:
                return None  # a continuation with nothing to continue
            parts.append(line)
            continue
        match = _NAME.match(line)
        if match is None or line.startswith("From "):
            return None
        if name is not None:
            items.append((name, _value(parts)))
        name, parts = line[:match.end() - 1], [line[match.end():]]
    if name is not None:
        items.append((name, _value(parts)))
    return items, position


def _value(parts: list[str]) -> str:
    return (parts[0].lstrip(" \t") + "".join(parts[1:])).rstrip("\r\n")
