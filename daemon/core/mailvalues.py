"""A message as core/mail.py reads it: the ingest side's value.

Rules of this module:
- A frozen dataclass only, exported by core/model.py as before (`from daemon.core.model import
  ParsedMessage`), which imports this module only when it is first asked for: no typed report
  needs it, and each frozen dataclass costs about a millisecond to create.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ParsedMessage:
    """What core/mail.py reads out of one message's headers (and first text part, if given).

    Addresses are lower-case addr-specs. `message_id` has no angle brackets; a message without
    one gets a stable synthetic id derived from its content ("synthetic-<sha256 prefix>@parting").
    """

    message_id: str
    from_addr: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    subject: str
    date: datetime | None  # from the Date header, UTC; None when missing or unreadable
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    thread_index: str | None  # Outlook Thread-Index, base64 as found
    thread_topic: str | None
    auto_reply: str | None  # why this is automatic (e.g. "Auto-Submitted: auto-replied"); None if a person wrote it
    bounce: bool  # a delivery status notification
    authentication_results: tuple[str, ...]  # raw header values, topmost first
    parting_kind: str | None  # X-Parting-Kind of mail we generated ("review", "release", ...)
    content_hash: str  # sha256 hex of the raw bytes given to the parser
    size: int
    text: str | None = None  # first text/plain part (or text of the first text/html), when fetched
    new_text: str | None = None  # text without quoted reply and signature, when fetched
    # How often each field RFC 5322 section 3.6 allows at most once appears (mail.SINGLE_FIELDS,
    # present ones only): a staff reply with any of them repeated is refused (core/review.py).
    header_counts: tuple[tuple[str, int], ...] = ()
    # The provider's stamps core/evidence.py reads (X-MS-Exchange-Organization-AuthAs, ...), topmost first
    evidence_headers: tuple[tuple[str, str], ...] = ()
