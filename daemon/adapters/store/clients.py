"""Per-client state: paused or not, the latest verdict, the ladder steps taken, case-file notes.

Rules:
- A ladder step is taken at most once per (client, episode, action); record_step says whether
  this call was the one that took it, so two workers never both nudge.
- Only the latest verdict per client is kept here; the history of verdicts is in events.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import StoreBase, from_json, from_utc_text, to_json, to_utc_text

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .rows import Note

Episode = int | str  # chosen by the core; stored as given


class ClientsMixin(StoreBase):
    # -- paused ----------------------------------------------------------------------------------

    def set_paused(self, client_id: str, paused: bool, at: datetime) -> None:
        self._write(
            "INSERT INTO client_state (client_id, paused, paused_changed_at) VALUES (?, ?, ?)"
            " ON CONFLICT (client_id) DO UPDATE SET paused = excluded.paused,"
            " paused_changed_at = excluded.paused_changed_at",
            [client_id, int(paused), to_utc_text(at)],
        )

    def paused_clients(self) -> set[str]:
        return {r["client_id"] for r in self._rows("SELECT client_id FROM client_state WHERE paused")}

    # -- verdicts --------------------------------------------------------------------------------

    def save_verdict(self, client_id: str, verdict: dict[str, Any], at: datetime) -> None:
        """Keep this as the client's latest verdict (replacing the previous one)."""
        self._write(
            "INSERT INTO verdicts (client_id, verdict, at) VALUES (?, ?, ?)"
            " ON CONFLICT (client_id) DO UPDATE SET verdict = excluded.verdict, at = excluded.at",
            [client_id, to_json(verdict), to_utc_text(at)],
        )

    def latest_verdicts(self, client_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Each client's latest verdict (of these clients only, when named)."""
        if client_ids is None:
            rows = self.conn.execute("SELECT client_id, verdict FROM verdicts ORDER BY client_id")
        else:
            rows = self.conn.execute(
                "SELECT client_id, verdict FROM verdicts WHERE client_id IN (SELECT value FROM json_each(?))"
                " ORDER BY client_id", [to_json(list(client_ids))])
        return {client_id: from_json(verdict) for client_id, verdict in rows}

    def clients_due(self, now: datetime) -> set[str]:
        """Clients whose latest verdict said it may change by `now` without new mail (next_due)."""
        rows = self.conn.execute(
            "SELECT client_id, json_extract(verdict, '$.next_due') FROM verdicts"
            " WHERE json_extract(verdict, '$.next_due') IS NOT NULL")
        return {client_id for client_id, due in rows if datetime.fromisoformat(due) <= now}

    # -- ladder ----------------------------------------------------------------------------------

    def record_step(
        self, client_id: str, episode: Episode, action: str, at: datetime, draft_id: int | None = None
    ) -> bool:
        """Take a ladder step; False if it was already taken in this episode."""
        cursor = self._write(
            "INSERT OR IGNORE INTO ladder_steps (client_id, episode, action, at, draft_id)"
            " VALUES (?, ?, ?, ?, ?)",
            [client_id, episode, action, to_utc_text(at), draft_id],
        )
        return cursor.rowcount == 1

    def steps_done(self, client_id: str, episode: Episode) -> set[str]:
        return {
            r["action"] for r in self._rows(
                "SELECT action FROM ladder_steps WHERE client_id = ? AND episode = ?",
                [client_id, episode])
        }

    # -- case-file notes -------------------------------------------------------------------------

    def add_note(self, client_id: str, author: str, text: str, at: datetime) -> int:
        return self._insert(
            "INSERT INTO casefile_notes (client_id, author, text, at) VALUES (?, ?, ?, ?)",
            [client_id, author, text, to_utc_text(at)],
        )

    def notes(self, client_id: str) -> list[Note]:
        """The client's case-file notes, oldest first."""
        from .rows import Note

        return [
            Note(**{**r, "at": from_utc_text(r["at"])}) for r in self._rows(
                "SELECT * FROM casefile_notes WHERE client_id = ? ORDER BY at, id", [client_id])
        ]
