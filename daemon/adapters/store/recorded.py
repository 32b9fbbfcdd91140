"""What a person recorded about a client outside the mailbox, and the owner notices that take replies.

Rules:
- A recorded row is never updated or deleted: an answer by phone or an owner change is a fact
  of the case file. Each stands in the client's history (`envelopes`) as a real reply at its
  `at` would, with `recorded` naming what it was, so the policy starts a new episode there and
  explain and the case file show it.
- A notice row only gives an owner email an id for its token (tokens name an integer subject).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core.model import Envelope

from .base import StoreError, from_utc_text, to_utc_text
from .bounces import BouncesMixin

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .history_rows import Recorded
    from .rows import Notice

RECORDED_KINDS = ("answered", "owner_changed")


class RecordedMixin(BouncesMixin):
    def add_recorded(self, client_id: str, kind: str, *, how: str, note: str, by: str, at: datetime,
                     recorded_at: datetime, via: str) -> Recorded:
        if kind not in RECORDED_KINDS:
            raise StoreError(f"unknown kind of record {kind!r}")
        cursor = self._write(
            "INSERT INTO recorded (client_id, kind, how, note, by, at, recorded_at, via)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [client_id, kind, how, note, by, to_utc_text(at), to_utc_text(recorded_at), via])
        return self.recorded_row(int(cursor.lastrowid or 0))

    def recorded_row(self, record_id: int) -> Recorded:
        from .history_rows import to_recorded

        row = self._one("SELECT * FROM recorded WHERE id = ?", [record_id])
        if row is None:
            raise StoreError(f"no record {record_id}")
        return to_recorded(row)

    def recorded(self, client_id: str | None = None, kind: str | None = None) -> list[Recorded]:
        where, params = ["1"], []
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        rows = self._rows(f"SELECT * FROM recorded WHERE {' AND '.join(where)} ORDER BY at, id", params)
        if not rows:  # the reports read every history: no row class when nothing was recorded
            return []
        from .history_rows import to_recorded

        return [to_recorded(r) for r in rows]

    def add_notice(self, client_id: str, kind: str, episode: str, at: datetime) -> int:
        cursor = self._write("INSERT INTO notices (client_id, kind, episode, at) VALUES (?, ?, ?, ?)",
                             [client_id, kind, episode, to_utc_text(at)])
        return int(cursor.lastrowid or 0)

    def notice(self, notice_id: int) -> Notice:
        from .rows import Notice

        row = self._one("SELECT * FROM notices WHERE id = ?", [notice_id])
        if row is None:
            raise StoreError(f"no notice {notice_id}")
        return Notice(**{**row, "at": from_utc_text(row["at"])})

    # -- owners as last read from the configuration ------------------------------------------------

    def known_owners(self) -> dict[str, str]:
        return {r["client_id"]: r["owner"] for r in self._rows("SELECT client_id, owner FROM client_owners")}

    def set_owner(self, client_id: str, owner: str, since: datetime) -> None:
        self._write("INSERT INTO client_owners (client_id, owner, since) VALUES (?, ?, ?)"
                    " ON CONFLICT (client_id) DO UPDATE SET owner = excluded.owner, since = excluded.since",
                    [client_id, owner, to_utc_text(since)])

    # -- the policy's view: recorded facts stand in the history ------------------------------------

    def envelopes(self, client_id: str) -> list[Envelope]:
        history = super().envelopes(client_id)
        extra = [r.envelope() for r in self.recorded(client_id)]
        return sorted([*history, *extra], key=lambda env: (env.at, env.message_id)) if extra else history
