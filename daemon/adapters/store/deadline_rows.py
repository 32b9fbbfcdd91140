"""The row `parting deadlines` lists, made on first use as the other kinds of row are (rows.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import from_json, from_utc_text

if TYPE_CHECKING:
    from .deadlines import DeadlineState


@dataclass(frozen=True)
class Deadline:
    """A follow-up deadline (the phone call, the retrospective) and its reminders."""

    id: int
    kind: str  # 'phone_call', 'retrospective', 'review_reminder', ...
    client_id: str
    draft_id: int | None
    due_at: datetime
    state: DeadlineState
    data: dict[str, Any] | None
    created_at: datetime
    reminded_at: datetime | None
    closed_at: datetime | None
    closed_by: str | None
    note: str | None


def to_deadline(row: dict[str, Any]) -> Deadline:
    times = ("due_at", "created_at", "reminded_at", "closed_at")
    return Deadline(**{**row, "data": from_json(row["data"]), **{k: from_utc_text(row[k]) for k in times}})
