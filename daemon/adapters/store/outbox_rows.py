"""The row `parting outbox` lists: one outbox message as stored, made where it is read (rows.py
says why: the other listings never create it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import from_utc_text, json_tuple

if TYPE_CHECKING:
    from .outbox import OutboxState

_TIMES = ("not_before", "next_attempt_at", "created_at", "updated_at", "sent_at")


@dataclass(frozen=True)
class OutboxRow:
    """A message queued for SMTP, and where its sending stands."""

    id: int
    message_id: str
    kind: str
    client_id: str | None
    draft_id: int | None
    deadline_id: int | None
    sender: str
    recipients: tuple[str, ...]
    raw: bytes
    state: OutboxState
    attempts: int
    not_before: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None
    server_reply: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    draft_version: int | None = None  # the version a release row carries


def to_outbox(row: dict[str, Any]) -> OutboxRow:
    return OutboxRow(**{
        **row,
        "recipients": json_tuple(row["recipients"]),
        "raw": bytes(row["raw"]),
        **{k: from_utc_text(row[k]) for k in _TIMES},
    })
