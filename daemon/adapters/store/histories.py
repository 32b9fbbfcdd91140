"""The stored histories the read-side commands judge: only as far back as a verdict reads.

Rules:
- `recent_histories` gives, for each client asked for, what `envelopes(client)` gives for it,
  less the messages dated before its `replies`-th latest real reply dated by `now` (the whole
  history when it has fewer, or when `replies` is None). core/policy.py `replies_read` says how
  many a policy needs; a verdict on what is left is the verdict on the whole history
  (tests/test_store_histories.py holds the two together).
- Always kept, whatever their date: every bounce that reports a failed delivery (a verdict looks
  up failures across the whole history), what a person recorded and the messages a person
  assigned (few, and each may be a real reply: keeping more than needed never changes a verdict).
  A client one of whose stored messages shares its id with a recorded entry is read whole, since
  which copy counts depends on all of them.
- The real replies are counted in SQL with the test core/rules.py `is_real_reply` makes, walking
  the messages_client_at index back from `now`: a few rows a client, however long its history.
  Stored times are UTC ISO 8601 texts of one width, so they compare as the times they name.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from contextlib import closing
from datetime import datetime

from daemon.core.model import Envelope

from .assignments import AssignmentsMixin
from .base import to_utc_text
from .bounces import _carrying
from .messages import _ENVELOPE_COLUMNS, _envelopes

# Where each client's history starts: its OFFSET+1-th latest real reply at or before `now`
# ('' for the whole history: it has fewer). SQLite takes no column in OFFSET: one query a count.
_SINCE = """
SELECT w.value, coalesce((
    SELECT r.at FROM messages AS r
    WHERE r.client_id = w.value AND r.at <= :now AND r.direction = 'in'
      AND coalesce(r.auto_reply, '') = '' AND NOT r.bounce AND coalesce(r.parting_kind, '') = ''
    ORDER BY r.at DESC LIMIT 1 OFFSET {offset}), '')
FROM json_each(:clients) AS w
"""
_FROM = (
    f"SELECT {', '.join('m.' + name.strip() for name in _ENVELOPE_COLUMNS.split(','))}"
    " FROM json_each(?) AS w JOIN messages AS m ON m.client_id = w.value ->> 0 AND m.at >= w.value ->> 1"
)  # no ORDER BY: sorting the rows cost a quarter of the query; the index walk gives them in time order


class HistoriesMixin(AssignmentsMixin):
    def recent_histories(self, replies: Mapping[str, int | None], now: datetime) -> dict[str, list[Envelope]]:
        """{client id: its history from its `replies[client id]`-th latest real reply dated by `now`
        on (None: all of it), plus what the module rules always keep}. The order is not promised
        (a verdict does not depend on it); what is read from the index comes oldest first."""
        wanted = list(replies)
        recorded: dict[str, list[Envelope]] = {}
        for record in self.recorded():
            if record.client_id in replies:
                recorded.setdefault(record.client_id, []).append(record.envelope())
        shared = self._ids_shared_with(env.message_id for envs in recorded.values() for env in envs)
        since = {client_id: "" for client_id in wanted}
        counts: dict[int, list[str]] = {}
        for client_id, count in replies.items():
            if count is not None and client_id not in shared:
                counts.setdefault(max(1, int(count)), []).append(client_id)
        for count, client_ids in counts.items():
            since.update(self.conn.execute(_SINCE.format(offset=count - 1),
                                           {"now": to_utc_text(now), "clients": json.dumps(client_ids)}).fetchall())
        grouped: dict[str, list[Envelope]] = {client_id: [] for client_id in wanted}
        parse = datetime.fromisoformat
        with closing(self.conn.execute(_FROM, [json.dumps(list(since.items()))])) as cursor:
            # _envelopes, less its sharing of repeated texts: these are few rows, read to be judged at once.
            for (message_id, client_id, thread_id, direction, at, subject, from_addr, auto_reply, bounce,
                 question, tagged, parting_kind) in cursor:
                grouped[client_id].append(Envelope(message_id, client_id, thread_id, direction, parse(at), subject,
                                                   from_addr, auto_reply, bool(bounce), bool(question), bool(tagged),
                                                   parting_kind))
        changed = set(recorded)
        for client_id, envelope in self._failure_bounces_before(since):
            grouped[client_id].append(envelope)
            changed.add(client_id)
        for client_id, by_bounce in self._failures_by_bounce(wanted).items():
            grouped[client_id] = _carrying(grouped[client_id], by_bounce)
        for client_id, envelopes in recorded.items():
            grouped[client_id].extend(envelopes)
        for client_id, extra in self._assigned(None).items():
            if client_id in grouped:
                grouped[client_id].extend(extra)
                changed.add(client_id)
        for client_id in changed:
            grouped[client_id].sort(key=lambda env: (env.at, env.message_id))
        return {client_id: history for client_id, history in grouped.items() if history}

    def _failure_bounces_before(self, since: Mapping[str, str]) -> Iterable[tuple[str, Envelope]]:
        """(client id, bounce) for the bounces reporting failures that lie before the client's start."""
        with closing(self.conn.execute(
                f"SELECT {_ENVELOPE_COLUMNS} FROM messages WHERE message_id IN"
                " (SELECT bounce_message_id FROM delivery_failures) ORDER BY at, message_id")) as cursor:
            # Those inside the window were read already: compared as stored texts (see the module's
            # rules), an envelope is made only for one that lies before its client's start (row[1]
            # is the client, row[4] the time, in _ENVELOPE_COLUMNS' order). On a long history that
            # is most of them (the bench's 100,000-message store: 528 of 537).
            before = (row for row in cursor if (start := since.get(row[1] or "")) and row[4] < start)
            for envelope in _envelopes(before):
                yield envelope.client_id or "", envelope

    def _ids_shared_with(self, ids: Iterable[str]) -> set[str]:
        """The clients with a stored message whose id is one of these."""
        wanted = list(ids)
        if not wanted:
            return set()
        return {row[0] for row in self.conn.execute(
            "SELECT DISTINCT client_id FROM messages WHERE client_id IS NOT NULL"
            " AND message_id IN (SELECT value FROM json_each(?))", [json.dumps(wanted)])}

    def last_sent(self, client_ids: Iterable[str], now: datetime) -> dict[str, datetime]:
        """Each client's latest stored message of ours dated by `now` that is not an automatic reply."""
        rows = self.conn.execute(
            "SELECT w.value, (SELECT m.at FROM messages AS m WHERE m.client_id = w.value AND m.at <= ?"
            " AND m.direction = 'out' AND coalesce(m.auto_reply, '') = '' ORDER BY m.at DESC LIMIT 1)"
            " FROM json_each(?) AS w", [to_utc_text(now), json.dumps(list(client_ids))]).fetchall()
        return {client_id: datetime.fromisoformat(at) for client_id, at in rows if at is not None}
