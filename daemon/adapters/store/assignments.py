"""Triage decisions that change whose a message is: assigned messages and learned addresses.

Rules:
- A message is assigned once (the first assignment stands); it then belongs to that client's
  history (`envelopes`) as if it had been classified so, at its own time.
- A learned address belongs to one client; ingest classifies later mail from it as that
  client's. Learning it again for another client is refused: a person fixes the YAML instead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core.model import Envelope

from .base import StoreError, from_utc_text, to_utc_text
from .recorded import RecordedMixin

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .rows import LearnedAddress


class AssignmentsMixin(RecordedMixin):
    def assign_message(self, message_id: str, client_id: str, by: str, at: datetime) -> bool:
        """True if this call assigned the message (False: it already was)."""
        if self.message(message_id) is None:
            raise StoreError(f"no message {message_id}")
        cursor = self._write("INSERT OR IGNORE INTO message_assignments (message_id, client_id, by, at)"
                             " VALUES (?, ?, ?, ?)", [message_id, client_id, by, to_utc_text(at)])
        return cursor.rowcount == 1

    def assigned_client(self, message_id: str) -> str | None:
        value = self._scalar("SELECT client_id FROM message_assignments WHERE message_id = ?", [message_id])
        return None if value is None else str(value)

    def learn_address(self, address: str, client_id: str, by: str, at: datetime, message_id: str | None) -> bool:
        """Keep `address` as the client's; True if it was new, StoreError if another client has it."""
        known = self._scalar("SELECT client_id FROM learned_addresses WHERE address = ?", [address])
        if known is not None and known != client_id:
            raise StoreError(f"{address} is already a learned address of {known}")
        cursor = self._write("INSERT OR IGNORE INTO learned_addresses (address, client_id, by, at, message_id)"
                             " VALUES (?, ?, ?, ?, ?)", [address, client_id, by, to_utc_text(at), message_id])
        return cursor.rowcount == 1

    def learned_addresses(self) -> list[LearnedAddress]:
        rows = self._rows("SELECT * FROM learned_addresses ORDER BY client_id, address")
        if not rows:  # as events(): no row class for an empty answer
            return []
        from .rows import LearnedAddress

        return [LearnedAddress(r["address"], r["client_id"], r["by"], from_utc_text(r["at"]), r["message_id"])
                for r in rows]

    # -- the policy's view: assigned messages join the client's history ----------------------------

    def _assigned(self, client_id: str | None) -> dict[str, list[Envelope]]:
        where, params = ("WHERE a.client_id = ?", [client_id]) if client_id else ("", [])
        found: dict[str, list[Envelope]] = {}
        for row in self._rows(f"SELECT a.message_id, a.client_id FROM message_assignments AS a {where}", params):
            message = self.message(row["message_id"])
            if message is not None and message.client_id is None:
                found.setdefault(row["client_id"], []).append(replace(message.envelope(), client_id=row["client_id"]))
        return found

    def envelopes(self, client_id: str) -> list[Envelope]:
        history = super().envelopes(client_id)
        extra = self._assigned(client_id).get(client_id, [])
        return sorted([*history, *extra], key=lambda env: (env.at, env.message_id)) if extra else history

