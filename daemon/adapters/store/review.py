"""Drafts, their versions, who endorsed which exact text, review tokens, handled replies.

Rules:
- A version's text never changes: a new text is a new version. Endorsements name the version.
- A person endorses a version at most once (UNIQUE): endorse() says whether this call counted.
- A token is used at most once (UPDATE ... WHERE used_at IS NULL), and one reply message uses at
  most one token (UNIQUE used_by_message_id): a replayed or re-fetched reply changes nothing.
- A reply is processed once, even across restarts: mark_reply_processed is the record.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .base import (
    StoreBase,
    StoreError,
    from_utc_text,
    maybe_utc_text,
    to_json,
    to_utc_text,
)
from .clients import Episode

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .draft_rows import Draft, Endorsement
    from .rows import DraftVersion, TokenRow

DraftKind = Literal["release", "nudge"]


class ReviewMixin(StoreBase):
    # -- drafts ----------------------------------------------------------------------------------

    def create_draft(
        self,
        client_id: str,
        kind: DraftKind,
        subject: str,
        text: str,
        text_sha256: str,
        writer: str,
        episode: Episode | None,
        at: datetime,
        state: str,
        envelope: dict[str, Any] | None = None,
    ) -> int:
        """A new draft with its first version; returns the draft id."""
        stamp = to_utc_text(at)
        with self.transaction():
            cursor = self.db.execute(
                "INSERT INTO drafts (client_id, kind, state, created_at, updated_at, episode,"
                " current_version, subject, envelope) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)",
                [client_id, kind, state, stamp, stamp, episode, subject, to_json(envelope)],
            )
            draft_id = cursor.lastrowid
            if draft_id is None:
                raise StoreError("no row id after INSERT INTO drafts")
            self.db.execute(
                "INSERT INTO draft_versions (draft_id, version, text, text_sha256, writer, created_at)"
                " VALUES (?, 1, ?, ?, ?, ?)",
                [draft_id, text, text_sha256, writer, stamp],
            )
        return draft_id

    def add_version(self, draft_id: int, text: str, text_sha256: str, writer: str, at: datetime) -> int:
        """A new text for the draft, which becomes its current version; returns the version."""
        stamp = to_utc_text(at)
        with self.transaction():
            version = self.draft(draft_id).current_version + 1
            self.db.execute(
                "INSERT INTO draft_versions (draft_id, version, text, text_sha256, writer, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [draft_id, version, text, text_sha256, writer, stamp],
            )
            self.db.execute(
                "UPDATE drafts SET current_version = ?, updated_at = ? WHERE id = ?",
                [version, stamp, draft_id],
            )
        return version

    def draft(self, draft_id: int) -> Draft:
        from .draft_rows import to_draft

        row = self._one("SELECT * FROM drafts WHERE id = ?", [draft_id])
        if row is None:
            raise StoreError(f"no draft {draft_id}")
        return to_draft(row)

    def drafts(self, states: list[str] | None = None, client_id: str | None = None) -> list[Draft]:
        """Drafts in creation order, optionally only in these states or for one client."""
        from .draft_rows import to_draft

        return [to_draft(r) for r in self._filtered("drafts", "id", states, client_id)]

    def draft_count(self, states: list[str]) -> int:
        """How many drafts are in these states."""
        return self._state_count("drafts", states)

    def versions(self, draft_id: int) -> list[DraftVersion]:
        from .rows import DraftVersion

        return [
            DraftVersion(**{**r, "created_at": from_utc_text(r["created_at"])})
            for r in self._rows(
                "SELECT * FROM draft_versions WHERE draft_id = ? ORDER BY version", [draft_id])
        ]

    def latest_writers(self) -> dict[int, str]:
        """Every draft's id -> the writer of its latest version (one query, no texts: the listing)."""
        return {r["draft_id"]: r["writer"] for r in self._rows(
            "SELECT v.draft_id, v.writer FROM draft_versions AS v"
            " JOIN (SELECT draft_id, max(version) AS version FROM draft_versions GROUP BY draft_id) AS latest"
            " ON latest.draft_id = v.draft_id AND latest.version = v.version")}

    def set_draft_state(
        self, draft_id: int, state: str, at: datetime, hold_until: datetime | None = None
    ) -> None:
        """Move the draft to `state`; hold_until is kept only for the state that sets it."""
        cursor = self._write(
            "UPDATE drafts SET state = ?, updated_at = ?, hold_until = ? WHERE id = ?",
            [state, to_utc_text(at), maybe_utc_text(hold_until), draft_id],
        )
        if cursor.rowcount == 0:
            raise StoreError(f"no draft {draft_id}")

    # -- endorsements ----------------------------------------------------------------------------

    def endorse(
        self,
        draft_id: int,
        version: int,
        person: str,
        role: str,
        how: Literal["wrote", "approved"],
        at: datetime,
        via_message_id: str | None = None,
        auth_verdict: dict[str, Any] | None = None,
    ) -> bool:
        """Record that `person` endorsed this exact version; False if they already had."""
        with self.transaction():
            if self._scalar(
                "SELECT 1 FROM draft_versions WHERE draft_id = ? AND version = ?", [draft_id, version]
            ) is None:
                raise StoreError(f"draft {draft_id} has no version {version}")
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO endorsements"
                " (draft_id, version, person, role, how, at, via_message_id, auth_verdict)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [draft_id, version, person, role, how, to_utc_text(at), via_message_id,
                 to_json(auth_verdict)],
            )
            return cursor.rowcount == 1

    def endorsements(self, draft_id: int, version: int) -> list[Endorsement]:
        from .draft_rows import to_endorsement

        return [
            to_endorsement(r) for r in self._rows(
                "SELECT * FROM endorsements WHERE draft_id = ? AND version = ? ORDER BY at, rowid",
                [draft_id, version])
        ]

    def current_endorsements(self) -> dict[int, list[Endorsement]]:
        """Every draft's id -> the endorsements of its current version, as `endorsements` orders
        them (one query for the listing, not one a draft); drafts without any are left out."""
        from .draft_rows import to_endorsement

        found: dict[int, list[Endorsement]] = {}
        for r in self._rows(
                "SELECT e.* FROM endorsements AS e JOIN drafts AS d"
                " ON d.id = e.draft_id AND e.version = d.current_version ORDER BY e.draft_id, e.at, e.rowid"):
            found.setdefault(r["draft_id"], []).append(to_endorsement(r))
        return found

    # -- tokens ----------------------------------------------------------------------------------

    def issue_token(self, record: TokenRow) -> None:
        """Store a newly issued token (its MAC, never the key)."""
        try:
            self._write(
                "INSERT INTO tokens (token_id, token_mac, subject_kind, subject_id, version,"
                " text_sha256, person, role, expires_at, review_message_id, issued_at, used_at,"
                " used_by_message_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [record.token_id, record.token_mac, record.subject_kind, record.subject_id,
                 record.version, record.text_sha256, record.person, record.role,
                 to_utc_text(record.expires_at), record.review_message_id,
                 to_utc_text(record.issued_at), maybe_utc_text(record.used_at),
                 record.used_by_message_id],
            )
        except sqlite3.IntegrityError as error:
            raise StoreError(f"cannot store token {record.token_id}: {error}") from None

    def token(self, token_id: str) -> TokenRow | None:
        from .rows import to_token

        row = self._one("SELECT * FROM tokens WHERE token_id = ?", [token_id])
        return None if row is None else to_token(row)

    def use_token(self, token_id: str, at: datetime, message_id: str) -> bool:
        """Spend the token for this reply; True only for the one call that spent it."""
        try:
            cursor = self._write(
                "UPDATE tokens SET used_at = ?, used_by_message_id = ?"
                " WHERE token_id = ? AND used_at IS NULL",
                [to_utc_text(at), message_id, token_id],
            )
        except sqlite3.IntegrityError:
            return False  # this message already spent another token
        return cursor.rowcount == 1

    def revoke_tokens(self, subject_kind: str, subject_id: int, at: datetime) -> int:
        """Every unused token of this subject dies now (its draft moved on); returns how many.

        A revoked token reads as used (used_at set, no reply message named)."""
        return self._write(
            "UPDATE tokens SET used_at = ? WHERE subject_kind = ? AND subject_id = ? AND used_at IS NULL",
            [to_utc_text(at), subject_kind, subject_id]).rowcount

    def tokens_for(self, subject_kind: str, subject_id: int) -> list[TokenRow]:
        from .rows import to_token

        return [to_token(r) for r in self._rows(
            "SELECT * FROM tokens WHERE subject_kind = ? AND subject_id = ? ORDER BY issued_at, token_id",
            [subject_kind, subject_id])]

    # -- replies ---------------------------------------------------------------------------------

    def processed_reply(self, message_id: str) -> bool:
        return self._scalar("SELECT 1 FROM processed_replies WHERE message_id = ?", [message_id]) is not None

    def mark_reply_processed(self, message_id: str, outcome: str, at: datetime) -> bool:
        """Record how a reply was handled; False if it had been handled before."""
        cursor = self._write(
            "INSERT OR IGNORE INTO processed_replies (message_id, outcome, at) VALUES (?, ?, ?)",
            [message_id, outcome, to_utc_text(at)],
        )
        return cursor.rowcount == 1

    def unprocessed_staff_replies(self) -> list[str]:
        """Staff replies kept with their text and not handled yet, oldest first."""
        return [r["message_id"] for r in self._rows(
            "SELECT message_id FROM messages WHERE from_staff = 1 AND body_text IS NOT NULL"
            " AND message_id NOT IN (SELECT message_id FROM processed_replies) ORDER BY at, rowid")]

    def reply_outcome(self, message_id: str) -> str | None:
        return self._scalar("SELECT outcome FROM processed_replies WHERE message_id = ?", [message_id])
