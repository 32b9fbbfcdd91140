"""The outbox: every message parting sends, and where its sending stands.

Rules (DESIGN.md "Sending: at most once, never silently lost"):
- A row is keyed by its deterministic Message-ID: enqueueing the same message twice is a no-op.
- claim_next moves one row to 'sending' and commits before the caller talks SMTP; two workers
  (threads or processes) never claim the same row because the claim is one BEGIN IMMEDIATE.
- A row is never deleted. Every state change checks the state it comes from; a move that does
  not fit raises StoreError saying why.

    queued -> sending -> sent
      ^          |-> queued (retry later)    |-> failed    |-> uncertain (crash during send)
      '-- resend (uncertain, failed)         cancel: queued, uncertain, failed -> cancelled
    After a restore from a replica: queued, uncertain, failed -> sent (found in the Sent folder);
    queued and due -> uncertain (not found: the lost writes may have sent it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from .base import (
    StoreBase,
    StoreError,
    maybe_utc_text,
    to_json,
    to_utc_text,
)

if TYPE_CHECKING:  # made where a row is read (outbox_rows.py): the other listings need none of it
    from .outbox_rows import OutboxRow

OutboxState = Literal["queued", "sending", "sent", "failed", "uncertain", "cancelled"]


# A release row, and the check that its draft is sendable at the row's version (alias `o`).
_RELEASE_ROW = "(o.draft_id IS NOT NULL AND o.kind IN ('release', 'nudge'))"
_MAY_LEAVE = ("EXISTS (SELECT 1 FROM drafts AS d WHERE d.id = o.draft_id AND d.state = 'sendable'"
              " AND (o.draft_version IS NULL OR o.draft_version = d.current_version))")

def _either(states: tuple[str, ...]) -> str:
    return " or ".join(states) if len(states) < 3 else f"{', '.join(states[:-1])} or {states[-1]}"


class OutboxMixin(StoreBase):
    def enqueue(
        self,
        message_id: str,
        kind: str,
        sender: str,
        recipients: Iterable[str],
        raw: bytes,
        at: datetime,
        *,
        client_id: str | None = None,
        draft_id: int | None = None,
        deadline_id: int | None = None,
        not_before: datetime | None = None,
        draft_version: int | None = None,
    ) -> int:
        """Queue a message for sending; returns its row id (the existing one if already queued).

        A second live release row for one draft raises StoreError (the unique index of #17)."""
        stamp = to_utc_text(at)
        with self.transaction():
            try:
                self.db.execute(
                    # Only a repeated Message-ID is a no-op; any other conflict (a second live
                    # release of a draft) must raise, so not INSERT OR IGNORE.
                    "INSERT INTO outbox (message_id, kind, client_id, draft_id, deadline_id,"
                    " sender, recipients, raw, not_before, created_at, updated_at, draft_version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                    [message_id, kind, client_id, draft_id, deadline_id, sender,
                     to_json(list(recipients)), bytes(raw), maybe_utc_text(not_before), stamp, stamp,
                     draft_version],
                )
            except sqlite3.IntegrityError as error:
                raise StoreError(f"cannot queue {kind} {message_id}: {error}") from None
            return int(self._scalar("SELECT id FROM outbox WHERE message_id = ?", [message_id]))

    def claim_next(self, now: datetime) -> OutboxRow | None:
        """Take the oldest row that is due, marked 'sending' and committed; None if none is due.

        A release row is claimed only while its draft is `sendable` at the row's version, checked
        in the claim's own transaction; a queued release row whose draft moved on is cancelled
        there (with a `release_cancelled` event), never sent."""
        from .outbox_rows import to_outbox

        stamp = to_utc_text(now)
        with self.transaction():
            for stale in self._rows(f"SELECT id, client_id, draft_id, message_id FROM outbox AS o"
                                    f" WHERE state = 'queued' AND {_RELEASE_ROW} AND NOT {_MAY_LEAVE}"):
                self.db.execute("UPDATE outbox SET state = 'cancelled', updated_at = ?,"
                                " last_error = 'its draft is no longer sendable at this version' WHERE id = ?",
                                [stamp, stale["id"]])
                self.append_event(  # type: ignore[attr-defined]
                                  "release_cancelled", at=now, client_id=stale["client_id"],
                                  draft_id=stale["draft_id"], message_ids=[stale["message_id"]],
                                  data={"outbox_rows": 1, "outbox_id": stale["id"], "by": "parting",
                                        "reason": "at the claim, its draft was no longer sendable at this version"})
            row = self._one(
                f"""UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = :now
                   WHERE id = (SELECT id FROM outbox AS o
                               WHERE state = 'queued'
                                 AND (not_before IS NULL OR not_before <= :now)
                                 AND (next_attempt_at IS NULL OR next_attempt_at <= :now)
                                 AND (NOT {_RELEASE_ROW} OR {_MAY_LEAVE})
                               ORDER BY created_at, id LIMIT 1)
                   RETURNING *""",
                {"now": stamp},
            )
        return None if row is None else to_outbox(row)

    def release_blocker(self, row: OutboxRow) -> str:
        """"" when this row may leave now; for a release row whose draft is not `sendable` at
        the row's version, why not (what `outbox resend` and `confirm` refuse with)."""
        if row.draft_id is None or row.kind not in ("release", "nudge"):
            return ""
        found = self._one("SELECT state, current_version FROM drafts WHERE id = ?", [row.draft_id])
        if found is None:
            return f"its draft {row.draft_id} is not in the store"
        if found["state"] != "sendable":
            return f"its draft {row.draft_id} is {found['state']}, not sendable"
        if row.draft_version is not None and row.draft_version != found["current_version"]:
            return (f"it carries version {row.draft_version} of draft {row.draft_id}, which is at"
                    f" version {found['current_version']}")
        return ""

    def release_rows_of(self, draft_id: int) -> list[OutboxRow]:
        """Every release (or nudge) row ever queued for the draft, oldest first."""
        from .outbox_rows import to_outbox

        return [to_outbox(r) for r in self._rows(
            "SELECT * FROM outbox WHERE draft_id = ? AND kind IN ('release', 'nudge') ORDER BY id", [draft_id])]

    def cancel_releases(self, draft_id: int, at: datetime) -> list[int]:
        """Cancel the draft's queued, failed or uncertain release rows; returns their ids.

        A row already `sending` is past stopping (the claim checked the draft just before)."""
        with self.transaction():
            ids = [r["id"] for r in self._rows(
                "SELECT id FROM outbox WHERE draft_id = ? AND kind IN ('release', 'nudge')"
                " AND state IN ('queued', 'failed', 'uncertain')", [draft_id])]
            for row_id in ids:
                self.db.execute("UPDATE outbox SET state = 'cancelled', updated_at = ? WHERE id = ?",
                                [to_utc_text(at), row_id])
        return ids

    def _move(
        self, row_id: int, allowed_from: tuple[str, ...], doing: str, sql_set: str, params: dict[str, Any]
    ) -> None:
        with self.transaction():
            state = self._scalar("SELECT state FROM outbox WHERE id = ?", [row_id])
            if state is None:
                raise StoreError(f"no outbox row {row_id}")
            if state not in allowed_from:
                raise StoreError(
                    f"cannot {doing} outbox row {row_id}: it is {state},"
                    f" and only {_either(allowed_from)} rows allow that"
                )
            self.db.execute(f"UPDATE outbox SET {sql_set} WHERE id = :id", {**params, "id": row_id})

    def mark_sent(self, row_id: int, server_reply: str | None, at: datetime) -> None:
        """The server accepted the message (or it was found in the Sent folder)."""
        stamp = to_utc_text(at)
        self._move(row_id, ("sending", "uncertain"), "mark as sent",
                   "state = 'sent', server_reply = :reply, sent_at = :at, updated_at = :at",
                   {"reply": server_reply, "at": stamp})

    def mark_found_in_sent(self, row_id: int, reason: str, at: datetime) -> None:
        """The message is in the Sent folder, though this row never recorded it leaving: a restored
        copy of the database lost the write (`sending`, `sent`, or a person's resend), so the row
        says sent without being sent again."""
        stamp = to_utc_text(at)
        self._move(row_id, ("queued", "sending", "uncertain", "failed"), "mark as found in Sent",
                   "state = 'sent', server_reply = :reply, sent_at = :at, updated_at = :at, next_attempt_at = NULL",
                   {"reply": reason, "at": stamp})

    def mark_retry(self, row_id: int, error: str, next_attempt_at: datetime, at: datetime) -> None:
        """A temporary failure: back to 'queued', not before next_attempt_at."""
        self._move(row_id, ("sending",), "retry",
                   "state = 'queued', last_error = :error, next_attempt_at = :next, updated_at = :at",
                   {"error": error, "next": to_utc_text(next_attempt_at), "at": to_utc_text(at)})

    def mark_failed(self, row_id: int, error: str, at: datetime) -> None:
        """A permanent failure: a person has to look (and may resend)."""
        self._move(row_id, ("sending", "queued"), "mark as failed",
                   "state = 'failed', last_error = :error, updated_at = :at",
                   {"error": error, "at": to_utc_text(at)})

    def mark_uncertain(self, row_id: int, at: datetime) -> None:
        """Found 'sending' after a crash (or 'queued' and due after a restore) and not in the Sent
        folder: a person decides."""
        self._move(row_id, ("sending", "queued"), "mark as uncertain",
                   "state = 'uncertain', updated_at = :at", {"at": to_utc_text(at)})

    def resend(self, row_id: int, at: datetime) -> None:
        """A person decided to send an uncertain or failed row again."""
        # A fresh start: the attempts before the person's decision do not count against the limit.
        self._move(row_id, ("uncertain", "failed"), "resend",
                   "state = 'queued', attempts = 0, next_attempt_at = NULL, updated_at = :at",
                   {"at": to_utc_text(at)})

    def cancel(self, row_id: int, at: datetime) -> None:
        self._move(row_id, ("queued", "uncertain", "failed"), "cancel",
                   "state = 'cancelled', updated_at = :at", {"at": to_utc_text(at)})

    def cancel_for_draft(self, draft_id: int, at: datetime) -> int:
        """Cancel the draft's queued rows (a late REJECT); returns how many were cancelled.

        Rows already sending or sent are left alone: they are past stopping."""
        cursor = self._write(
            "UPDATE outbox SET state = 'cancelled', updated_at = ? WHERE draft_id = ? AND state = 'queued'",
            [to_utc_text(at), draft_id],
        )
        return cursor.rowcount

    def rows(self, states: Iterable[str] | None = None) -> list[OutboxRow]:
        """Outbox rows in creation order, optionally only in these states."""
        from .outbox_rows import to_outbox

        if states is None:
            rows = self._rows("SELECT * FROM outbox ORDER BY created_at, id")
        else:
            rows = self._rows(
                "SELECT * FROM outbox WHERE state IN (SELECT value FROM json_each(?))"
                " ORDER BY created_at, id", [to_json(list(states))])
        return [to_outbox(r) for r in rows]

    def row_count(self, states: Iterable[str]) -> int:
        """How many outbox rows are in these states."""
        return self._state_count("outbox", list(states))

    def row(self, row_id: int) -> OutboxRow:
        from .outbox_rows import to_outbox

        found = self._one("SELECT * FROM outbox WHERE id = ?", [row_id])
        if found is None:
            raise StoreError(f"no outbox row {row_id}")
        return to_outbox(found)

    def sent_since(self, since: datetime) -> int:
        """How many messages were sent at or after `since` (for the hourly rate limit)."""
        return int(self._scalar(
            "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL AND sent_at >= ?",
            [to_utc_text(since)]))
