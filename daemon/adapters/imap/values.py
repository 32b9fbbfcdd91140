"""The values and errors of the IMAP adapter, and the small readers of imapclient's answers.

Rules: no IO here; imap_connection.py does the talking, these only name and read what it gets.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.core.errors import PartingError
from daemon.core.mail import HEADER_FIELDS

# What the core reads out of a message's header: the core says, the adapter fetches.
DEFAULT_HEADER_FIELDS: tuple[str, ...] = HEADER_FIELDS

# Header names as IMAP atoms: RFC 5322 allows more, but no header anyone reads needs it.
_FIELD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_CHANGE_RESPONSES = {b"EXISTS", b"EXPUNGE", b"FETCH"}
_LOGOUT_TIMEOUT = 5.0
_SENT_FLAG = rb"\Sent"  # imapclient defines SENT but leaves it out of its __all__


class ImapError(PartingError):
    """An IMAP command failed; the message names the server and the command."""


class ImapConnectionError(ImapError):
    """No connection could be made: refused, timed out, TLS failure, or TLS not offered."""


class ImapConnectionLost(ImapConnectionError):
    """An established connection died (EOF, reset, timeout, BYE, unreadable response)."""


class ImapAuthError(ImapError):
    """The server refused the login: wrong user or password, or no password given."""


class ImapFolderError(ImapError):
    """The folder does not exist (or no \\Sent folder could be found)."""


@dataclass(frozen=True)
class FolderInfo:
    name: str
    uidvalidity: int
    uidnext: int | None  # a few servers leave it out of the SELECT response
    exists: int
    highestmodseq: int | None  # only when the server has CONDSTORE


@dataclass(frozen=True)
class FetchedHeader:
    uid: int
    header: bytes  # the requested header fields, as the server sent them
    internaldate: datetime  # aware, UTC: when the server received the message
    size: int  # RFC822.SIZE of the whole message


@dataclass(frozen=True)
class IdleResult:
    changed: bool  # the server reported new, removed or changed messages


def header_fields_item(fields: Sequence[str]) -> str:
    """The FETCH item for these header fields; refuses names that would break the command."""
    if not fields:
        raise ValueError("at least one header field name is needed")
    bad = [name for name in fields if not _FIELD_NAME.match(name)]
    if bad:
        raise ValueError(f"not header field names: {', '.join(map(repr, bad))}")
    return f"BODY.PEEK[HEADER.FIELDS ({' '.join(name.upper() for name in fields)})]"


def _section_value(data: dict, prefix: bytes) -> bytes | None:
    """The value of a BODY[...] item. The server echoes the section in its own spelling (the
    field list re-cased, re-spaced or quoted; "<0>" after a partial fetch), so match its start."""
    for key, value in data.items():
        if isinstance(key, bytes) and key.upper().startswith(prefix):
            return b"" if value is None else bytes(value)
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate rejected: {exc.verify_message or exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, imaplib.IMAP4.abort) and "EOF" in str(exc):
        return "the server closed the connection"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _says_bye(responses: Sequence[tuple]) -> bool:
    return any(r and isinstance(r[0], bytes) and r[0].upper() == b"BYE" for r in responses)


def _reports_change(responses: Sequence[tuple]) -> bool:
    for response in responses:
        if len(response) >= 2 and isinstance(response[0], int):
            if isinstance(response[1], bytes) and response[1].upper() in _CHANGE_RESPONSES:
                return True
        elif response and isinstance(response[0], bytes) and response[0].upper() == b"VANISHED":
            return True
    return False
