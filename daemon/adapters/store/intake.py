"""Where ingest stands in each IMAP folder, and what it could not file.

Rules:
- Folder state is what makes ingest resumable: the UIDVALIDITY seen and the last UID handled.
- A new UIDVALIDITY invalidates every UID of the folder: reset_folder drops the UID links
  (the messages themselves stay and are linked again by Message-ID on the next backfill).
- Quarantine holds messages that could not be read at all; triage holds messages that were read
  but need a person (no client found, ambiguous, ...). Both are idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import StoreBase, StoreError, from_utc_text, to_utc_text

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .rows import FolderState, QuarantineItem, TriageItem


class IntakeMixin(StoreBase):
    # -- folders ---------------------------------------------------------------------------------

    def folder_state(self, name: str) -> FolderState | None:
        from .rows import FolderState

        row = self._one("SELECT * FROM folders WHERE name = ?", [name])
        return None if row is None else FolderState(**row)

    def save_folder_state(
        self, name: str, uidvalidity: int, last_uid: int, highestmodseq: int | None = None
    ) -> None:
        self._write(
            "INSERT INTO folders (name, uidvalidity, last_uid, highestmodseq) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET uidvalidity = excluded.uidvalidity,"
            " last_uid = excluded.last_uid, highestmodseq = excluded.highestmodseq",
            [name, uidvalidity, last_uid, highestmodseq],
        )

    def reset_folder(self, name: str, new_uidvalidity: int) -> None:
        """Forget every UID link of the folder; start again from UID 0 under the new validity."""
        with self.transaction():
            self.db.execute("DELETE FROM message_uids WHERE folder = ?", [name])
            self.save_folder_state(name, new_uidvalidity, 0, None)

    # -- quarantine ------------------------------------------------------------------------------

    def quarantine(
        self,
        folder: str,
        uidvalidity: int,
        uid: int,
        reason: str,
        content_hash: str | None,
        size: int | None,
        at: datetime,
    ) -> bool:
        """Set aside a message that could not be read; True if it was not already set aside."""
        cursor = self._write(
            "INSERT OR IGNORE INTO quarantine"
            " (folder, uidvalidity, uid, reason, content_hash, size, at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [folder, uidvalidity, uid, reason, content_hash, size, to_utc_text(at)],
        )
        return cursor.rowcount == 1

    def quarantined(self, limit: int | None = None) -> list[QuarantineItem]:
        """Quarantined messages, newest first."""
        from .rows import QuarantineItem

        sql = "SELECT * FROM quarantine ORDER BY at DESC, folder, uidvalidity, uid"
        params: list[Any] = []
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [
            QuarantineItem(**{**row, "at": from_utc_text(row["at"])})
            for row in self._rows(sql, params)
        ]

    def quarantine_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM quarantine"))

    # -- triage ----------------------------------------------------------------------------------

    def add_triage(self, message_id: str, client_id: str | None, reason: str, at: datetime) -> bool:
        """Ask a person to look at a message; True if this (message, reason) was new."""
        cursor = self._write(
            "INSERT OR IGNORE INTO triage (message_id, client_id, reason, at) VALUES (?, ?, ?, ?)",
            [message_id, client_id, reason, to_utc_text(at)],
        )
        return cursor.rowcount == 1

    def triage(self, open_only: bool = True) -> list[TriageItem]:
        """Triage items, oldest first."""
        where = "WHERE closed_at IS NULL" if open_only else ""
        rows = self._rows(f"SELECT * FROM triage {where} ORDER BY at, id")
        if not rows:  # as events(): no row class for an empty answer
            return []
        from .rows import to_triage

        return [to_triage(r) for r in rows]

    def triage_count(self) -> int:
        """How many triage items are open."""
        return int(self._scalar("SELECT count(*) FROM triage WHERE closed_at IS NULL"))

    def close_triage(self, triage_id: int, at: datetime, closed_by: str, note: str | None = None) -> bool:
        """Mark a triage item handled; True if this call closed it."""
        with self.transaction():
            if self._scalar("SELECT 1 FROM triage WHERE id = ?", [triage_id]) is None:
                raise StoreError(f"no triage item {triage_id}")
            cursor = self.db.execute(
                "UPDATE triage SET closed_at = ?, closed_by = ?, note = ?"
                " WHERE id = ? AND closed_at IS NULL",
                [to_utc_text(at), closed_by, note, triage_id],
            )
            return cursor.rowcount == 1
