"""Batches ingest has threaded but not yet written, and the store as it will be once they are.

Rules of this module:
- A catch-up into a large database writes several batches in one transaction (Ingestor.stage,
  then Ingestor.flush; runtime/intake.py says when): every commit rewrites each index page its
  batch touched, and a backfill's keys (Message-IDs, threads, subjects, addresses) are spread
  over all of them, so fewer, larger commits write far fewer pages (the bench's 100,000-message
  backfill writes 2.2 GB to disk instead of 3.6). Nothing else changes: the batches are
  threaded one by one, in the same order, against `StagedStore`, which answers every look-up
  exactly as the store would if the staged batches had been written one by one (the same rows,
  in the same order, with add_messages' rules for a Message-ID seen twice).
- Only ingest writes messages, and only through `Ingestor.flush`: until a flush, the store's
  answers cannot change, so those asked again by a later batch of the same group are
  remembered (a backfill asks the same subjects over and over).
- A staged batch is not in the store: a crash, a failed flush or a stop that cannot flush
  loses nothing, since the folder's last UID moves only in the flush; the batches are read again.
  A failed flush drops every folder's batches in the group, so each of those folders is refused
  (StagedWritesDropped) until its watcher reads it again from the store's state: a watcher that
  went on would write its next batch, and the folder's last UID would move past the dropped ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from daemon.adapters.store import MessageRow, Store
from daemon.core.model import DeliveryFailure

if TYPE_CHECKING:
    from daemon.flows.ingest import ParsedBatch, Pending
    from daemon.flows.ingest_pool import BodyItem, Later

Latest = tuple[datetime, str, str]  # (time, Message-ID, what was asked: a thread or a client)


class StagedWritesDropped(Exception):
    """A failed write dropped batches staged for this folder: read it again from the store's state."""

    def __init__(self, folder: str) -> None:
        super().__init__(f"a failed write dropped the batches staged for {folder!r}: reading it again from "
                         "where the store stands")
        self.folder = folder


@dataclass
class UnreadBodies:
    """A staged batch's bodies not yet taken in: the rows waiting (position, item), the bodies
    (to read here what the worker did not), and the worker's reading of its share."""

    waiting: list[tuple[int, Pending]]
    bodies: list[BodyItem]
    later: Later | None


@dataclass
class StagedBatch:
    """What Ingestor.flush writes for one batch, as Ingestor.commit used to write it at once."""

    batch: ParsedBatch
    rows: list[tuple[MessageRow, str, int, int]]  # row, folder, UIDVALIDITY, UID
    triage: list[tuple[str, str | None, str]]  # Message-ID, client, reason
    failures: dict[str, tuple[DeliveryFailure, ...]]
    now: datetime
    unread: UnreadBodies | None = None  # bodies read behind: taken in before the next stage or the flush


@dataclass
class Staged:
    """The staged batches, oldest first, and their rows indexed the way threading asks for them.
    `kept` holds only the row add_messages will insert for each Message-ID (the first staged
    copy of one the store does not have)."""

    batches: list[StagedBatch] = field(default_factory=list)
    kept: dict[str, MessageRow] = field(default_factory=dict)
    subjects: set[str] = field(default_factory=set)  # of the kept rows (the messages table's)
    # Each subject's rows as latest_of_subject's two branches read them: (row, the thread its
    # addresses point to, kept?). Lists, not an entry per (subject, address): a few MB less held.
    by_subject: dict[str, list[tuple[MessageRow, str, bool]]] = field(default_factory=dict)
    by_index_root: dict[str, Latest] = field(default_factory=dict)
    client_by_thread: dict[str, Latest] = field(default_factory=dict)
    messages: int = 0
    _uids: dict[tuple[str, int], set[int]] = field(default_factory=dict)  # (folder, UIDVALIDITY) -> UIDs

    def add(self, staged: StagedBatch, stored: Iterable[str]) -> None:
        """`stored`: which of the batch's Message-IDs the store already has."""
        self.batches.append(staged)
        self.messages += len(staged.rows)
        for _, folder, uidvalidity, uid in staged.rows:
            self._uids.setdefault((folder, uidvalidity), set()).add(uid)
        # add_messages' rules: a Message-ID it did not have before the batch gets the addresses
        # of every copy in the batch, the message row of the first only.
        known = set(stored) | self.kept.keys()
        for row, *_ in staged.rows:
            if row.message_id in known:
                continue
            kept = self.kept.setdefault(row.message_id, row)
            self.by_subject.setdefault(row.norm_subject, []).append((row, kept.thread_id, kept is row))
            if kept is not row:
                continue
            self.subjects.add(row.norm_subject)
            if row.thread_index_root:
                _keep_latest(self.by_index_root, row.thread_index_root, (row.at, row.message_id, row.thread_id))
            if row.client_id:
                _keep_latest(self.client_by_thread, row.thread_id, (row.at, row.message_id, row.client_id))

    def latest_of_subject(self, normalized_subject: str, client_id: str | None, address: str | None
                          ) -> Latest | None:
        """The store's latest_of_subject over the staged rows alone."""
        found: Latest | None = None
        for row, thread, kept in self.by_subject.get(normalized_subject, ()):
            if (kept and row.client_id == client_id if client_id is not None
                    else bool(address) and address in (row.from_addr, *row.to_addrs, *row.cc_addrs)):
                found = _later(found, (row.at, row.message_id, thread))
        return found

    def uids(self, folder: str, uidvalidity: int) -> Set[int]:
        """The folder's UIDs staged (a batch read again before a flush finds them known)."""
        return self._uids.get((folder, uidvalidity), set())


def _keep_latest(index: dict[Any, Latest], key: Any, candidate: Latest) -> None:
    known = index.get(key)
    if known is None or candidate[:2] > known[:2]:
        index[key] = candidate


def _later(*found: Latest | None) -> Latest | None:
    """The latest by (time, Message-ID), as the store's ORDER BY at DESC, message_id DESC."""
    return max((f for f in found if f is not None), key=lambda f: f[:2], default=None)


class StagedStore:
    """The look-ups of threading (flows/ingest.py's BatchLookup and bounces) over the store and
    the staged rows together: each answer is the store's once those rows are written."""

    def __init__(self, store: Store, staged: Staged) -> None:
        self.store = store
        self.staged = staged
        self._subjects: dict[tuple[str, str | None, str | None], Latest | None] = {}

    def stored_message_ids(self, ids: Iterable[str]) -> set[str]:
        return set(self.store.threads_of_message_ids(ids))

    def threads_of_message_ids(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = list(ids)
        found = self.store.threads_of_message_ids(wanted)
        kept = self.staged.kept
        for message_id in wanted:
            if message_id not in found and message_id in kept:
                found[message_id] = kept[message_id].thread_id
        return found

    def stored_subjects(self, normalized_subjects: Iterable[str]) -> set[str]:
        wanted = list(normalized_subjects)
        return self.store.stored_subjects(wanted) | {s for s in wanted if s in self.staged.subjects}

    def thread_of_index_root(self, root: str) -> str | None:
        found = _later(self.store.latest_of_index_root(root), self.staged.by_index_root.get(root))
        return None if found is None else found[2]

    def client_of_thread(self, thread_id: str) -> str | None:
        found = _later(self.store.latest_client_of_thread(thread_id), self.staged.client_by_thread.get(thread_id))
        return None if found is None else found[2]

    def message(self, message_id: str) -> MessageRow | None:
        return self.store.message(message_id) or self.staged.kept.get(message_id)

    def latest_by_subject(self, normalized_subject: str, client_id: str | None, counterparts: Sequence[str],
                          since: datetime, branch: Callable[..., Latest | None] | None = None,
                          ) -> tuple[str, datetime, str] | None:
        return self.store.latest_by_subject(normalized_subject, client_id, counterparts, since,
                                            branch=branch or self.latest_of_subject)

    def latest_of_subject(self, normalized_subject: str, *, client_id: str | None = None,
                          address: str | None = None) -> Latest | None:
        key = (normalized_subject, client_id, address)
        if key not in self._subjects:
            self._subjects[key] = self.store.latest_of_subject(normalized_subject, client_id=client_id,
                                                               address=address)
        return _later(self._subjects[key], self.staged.latest_of_subject(normalized_subject, client_id, address))
