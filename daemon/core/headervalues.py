"""Whether a text is safe as the value of an email header: no line breaks, plain or encoded.

Rules of this module:
- Pure and light: only re, base64, binascii and codecs, so that checking a configuration's
  display names and subjects (daemon/adapters/settings/rules.py, on every command) does not import
  the email package; daemon/core/outgoing.py builds messages with these checks and re-exports them.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

# C0 controls except TAB, DEL, the C1 range (U+0085 NEL among them), and the Unicode line and
# paragraph separators: all of them end a line for some reader somewhere.
_FORBIDDEN = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CHAR_NAMES = {"\r": "CR", "\n": "LF", "\x00": "NUL", "\x85": "U+0085 (NEL)",
               "\u2028": "U+2028 (line separator)", "\u2029": "U+2029 (paragraph separator)"}
# RFC 2047 encoded word; the charset may carry an RFC 2231 language suffix ("utf-8*en").
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")


class HeaderInjection(ValueError):
    """A header name or value that could end the header early or smuggle in another one."""


def _describe(char: str) -> str:
    return _CHAR_NAMES.get(char, f"control character U+{ord(char):04X}")


def _decode_encoded_word(charset: str, encoding: str, payload: str) -> str | None:
    """The text an RFC 2047 word stands for, decoded leniently as a mail reader would."""
    charset = charset.split("*", 1)[0]
    try:
        if encoding in "Qq":
            raw = binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
        else:
            compact = re.sub(r"[^A-Za-z0-9+/]", "", payload)
            raw = base64.b64decode(compact + "=" * (-len(compact) % 4))
    except (binascii.Error, ValueError):
        return None
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "latin-1"  # every byte becomes a character, so a raw CR or LF stays visible
    return raw.decode(charset, "replace")


def check_header_value(name: str, value: str) -> str:
    """Return `value` unchanged if it is safe as the value of header `name`.

    Refused (HeaderInjection naming the header): CR, LF, NUL and the other C0 controls except
    TAB, DEL and C1 controls (U+0085), U+2028/U+2029, and any RFC 2047 encoded word whose decoded
    text holds such a character or cannot be decoded at all.
    """
    if not isinstance(value, str):
        raise HeaderInjection(f"header {name}: expected text, got {type(value).__name__}")
    bad = _FORBIDDEN.search(value)
    if bad:
        raise HeaderInjection(
            f"header {name}: the value contains {_describe(bad.group())} at position "
            f"{bad.start()}, which could start a new header; refused"
        )
    for word in _ENCODED_WORD.finditer(value):
        decoded = _decode_encoded_word(*word.groups())
        if decoded is None:
            raise HeaderInjection(
                f"header {name}: the encoded word {word.group()[:60]!r} cannot be decoded; refused"
            )
        hidden = _FORBIDDEN.search(decoded)
        if hidden:
            raise HeaderInjection(
                f"header {name}: the encoded word {word.group()[:60]!r} decodes to text "
                f"containing {_describe(hidden.group())}; refused"
            )
    return value
