"""The rows `parting drafts` lists: a draft and an endorsement as stored. Imported where they are
read, so `parting outbox` and `parting deadlines` never create them (see rows.py for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .base import from_json, from_utc_text

if TYPE_CHECKING:
    from .clients import Episode
    from .review import DraftKind


@dataclass(frozen=True)
class Draft:
    """A draft (a release or a nudge) and where it stands in review."""

    id: int
    client_id: str
    kind: DraftKind
    state: str
    created_at: datetime
    updated_at: datetime
    episode: Episode | None
    current_version: int
    hold_until: datetime | None
    subject: str
    envelope: dict[str, Any] | None = None  # the release's frozen recipients, subject and threading


@dataclass(frozen=True)
class Endorsement:
    """One person's part in one version of a draft (wrote or approved it), and the reply it came by."""

    draft_id: int
    version: int
    person: str
    role: str
    how: Literal["wrote", "approved"]
    at: datetime
    via_message_id: str | None
    auth_verdict: dict[str, Any] | None


def to_endorsement(row: dict[str, Any]) -> Endorsement:
    return Endorsement(**{**row, "at": from_utc_text(row["at"]), "auth_verdict": from_json(row["auth_verdict"])})


def to_draft(row: dict[str, Any]) -> Draft:
    return Draft(**{
        **row,
        "created_at": from_utc_text(row["created_at"]),
        "updated_at": from_utc_text(row["updated_at"]),
        "hold_until": from_utc_text(row["hold_until"]),
        "envelope": from_json(row.get("envelope")),
    })
