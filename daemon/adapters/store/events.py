"""The append-only audit trail: every decision with its inputs.

SQLite triggers refuse UPDATE and DELETE on the table, so not even a bug in parting can
rewrite history; the case file and `explain` read from here. Only the kinds and data keys
daemon/core/events.py declares are written.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import StoreBase, to_json, to_utc_text

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .rows import Event


class EventsMixin(StoreBase):
    def append_event(
        self,
        kind: str,
        *,
        at: datetime,
        client_id: str | None = None,
        draft_id: int | None = None,
        message_ids: Iterable[str] = (),
        data: dict[str, Any] | None = None,
        policy_hash: str | None = None,
    ) -> int:
        """Record one event; returns its id (ids grow with time and are never reused).

        The kind and its data keys must be declared in daemon/core/events.py (UndeclaredEvent
        otherwise): events are kept forever, so a key a writer renames on its own would
        silently blank what every old case file shows."""
        from daemon.core.events import check as check_event  # here: reading events needs no vocabulary (nor holidays)

        check_event(kind, data)
        return self._insert(
            "INSERT INTO events (at, kind, client_id, draft_id, message_ids, data, policy_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [to_utc_text(at), kind, client_id, draft_id, to_json(list(message_ids)),
             to_json(data), policy_hash],
        )

    def events(
        self,
        *,
        client_id: str | None = None,
        kinds: Iterable[str] | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """Events in the order they were written, optionally filtered."""
        where: list[str] = ["1"]
        params: list[object] = []
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        if kinds is not None:
            where.append("kind IN (SELECT value FROM json_each(?))")
            params.append(to_json(list(kinds)))
        if after_id is not None:
            where.append("id > ?")
            params.append(after_id)
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._rows(sql, params)
        if not rows:  # the usual answer of `parting status`'s look for parked items: no row class needed
            return []
        from .rows import to_event

        return [to_event(row) for row in rows]

    def last_event(self) -> Event | None:
        """The newest event (after a restore: how far the restored copy reaches)."""
        from .rows import to_event

        row = self._one("SELECT * FROM events ORDER BY id DESC LIMIT 1")
        return None if row is None else to_event(row)
