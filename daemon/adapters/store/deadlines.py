"""Deadlines a person must meet: the follow-up phone call, the retrospective, review reminders.

Rules:
- One deadline per (kind, client, draft): adding it again returns the existing one, so a restart
  that repeats a decision never doubles a phone call.
- A deadline is reminded about once (reminded_at) and closed once, as done or cancelled.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .base import StoreBase, StoreError, to_json, to_utc_text

if TYPE_CHECKING:  # made where a row is read (deadline_rows.py): the other listings need none of it
    from .deadline_rows import Deadline

DeadlineState = Literal["open", "done", "cancelled"]


class DeadlinesMixin(StoreBase):
    def add_deadline(
        self,
        kind: str,
        client_id: str,
        due_at: datetime,
        at: datetime,
        *,
        draft_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> int:
        """Set a deadline; returns its id (the existing one if this kind was already set)."""
        with self.transaction():
            self.db.execute(
                "INSERT OR IGNORE INTO deadlines (kind, client_id, draft_id, due_at, data, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [kind, client_id, draft_id, to_utc_text(due_at), to_json(data), to_utc_text(at)],
            )
            return int(self._scalar(
                "SELECT id FROM deadlines WHERE kind = ? AND client_id = ? AND ifnull(draft_id, 0) = ?",
                [kind, client_id, draft_id or 0]))

    def due_deadlines(self, now: datetime) -> list[Deadline]:
        """Open deadlines that are due and nobody has been reminded of yet, earliest first."""
        from .deadline_rows import to_deadline

        return [to_deadline(r) for r in self._rows(
            "SELECT * FROM deadlines WHERE state = 'open' AND due_at <= ? AND reminded_at IS NULL"
            " ORDER BY due_at, id", [to_utc_text(now)])]

    def mark_reminded(self, deadline_id: int, at: datetime) -> None:
        cursor = self._write(
            "UPDATE deadlines SET reminded_at = ? WHERE id = ?", [to_utc_text(at), deadline_id])
        if cursor.rowcount == 0:
            raise StoreError(f"no deadline {deadline_id}")

    def close_deadline(
        self,
        deadline_id: int,
        state: Literal["done", "cancelled"],
        at: datetime,
        closed_by: str,
        note: str | None = None,
    ) -> bool:
        """Close an open deadline; True if this call closed it, False if it was already closed."""
        if state not in ("done", "cancelled"):
            raise StoreError(f"a deadline is closed as done or cancelled, not {state!r}")
        with self.transaction():
            self.deadline(deadline_id)
            cursor = self.db.execute(
                "UPDATE deadlines SET state = ?, closed_at = ?, closed_by = ?, note = ?"
                " WHERE id = ? AND state = 'open'",
                [state, to_utc_text(at), closed_by, note, deadline_id],
            )
            return cursor.rowcount == 1

    def deadlines(
        self, states: list[str] | None = None, client_id: str | None = None
    ) -> list[Deadline]:
        """Deadlines by due time, optionally only in these states or for one client."""
        from .deadline_rows import to_deadline

        return [to_deadline(r) for r in self._filtered("deadlines", "due_at, id", states, client_id)]

    def due_count(self, now: datetime) -> int:
        """How many open deadlines are due at `now` (due at or before it). Stored times are UTC
        ISO 8601 texts, which compare as the times they name ('+' sorts before '.', so a time
        without microseconds sorts before the same second with them)."""
        return self._state_count("deadlines", ["open"], "due_at <= ?", [to_utc_text(now)])

    def deadline(self, deadline_id: int) -> Deadline:
        from .deadline_rows import to_deadline

        row = self._one("SELECT * FROM deadlines WHERE id = ?", [deadline_id])
        if row is None:
            raise StoreError(f"no deadline {deadline_id}")
        return to_deadline(row)
