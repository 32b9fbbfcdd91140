"""The stored rows only the daemon's own steps and `parting status` read, made on first use.

Why a module of its own: each frozen dataclass costs about a millisecond to create at import
(its methods are generated and compiled), and the typed listings (`parting drafts`, `outbox`,
`deadlines`) read none of these. Each listing's own rows have a module too (draft_rows.py,
outbox_rows.py, deadline_rows.py), and so has what a history holds besides messages
(history_rows.py). The mixins import a class, or its converter from a SQLite row (`to_...`),
inside the method that needs it; daemon.adapters.store exports every name as before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from daemon.core.model import Direction, Envelope

from .base import from_json, from_utc_text, json_tuple


@dataclass(frozen=True)
class FolderState:
    """How far a folder was read: its UIDVALIDITY, the last UID stored, its HIGHESTMODSEQ."""

    name: str
    uidvalidity: int
    last_uid: int
    highestmodseq: int | None


@dataclass(frozen=True)
class QuarantineItem:
    """A message that could not be read, set aside with the reason (never a crash loop)."""

    folder: str
    uidvalidity: int
    uid: int
    reason: str
    content_hash: str | None
    size: int | None
    at: datetime


@dataclass(frozen=True)
class TriageItem:
    """A message a person should look at (no client matched, or a reply that could not be judged)."""

    id: int
    message_id: str
    client_id: str | None
    reason: str
    at: datetime
    closed_at: datetime | None
    closed_by: str | None
    note: str | None


def to_triage(row: dict[str, Any]) -> TriageItem:
    return TriageItem(
        id=row["id"], message_id=row["message_id"], client_id=row["client_id"],
        reason=row["reason"], at=from_utc_text(row["at"]), closed_at=from_utc_text(row["closed_at"]),
        closed_by=row["closed_by"], note=row["note"],
    )


@dataclass(frozen=True)
class MessageRow:
    """One row of the messages table."""

    message_id: str
    client_id: str | None
    thread_id: str
    direction: Direction
    at: datetime
    subject: str
    from_addr: str
    to_addrs: tuple[str, ...] = ()
    cc_addrs: tuple[str, ...] = ()
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    thread_index_root: str | None = None
    norm_subject: str = ""
    auto_reply: str | None = None
    bounce: bool = False
    question: bool = False
    tagged: bool = False
    parting_kind: str | None = None
    content_hash: str | None = None
    size: int | None = None
    from_staff: bool = False
    ingested_at: datetime | None = None
    body_text: str | None = None
    # Authentication-Results headers, topmost first: kept, like bodies, for staff replies only.
    auth_results: tuple[str, ...] = ()
    # Staff replies only: (field, count) of the fields RFC 5322 allows once (None: not counted,
    # as for rows stored before schema v3), and the Date header as written.
    header_counts: tuple[tuple[str, int], ...] | None = None
    date_header: datetime | None = None
    # The provider's stamps (name, value), topmost first: the same, for core/evidence.py.
    evidence_headers: tuple[tuple[str, str], ...] = ()

    def envelope(self) -> Envelope:
        return Envelope(
            message_id=self.message_id, client_id=self.client_id, thread_id=self.thread_id,
            direction=self.direction, at=self.at, subject=self.subject, from_addr=self.from_addr,
            auto_reply=self.auto_reply, bounce=self.bounce, question=self.question,
            tagged=self.tagged, parting_kind=self.parting_kind,
        )


MessageLocation = tuple[MessageRow, str, int, int]  # (row, folder, uidvalidity, uid)


def _counts(text: str | None) -> tuple[tuple[str, int], ...] | None:
    return None if text is None else tuple((str(k), int(v)) for k, v in json.loads(text).items())


def to_message(row: dict[str, Any]) -> MessageRow:
    return MessageRow(
        message_id=row["message_id"], client_id=row["client_id"], thread_id=row["thread_id"],
        direction=row["direction"], at=from_utc_text(row["at"]), subject=row["subject"],
        from_addr=row["from_addr"], to_addrs=json_tuple(row["to_addrs"]),
        cc_addrs=json_tuple(row["cc_addrs"]), in_reply_to=json_tuple(row["in_reply_to"]),
        references=json_tuple(row["references"]), thread_index_root=row["thread_index_root"],
        norm_subject=row["norm_subject"], auto_reply=row["auto_reply"],
        bounce=bool(row["bounce"]), question=bool(row["question"]), tagged=bool(row["tagged"]),
        parting_kind=row["parting_kind"], content_hash=row["content_hash"], size=row["size"],
        from_staff=bool(row["from_staff"]), ingested_at=from_utc_text(row["ingested_at"]),
        body_text=row["body_text"], auth_results=json_tuple(row["auth_results"]),
        header_counts=_counts(row.get("header_counts")), date_header=from_utc_text(row.get("date_header")),
        evidence_headers=tuple((str(pair[0]), str(pair[1])) for pair in json.loads(row.get("evidence_headers") or "[]")),
    )


@dataclass(frozen=True)
class Notice:
    """A notice parting sent a person about a client (its kind and the episode it belongs to)."""

    id: int
    client_id: str
    kind: str
    episode: str
    at: datetime


@dataclass(frozen=True)
class DraftVersion:
    """One version of a release draft's text, and who wrote it."""

    draft_id: int
    version: int
    text: str
    text_sha256: str
    writer: str  # a person id, or "parting" for the generated first version
    created_at: datetime


@dataclass(frozen=True)
class TokenRow:
    """A reply token: what it answers for (a draft version, a deadline, a notice, a triage item), whom
    it was issued to, and when it expires or was used."""

    token_id: str
    token_mac: str
    subject_kind: Literal["draft", "deadline", "notice", "triage"]
    subject_id: int
    version: int | None
    text_sha256: str | None
    person: str
    role: str
    expires_at: datetime
    review_message_id: str | None
    issued_at: datetime
    used_at: datetime | None = None
    used_by_message_id: str | None = None


def to_token(row: dict[str, Any]) -> TokenRow:
    times = ("expires_at", "issued_at", "used_at")
    return TokenRow(**{**row, **{k: from_utc_text(row[k]) for k in times}})


@dataclass(frozen=True)
class Event:
    """One entry of the audit log (events table): what happened, to whom, with which messages."""

    id: int
    at: datetime
    kind: str
    client_id: str | None
    draft_id: int | None
    message_ids: tuple[str, ...]
    data: dict[str, Any] | None
    policy_hash: str | None


def to_event(row: dict[str, Any]) -> Event:
    return Event(
        id=row["id"],
        at=from_utc_text(row["at"]),
        kind=row["kind"],
        client_id=row["client_id"],
        draft_id=row["draft_id"],
        message_ids=json_tuple(row["message_ids"]),
        data=from_json(row["data"]),
        policy_hash=row["policy_hash"],
    )


@dataclass(frozen=True)
class LearnedAddress:
    """An address a person assigned to a client in triage (`triage assign --learn-address`)."""

    address: str
    client_id: str
    by: str
    at: datetime
    message_id: str | None


@dataclass(frozen=True)
class Note:
    """A note a person added to a client's case file."""

    id: int
    client_id: str
    author: str
    text: str
    at: datetime
