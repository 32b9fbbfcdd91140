"""Stored messages, their IMAP locations, and the look-ups threading needs.

Rules:
- A message is stored once, keyed by Message-ID; seeing it again (another folder, a new
  UIDVALIDITY) only adds a location row in message_uids. Nothing here updates a stored message.
- Bodies are stored only when the caller passes body_text (replies from staff).
- The ThreadLookup methods answer from stored rows only; choosing among them is the core's job.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import closing
from datetime import datetime
from json.encoder import encode_basestring as _quoted  # ensure_ascii=False's quoting
from typing import TYPE_CHECKING, Any

from daemon.core.model import Envelope

from .base import StoreBase, from_utc_text, maybe_utc_text, to_json, to_utc_text

if TYPE_CHECKING:  # rows.py is imported where a row is made: the listings need none of these
    from .rows import MessageLocation, MessageRow


_COLUMNS = (
    "message_id", "client_id", "thread_id", "direction", "at", "subject", "from_addr",
    "to_addrs", "cc_addrs", "in_reply_to", '"references"', "thread_index_root", "norm_subject",
    "auto_reply", "bounce", "question", "tagged", "parting_kind", "content_hash", "size",
    "from_staff", "ingested_at", "body_text", "auth_results", "header_counts", "date_header", "evidence_headers",
)
_INSERT_MESSAGE = (
    f"INSERT OR IGNORE INTO messages ({', '.join(_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_LINK_UID = (
    "INSERT INTO message_uids (folder, uidvalidity, uid, message_id) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (folder, uidvalidity, uid) DO UPDATE SET message_id = excluded.message_id"
)
# A later message (by time, then Message-ID: the look-up's order) replaces the row of its address
# and subject; an earlier one, or the same one seen again, changes nothing.
_INDEX_ADDRESS = (
    "INSERT INTO latest_by_address_subject (address, norm_subject, at, message_id, thread_id)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (address, norm_subject) DO UPDATE"
    " SET at = excluded.at, message_id = excluded.message_id, thread_id = excluded.thread_id"
    " WHERE (excluded.at, excluded.message_id)"
    " > (latest_by_address_subject.at, latest_by_address_subject.message_id)"
)
_LATEST_OF_SUBJECT = (
    "INSERT INTO latest_by_client_subject (norm_subject, client_id, at, message_id, thread_id)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (norm_subject, client_id) DO UPDATE"
    " SET at = excluded.at, message_id = excluded.message_id, thread_id = excluded.thread_id"
    " WHERE (excluded.at, excluded.message_id)"
    " > (latest_by_client_subject.at, latest_by_client_subject.message_id)"
)
_LATEST_OF_THREAD = (
    "INSERT INTO latest_client_by_thread (thread_id, at, message_id, client_id)"
    " VALUES (?, ?, ?, ?) ON CONFLICT (thread_id) DO UPDATE"
    " SET at = excluded.at, message_id = excluded.message_id, client_id = excluded.client_id"
    " WHERE (excluded.at, excluded.message_id)"
    " > (latest_client_by_thread.at, latest_client_by_thread.message_id)"
)
_ENVELOPE_COLUMNS = (
    "message_id, client_id, thread_id, direction, at, subject, from_addr, auto_reply, bounce,"
    " question, tagged, parting_kind"
)


# to_json of a list of strings, ~4 lists a stored message: the text json.JSONEncoder(ensure_ascii=
# False, sort_keys=True) writes for one (its C encoder quotes each string with this very
# function and joins them with ", "), without the encoder's Python-level calls (~2 us a list).
def _strings_json(items: Iterable[str]) -> str:
    if not items:
        return "[]"
    try:
        return "[" + ", ".join(map(_quoted, items)) + "]"
    except TypeError:  # not all strings: the encoder's own answer, or its error
        return _encoded(list(items))


_encoded = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def _message_values(row: MessageRow, at: str, ingested_at: str | None) -> tuple[Any, ...]:
    """The messages row; `at` and `ingested_at` as to_utc_text / maybe_utc_text write them
    (add_messages works each out once: `at` serves message_addresses too, `ingested_at` is
    usually one time for the whole batch)."""
    return (
        row.message_id, row.client_id, row.thread_id, row.direction, at,
        row.subject, row.from_addr, _strings_json(row.to_addrs), _strings_json(row.cc_addrs),
        _strings_json(row.in_reply_to), _strings_json(row.references), row.thread_index_root,
        row.norm_subject, row.auto_reply, int(row.bounce), int(row.question), int(row.tagged),
        row.parting_kind, row.content_hash, row.size, int(row.from_staff),
        ingested_at, row.body_text,
        to_json(list(row.auth_results)) if row.auth_results else None,
        to_json(dict(row.header_counts)) if row.header_counts is not None else None,
        maybe_utc_text(row.date_header),
        to_json([list(pair) for pair in row.evidence_headers]) if row.evidence_headers else None,
    )


def _address_values(row: MessageRow, at: str, thread_id: str) -> Iterable[tuple[str, str, str, str, str]]:
    """The message's latest_by_address_subject candidates; `thread_id` is its stored row's (the
    first copy's, for a Message-ID seen twice in one batch)."""
    for address in dict.fromkeys((row.from_addr, *row.to_addrs, *row.cc_addrs)):
        if address:
            yield address, row.norm_subject, at, row.message_id, thread_id


def _latest_rows(row: MessageRow, at: str) -> tuple[tuple[str, str, str, str, str], tuple[str, str, str, str] | None]:
    """A stored message's candidates for latest_by_client_subject ('' for no client) and, with a
    client, latest_client_by_thread."""
    return ((row.norm_subject, row.client_id or "", at, row.message_id, row.thread_id),
            (row.thread_id, at, row.message_id, row.client_id) if row.client_id else None)


def _latest_of_each(candidates: Iterable[tuple[str, ...]], key: int) -> Iterable[tuple[str, ...]]:
    """Of the candidates sharing their first `key` fields, the latest (they end with time and
    Message-ID, or have them next): what the upserts would keep, in the table's key order, so
    each of its pages is visited once a batch."""
    return {entry[:key]: entry for entry in sorted(candidates)}.values()


def _envelopes(cursor: Iterable[tuple]) -> Iterable[Envelope]:
    """Envelopes from rows of _ENVELOPE_COLUMNS, streamed as tuples (a million rows gathered as
    dicts first doubled the memory peak); texts repeated across rows are kept once."""
    share: dict[Any, Any] = {}
    keep = share.setdefault
    for (message_id, client_id, thread_id, direction, at, subject, from_addr, auto_reply, bounce, question,
         tagged, parting_kind) in cursor:
        yield Envelope(
            message_id=message_id, client_id=keep(client_id, client_id), thread_id=thread_id,
            direction=keep(direction, direction), at=from_utc_text(at), subject=keep(subject, subject),
            from_addr=keep(from_addr, from_addr), auto_reply=auto_reply and keep(auto_reply, auto_reply),
            bounce=bool(bounce), question=bool(question), tagged=bool(tagged), parting_kind=parting_kind,
        )


class MessagesMixin(StoreBase):
    # -- writing -------------------------------------------------------------------------------

    def add_message(self, row: MessageRow, *, folder: str, uidvalidity: int, uid: int) -> bool:
        """Store a message seen at folder/uidvalidity/uid; True if its Message-ID was new."""
        return row.message_id in self.add_messages([(row, folder, uidvalidity, uid)])

    def add_messages(self, rows_with_locations: Iterable[MessageLocation]) -> set[str]:
        """Store many messages in one transaction; returns the Message-IDs that were new."""
        batch = list(rows_with_locations)
        ids = [row.message_id for row, *_ in batch]
        values, addresses = [], []
        ingested: tuple[datetime | None, str | None] = (None, None)
        for row, *_ in batch:
            at = to_utc_text(row.at)
            if row.ingested_at is not ingested[0]:
                ingested = (row.ingested_at, maybe_utc_text(row.ingested_at))
            values.append(_message_values(row, at, ingested[1]))
            addresses.append((row.message_id, at))
        with self.transaction():
            known = {
                r[0] for r in self.conn.execute(
                    "SELECT message_id FROM messages"
                    " WHERE message_id IN (SELECT value FROM json_each(?))", [to_json(ids)])
            }
            self.conn.executemany(_INSERT_MESSAGE, values)
            # Each new Message-ID's first copy is its messages row: its thread is every copy's, and
            # only it counts for the subject of a client and the client of a thread.
            stored: dict[str, MessageRow] = {}
            by_address: list[tuple[str, ...]] = []
            by_subject: list[tuple[str, ...]] = []
            by_thread: list[tuple[str, ...]] = []
            for (row, *_), (message_id, at) in zip(batch, addresses, strict=True):
                if message_id in known:
                    continue
                first = stored.setdefault(message_id, row)
                by_address.extend(_address_values(row, at, first.thread_id))
                if first is row:
                    subject, thread = _latest_rows(row, at)
                    by_subject.append(subject)
                    if thread is not None:
                        by_thread.append(thread)
            self.conn.executemany(_INDEX_ADDRESS, _latest_of_each(by_address, 2))
            self.conn.executemany(_LATEST_OF_SUBJECT, _latest_of_each(by_subject, 2))
            self.conn.executemany(_LATEST_OF_THREAD, _latest_of_each(by_thread, 1))
            self.conn.executemany(
                _LINK_UID,
                ((folder, uidvalidity, uid, row.message_id) for row, folder, uidvalidity, uid in batch),
            )
        return set(ids) - known

    # -- reading -------------------------------------------------------------------------------

    def known_uids(self, folder: str, uidvalidity: int, uids: Iterable[int]) -> set[int]:
        """Which of these UIDs already have a stored message."""
        return {
            r[0] for r in self.conn.execute(
                "SELECT uid FROM message_uids WHERE folder = ? AND uidvalidity = ?"
                " AND uid IN (SELECT value FROM json_each(?))",
                [folder, uidvalidity, to_json(list(uids))],
            )
        }

    def message(self, message_id: str) -> MessageRow | None:
        from .rows import to_message

        row = self._one("SELECT * FROM messages WHERE message_id = ?", [message_id])
        return None if row is None else to_message(row)

    def envelopes(self, client_id: str) -> list[Envelope]:
        """The client's messages as the policy sees them, oldest first."""
        with closing(self.conn.execute(
                f"SELECT {_ENVELOPE_COLUMNS} FROM messages WHERE client_id = ? ORDER BY at, message_id",
                [client_id])) as cursor:
            return list(_envelopes(cursor))

    def messages_for_client(self, client_id: str, limit: int | None = None) -> list[MessageRow]:
        """The client's messages oldest first; with a limit, the latest `limit` of them."""
        from .rows import to_message

        sql = "SELECT * FROM messages WHERE client_id = ? ORDER BY at DESC, message_id DESC"
        params: list[Any] = [client_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [to_message(r) for r in reversed(self._rows(sql, params))]

    def recent_messages(self, client_id: str, n: int) -> list[MessageRow]:
        """The client's n most recent messages, newest first."""
        from .rows import to_message

        return [to_message(r) for r in self._rows(
            "SELECT * FROM messages WHERE client_id = ? ORDER BY at DESC, message_id DESC LIMIT ?",
            [client_id, n])]

    def database_bytes(self) -> int:
        """The database file's size as SQLite counts it (its pages, the WAL's not yet copied back
        included): how much a commit's scattered index writes can spread over."""
        return int(self._scalar("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()"))

    def message_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM messages"))

    # -- ThreadLookup (the protocol core/threads.py asks through) ------------------------------

    def thread_of_message_ids(self, ids: Iterable[str]) -> str | None:
        """The thread of the first of these Message-IDs that is stored (in the order given)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return None
        found = dict(self.conn.execute(
            "SELECT message_id, thread_id FROM messages"
            " WHERE message_id IN (SELECT value FROM json_each(?))", [to_json(wanted)]
        ).fetchall())
        return next((found[i] for i in wanted if i in found), None)

    def threads_of_message_ids(self, ids: Iterable[str]) -> dict[str, str]:
        """Message-ID -> thread of each of these that is stored (one query for a whole batch)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        return dict(self.conn.execute(
            "SELECT message_id, thread_id FROM messages"
            " WHERE message_id IN (SELECT value FROM json_each(?))", [to_json(wanted)]).fetchall())

    def stored_subjects(self, normalized_subjects: Iterable[str]) -> set[str]:
        """Which of these normalized subjects some stored message has: latest_by_subject finds
        nothing for the others, so a batch asks it only about these (one query for the batch)."""
        wanted = list(dict.fromkeys(normalized_subjects))
        if not wanted:
            return set()
        return {r[0] for r in self.conn.execute(
            "SELECT value FROM json_each(?) WHERE EXISTS"
            " (SELECT 1 FROM latest_by_client_subject WHERE norm_subject = json_each.value)", [to_json(wanted)])}

    def thread_of_index_root(self, root: str) -> str | None:
        """The thread of the latest message with this Outlook Thread-Index root."""
        found = self.latest_of_index_root(root)
        return None if found is None else found[2]

    def latest_of_index_root(self, root: str) -> tuple[datetime, str, str] | None:
        """(time, Message-ID, thread id) of the latest message with this Thread-Index root: what
        thread_of_index_root answers from, for ingest to weigh against rows not yet written."""
        row = self.conn.execute(
            "SELECT at, message_id, thread_id FROM messages WHERE thread_index_root = ?"
            " ORDER BY at DESC, message_id DESC LIMIT 1", [root]).fetchone()
        return None if row is None else (from_utc_text(row[0]), row[1], row[2])

    def thread_of_subject(
        self,
        normalized_subject: str,
        client_id: str | None,
        counterparts: Iterable[str],
        since: datetime,
    ) -> str | None:
        """The thread of the latest message since `since` with this normalized subject that
        belongs to the client or has one of the counterpart addresses in From, To or Cc."""
        found = self.latest_by_subject(normalized_subject, client_id, counterparts, since)
        return found[0] if found else None

    def latest_by_subject(
        self,
        normalized_subject: str,
        client_id: str | None,
        counterparts: Iterable[str],
        since: datetime,
        branch: Callable[..., tuple[datetime, str, str] | None] | None = None,
    ) -> tuple[str, datetime, str] | None:
        """(thread id, time, Message-ID) of the message thread_of_subject chooses. `branch` answers
        as latest_of_subject does (default: it); ingest passes one that remembers its answers."""
        branch = branch or self.latest_of_subject
        branches = [branch(normalized_subject, client_id=client_id)] if client_id is not None else []
        branches += [branch(normalized_subject, address=a) for a in dict.fromkeys(counterparts)]
        latest = max((row for row in branches if row is not None and row[0] >= since), default=None)
        return None if latest is None else (latest[2], latest[0], latest[1])

    def latest_of_subject(self, normalized_subject: str, *, client_id: str | None = None,
                          address: str | None = None) -> tuple[datetime, str, str] | None:
        """(time, Message-ID, thread id) of the latest message with this normalized subject of the
        client, or with the address in From, To or Cc: one branch of latest_by_subject, at any
        time. The latest since a time is this one if it is not older, else there is none, so a
        batch asks each branch once and applies each message's own `since` to the answer. (Times
        are stored as UTC ISO text, whose order is the order of the times.)"""
        # One primary key seek per branch (the tables keep only the latest row of each key): the
        # cost stays flat however much mail shares a subject.
        if client_id is not None:
            row = self.conn.execute(
                "SELECT at, message_id, thread_id FROM latest_by_client_subject"
                " WHERE norm_subject = ? AND client_id = ?", [normalized_subject, client_id]).fetchone()
        else:
            row = self.conn.execute(
                "SELECT at, message_id, thread_id FROM latest_by_address_subject"
                " WHERE address = ? AND norm_subject = ?", [address, normalized_subject]).fetchone()
        return None if row is None else (from_utc_text(row[0]), row[1], row[2])

    def client_of_thread(self, thread_id: str) -> str | None:
        """The client of the latest assigned message in this thread."""
        found = self.latest_client_of_thread(thread_id)
        return None if found is None else found[2]

    def latest_client_of_thread(self, thread_id: str) -> tuple[datetime, str, str] | None:
        """(time, Message-ID, client id) of the latest assigned message in this thread."""
        row = self.conn.execute(
            "SELECT at, message_id, client_id FROM latest_client_by_thread WHERE thread_id = ?", [thread_id]).fetchone()
        return None if row is None else (from_utc_text(row[0]), row[1], row[2])
