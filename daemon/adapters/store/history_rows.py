"""What a client's stored history holds besides messages: the failures bounces report and what
a person recorded. Made on first use, as rows.py (`parting explain` reads these two, none of those).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from daemon.core.model import DeliveryFailure, Envelope

from .base import from_utc_text


@dataclass(frozen=True)
class Recorded:
    """What a person recorded by hand (an answer by phone or in person, a change of owner)."""

    id: int
    client_id: str
    kind: str  # "answered" or "owner_changed"
    how: str  # answered: phone | meeting | other; owner_changed: "<old> -> <new>"
    note: str
    by: str
    at: datetime
    recorded_at: datetime
    via: str  # "command line", "reply <message id>", "reload"

    @property
    def message_id(self) -> str:
        return f"recorded-{self.id}@parting"

    def envelope(self) -> Envelope:
        label = f"answered:{self.how}" if self.kind == "answered" else self.kind
        return Envelope(self.message_id, self.client_id, "recorded", "in", self.at, self.note, self.by,
                        recorded=label)


def to_recorded(row: dict[str, Any]) -> Recorded:
    return Recorded(**{**row, "at": from_utc_text(row["at"]), "recorded_at": from_utc_text(row["recorded_at"])})


@dataclass(frozen=True)
class FailureRow:
    """One failure a bounce reports, as stored, and whether the owner was told."""

    bounce_message_id: str
    client_id: str | None
    at: datetime
    failure: DeliveryFailure
    told_at: datetime | None


def to_failure(row: dict[str, Any]) -> FailureRow:
    return FailureRow(row["bounce_message_id"], row["client_id"], from_utc_text(row["at"]),
                      DeliveryFailure(row["original_message_id"], row["recipient"], row["status"], row["reason"]),
                      from_utc_text(row["told_at"]))
