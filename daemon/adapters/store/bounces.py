"""Delivery failures: which message of ours a bounce reported as not delivered, to whom, why.

Rules:
- One row per (bounce, recipient); storing the same bounce again adds nothing.
- The bounce's messages row is never updated (messages.py): the failures live here and are
  joined onto the bounce's Envelope when the policy reads a history (`envelopes`), so the
  policy sees them at the bounce's own time.
- The owner is told about a (message, recipient) once: `told_at` is set in the transaction that
  queues that mail.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from daemon.core.model import Envelope

from .base import to_json, to_utc_text
from .messages import MessagesMixin

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from daemon.core.model import DeliveryFailure

    from .history_rows import FailureRow


class BouncesMixin(MessagesMixin):
    def add_delivery_failures(self, bounce_message_id: str, client_id: str | None, at: datetime,
                              failures: tuple[DeliveryFailure, ...]) -> int:
        """Record what a bounce reports; returns how many rows were new."""
        added = 0
        with self.transaction():
            for failure in failures:
                added += self.db.execute(
                    "INSERT OR IGNORE INTO delivery_failures (bounce_message_id, recipient, original_message_id,"
                    " status, reason, client_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [bounce_message_id, failure.recipient, failure.original_message_id, failure.status,
                     failure.reason, client_id, to_utc_text(at)]).rowcount
        return added

    def delivery_failures(self, client_id: str | None = None, *, untold: bool = False) -> list[FailureRow]:
        from .history_rows import to_failure

        where, params = ["1"], []
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        if untold:
            where.append("told_at IS NULL")
        return [to_failure(r) for r in self._rows(
            f"SELECT * FROM delivery_failures WHERE {' AND '.join(where)} ORDER BY at, bounce_message_id, recipient",
            params)]

    def mark_failure_told(self, original_message_id: str, recipient: str, at: datetime) -> bool:
        """Every bounce of this message to this address is told; True if this call told it."""
        cursor = self._write(
            "UPDATE delivery_failures SET told_at = ? WHERE original_message_id = ? AND recipient = ?"
            " AND told_at IS NULL", [to_utc_text(at), original_message_id, recipient])
        return cursor.rowcount > 0

    # -- the policy's view: bounces carry their failures ------------------------------------------

    def envelopes(self, client_id: str) -> list[Envelope]:
        history = super().envelopes(client_id)
        return _carrying(history, self._failures_by_bounce([client_id]).get(client_id, {}))

    def _failures_by_bounce(self, client_ids: list[str]) -> dict[str, dict[str, list[DeliveryFailure]]]:
        """{client id: {bounce message id: the failures it reports}}: what `delivery_failures()`
        holds for these clients, in its order, as plain values (no FailureRow: every history
        reads them)."""
        from daemon.core.model import DeliveryFailure

        found: dict[str, dict[str, list[DeliveryFailure]]] = {}
        for client_id, bounce_id, original, recipient, status, reason in self.conn.execute(
                "SELECT client_id, bounce_message_id, original_message_id, recipient, status, reason"
                " FROM delivery_failures WHERE client_id IN (SELECT value FROM json_each(?))"
                " ORDER BY at, bounce_message_id, recipient", [to_json(client_ids)]):
            found.setdefault(client_id, {}).setdefault(bounce_id, []).append(
                DeliveryFailure(original, recipient, status, reason))
        return found


def _carrying(history: list[Envelope], by_bounce: dict[str, list[DeliveryFailure]]) -> list[Envelope]:
    """The history with each bounce carrying the failures it reports."""
    if not by_bounce:
        return history
    return [_bounce_with(env, tuple(by_bounce[env.message_id])) if env.message_id in by_bounce else env
            for env in history]


def _bounce_with(bounce: Envelope, failures: tuple[DeliveryFailure, ...]) -> Envelope:
    # dataclasses.replace reads every field back by name and calls __init__: ten times this copy
    # of the fields (Envelope's __init__ only fills __dict__ too), for hundreds of bounces a report.
    copied = object.__new__(Envelope)
    copied.__dict__.update(bounce.__dict__, delivery_failures=failures)
    return copied
