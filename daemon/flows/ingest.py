"""Ingest: fetched headers become stored messages, in two steps around an IMAP body fetch.

1. `parse` reads each header block with the core (never raising for one bad message: it is
   quarantined with its reason), classifies it (ours or theirs, which client, which staff member)
   and says which bodies are worth fetching: our requests to clients (does our new text ask
   something?), staff replies to review or reminder mail (the command), and bounces (which client).
2. `commit` threads the batch, stores messages, quarantine and triage rows and the folder's new
   last UID in one transaction, so a crash never leaves a half-ingested batch or a skipped UID.
   A catch-up splits it in two: `stage` threads a batch and keeps its rows, `flush` writes every
   staged batch in one transaction (flows/ingest_staged.py: fewer commits of a large store).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from daemon.adapters.imap.connection import FetchedHeader
from daemon.adapters.store import MessageRow, Store
from daemon.core.mail import message_time
from daemon.core.model import DeliveryFailure, ParsedMessage, Settings
from daemon.core.review import token_from_addresses
from daemon.core.rules import is_real_reply
from daemon.core.threads import (
    Classification,
    ThreadLookup,
    assign_thread,
    classify,
    match_client,
    normalize_subject,
    thread_index_root,
)
from daemon.flows.ingest_pool import BodyItem, BodyReading, HeaderReading, Later, read_bodies, read_headers
from daemon.flows.ingest_staged import Staged, StagedBatch, StagedStore, StagedWritesDropped, UnreadBodies
from daemon.runtime.logs import get_logger

CLASSIFY_CACHE = 10_000  # distinct correspondent sets remembered; a few MB at most


@dataclass
class Pending:
    uid: int
    parsed: ParsedMessage
    kind: Classification
    internaldate: datetime | None
    wants_body: bool
    is_staff_reply: bool = False
    request_header: bool = False


@dataclass
class ParsedBatch:
    folder: str
    uidvalidity: int
    last_uid: int
    pending: list[Pending] = field(default_factory=list)
    quarantined: list[tuple[int, str, str, int]] = field(default_factory=list)  # uid, reason, hash, size

    @property
    def body_uids(self) -> list[int]:
        return [item.uid for item in self.pending if item.wants_body]


@dataclass
class IngestReport:
    folder: str
    stored: int = 0
    already_known: int = 0
    quarantined: int = 0
    triaged: int = 0
    staff_replies: list[str] = field(default_factory=list)
    client_replies: list[str] = field(default_factory=list)
    clients: set[str] = field(default_factory=set)  # whose history grew: their verdicts may change


class BatchLookup:
    """Thread look-ups that see the messages of the batch being built as well as the store
    (with the batches staged before it: StagedStore)."""

    def __init__(self, store: Store | StagedStore, pending: Sequence[Pending] = ()) -> None:
        self.store = store
        # The store's answers for the whole batch, asked once before threading (the store does not
        # change until the batch commits): the stored threads of every Message-ID the batch refers
        # to, and which of its subjects any stored message has (one query per message before).
        self.stored_threads = store.threads_of_message_ids(
            i for item in pending for i in (*item.parsed.in_reply_to, *item.parsed.references))
        self.stored_subjects = store.stored_subjects(
            subject for item in pending if (subject := normalize_subject(item.parsed.subject)))
        self.latest: dict[tuple[str, str | None, str | None], tuple[datetime, str, str] | None] = {}
        self.threads: dict[str, str] = {}
        self.index_roots: dict[str, str] = {}
        self.clients: dict[str, str | None] = {}
        self.by_subject: dict[str, list[MessageRow]] = {}

    def thread_of_message_ids(self, ids: Sequence[str]) -> str | None:
        for message_id in ids:
            if message_id in self.threads:
                return self.threads[message_id]
        stored = self.stored_threads
        return next((stored[message_id] for message_id in ids if message_id in stored), None)

    def thread_of_index_root(self, root: str) -> str | None:
        return self.index_roots.get(root) or self.store.thread_of_index_root(root)

    def thread_of_subject(self, normalized_subject: str, client_id: str | None,
                          counterparts: Sequence[str], since: datetime) -> str | None:
        # The store's rule (latest message with the subject, of the client or sharing an address),
        # applied to the stored messages and to those of this batch alike.
        wanted = set(counterparts)
        in_batch = [
            (row.at, row.message_id, row.thread_id) for row in self.by_subject.get(normalized_subject, ())
            if row.at >= since and ((client_id is not None and row.client_id == client_id)
                                    or not wanted.isdisjoint((row.from_addr, *row.to_addrs, *row.cc_addrs)))
        ]
        if normalized_subject in self.stored_subjects:  # the store's latest_by_subject, each branch asked once
            stored = self.store.latest_by_subject(normalized_subject, client_id, counterparts, since, branch=self._latest)
            if stored is not None:
                in_batch.append((stored[1], stored[2], stored[0]))
        return max(in_batch)[2] if in_batch else None

    def _latest(self, subject: str, *, client_id: str | None = None,
                address: str | None = None) -> tuple[datetime, str, str] | None:
        """store.latest_of_subject, each (subject, client, address) asked once a batch."""
        key = (subject, client_id, address)
        if key not in self.latest:
            self.latest[key] = self.store.latest_of_subject(subject, client_id=client_id, address=address)
        return self.latest[key]

    def client_of_thread(self, thread_id: str) -> str | None:
        if thread_id in self.clients:
            return self.clients[thread_id]
        return self.store.client_of_thread(thread_id)

    def remember(self, row: MessageRow) -> None:
        self.threads[row.message_id] = row.thread_id
        if row.thread_index_root:
            self.index_roots.setdefault(row.thread_index_root, row.thread_id)
        if row.client_id:
            self.clients.setdefault(row.thread_id, row.client_id)
        self.by_subject.setdefault(row.norm_subject, []).append(row)


class Ingestor:
    def __init__(self, settings: Settings, store: Store, log: logging.Logger | None = None) -> None:
        self.settings = settings
        self.store = store
        self.log = log or get_logger("ingest")
        self.request_tags = {p.request_tag.casefold() for p in (settings.policy, *settings.policies.values())}
        # classify() normalizes every address and looks it up among our addresses, staff and clients;
        # a mailbox repeats the same correspondents, so its answers are kept per (from, to, cc,
        # reply-to), the only fields it reads (~10 us a message saved at 20,000 messages). The
        # settings cannot change under it: a reload makes a new Ingestor.
        self._classified: dict[tuple, Classification] = {}
        self._learned: dict[str, str] = {}  # learned address -> client id, read again for every batch
        self._staged = Staged()
        self._view = StagedStore(store, self._staged)
        self._dropped: set[str] = set()  # folders a failed flush dropped batches of, until read again

    def classify(self, parsed: ParsedMessage) -> Classification:
        key = (parsed.from_addr, parsed.to, parsed.cc, parsed.reply_to)
        kind = self._classified.get(key)
        if kind is None:
            if len(self._classified) >= CLASSIFY_CACHE:
                self._classified.clear()
            kind = self._classified[key] = classify(parsed, our_addresses=self.settings.mailbox.addresses,
                                                    staff=self.settings.people, clients=self.settings.clients)
        if kind.client_id is None and kind.direction == "in" and not kind.from_us and self._learned:
            # An address a person assigned to a client in triage (`--learn-address`) is that client's.
            learned = self._learned.get(parsed.from_addr.lower())
            if learned is not None:
                kind = replace(kind, client_id=learned)
        return kind

    def parse(self, folder: str, uidvalidity: int, headers: Iterable[FetchedHeader],
              readings: Sequence[HeaderReading] | None = None) -> ParsedBatch:
        """`readings`: the headers already read (flows/ingest_pool.py's worker), one per header in
        order; without them they are read here, with the same function."""
        self._refuse_dropped(folder)
        batch = ParsedBatch(folder, uidvalidity, last_uid=0)
        known_clients = {client.id for client in self.settings.clients}
        self._learned = {learned.address: learned.client_id for learned in self.store.learned_addresses()
                         if learned.client_id in known_clients}
        headers = list(headers)
        known = self.store.known_uids(folder, uidvalidity, [h.uid for h in headers]) | self._staged.uids(folder, uidvalidity)
        if readings is None or len(readings) != len(headers):
            readings = read_headers([(h.uid, h.header, h.internaldate, h.size) for h in headers if h.uid not in known])
        else:
            readings = [reading for reading in readings if reading.uid not in known]
        by_uid = {reading.uid: reading for reading in readings}
        for header in headers:
            batch.last_uid = max(batch.last_uid, header.uid)
            if header.uid in known:
                continue
            reading = by_uid[header.uid]
            parsed = reading.parsed
            if parsed is None:
                reason = reading.problem or ""
                batch.quarantined.append((header.uid, reason, reading.content_hash, header.size))
                self.log.warning("quarantined a message: %s", reason, extra={"folder": folder, "uid": header.uid})
                continue
            kind = self.classify(parsed)
            staff_reply = bool(kind.from_staff) and token_from_addresses(
                (*parsed.to, *parsed.cc), self.settings.mailbox.address) is not None
            wants_body = (
                (kind.direction == "out" and kind.client_id is not None and parsed.parting_kind is None)
                or staff_reply
                or parsed.bounce
            )
            batch.pending.append(Pending(header.uid, parsed, kind, header.internaldate, wants_body, staff_reply,
                                         reading.request_header))
        return batch

    @staticmethod
    def body_items(batch: ParsedBatch, bodies: dict[int, bytes]) -> list[BodyItem]:
        """What `commit` reads from the fetched bodies (in the worker, or here)."""
        return [BodyItem(item.uid, body, item.is_staff_reply, item.kind.direction == "out", item.parsed.bounce)
                for item in batch.pending if (body := bodies.get(item.uid)) is not None]

    def commit(self, batch: ParsedBatch, bodies: dict[int, bytes], now: datetime,
               readings: dict[int, BodyReading] | None = None,
               later: Later | None = None) -> IngestReport:
        """Thread the batch and write it, with any batches staged before it, in one
        transaction: `stage`, then `flush`. The report is this batch's."""
        self.stage(batch, bodies, now, readings, later)
        return self.flush()[-1]

    @property
    def staged_messages(self) -> int:
        """Messages threaded and not yet written (staged batches)."""
        return self._staged.messages

    def stage(self, batch: ParsedBatch, bodies: dict[int, bytes], now: datetime,
              readings: dict[int, BodyReading] | None = None, later: Later | None = None,
              behind: bool = False) -> None:
        """Thread the batch as the store will be once the batches staged before it are written,
        and keep its rows for `flush`. `readings`: the bodies already read, by UID; without
        them they are read here. With `later` (the worker reading some bodies meanwhile:
        flows/ingest_pool.py), the bounces' are read first (a bounce's client threads it), the
        others once the batch is threaded: what they give (does it ask something, a staff
        reply's text) threads nothing. Those the worker was not given are read here while it
        works; what it fails to read is read here too. Either way, the same functions.
        `behind`: the batch is not written before the next is staged, so what `later` reads is
        taken only then (or at the flush), and this process goes on meanwhile."""
        self._refuse_dropped(batch.folder)
        self._take_bodies_read_behind(self._staged)
        items = self.body_items(batch, bodies)
        if readings is None:
            readings = read_bodies([item for item in items if item.bounce] if later else items)
        lookup = BatchLookup(self._view, batch.pending)
        rows: list[tuple[MessageRow, str, int, int]] = []
        triage: list[tuple[str, str | None, str]] = []
        failures: dict[str, tuple[DeliveryFailure, ...]] = {}
        waiting: list[tuple[int, Pending]] = []  # (position in rows, item) of the bodies read `later`
        for item in sorted(batch.pending, key=lambda p: _when(p)):
            reading = readings.get(item.uid)
            if reading is None and item.uid in bodies:
                waiting.append((len(rows), item))
            row, triage_reason = self._row(item, reading, lookup, now, failures)
            lookup.remember(row)
            rows.append((row, batch.folder, batch.uidvalidity, item.uid))
            if triage_reason:
                triage.append((row.message_id, row.client_id, triage_reason))
        unread = UnreadBodies(waiting, [body for body in items if not body.bounce], later) if waiting else None
        if unread is not None and not (behind and later is not None):
            self._fill_bodies(rows, unread)
            unread = None
        # The batch without its parsed headers (the rows hold what is written): a few MB less held.
        self._staged.add(StagedBatch(replace(batch, pending=[]), rows, triage, failures, now, unread),
                         self._view.stored_message_ids(row.message_id for row, *_ in rows))

    def _take_bodies_read_behind(self, group: Staged) -> None:
        """Fill in the rows of staged batches whose bodies were read behind (threading never
        reads them: only whether our request asks something, and a staff reply's text)."""
        for staged in group.batches:
            if staged.unread is not None:
                unread, staged.unread = staged.unread, None
                self._fill_bodies(staged.rows, unread)

    def _fill_bodies(self, rows: list[tuple[MessageRow, str, int, int]], unread: UnreadBodies) -> None:
        later = unread.later
        got = read_bodies([body for body in unread.bodies if later is None or body.uid not in later.uids])
        theirs = later.wait() if later else None
        if theirs is None or any(item.uid not in got and item.uid not in theirs for _, item in unread.waiting):
            theirs = read_bodies([body for body in unread.bodies if body.uid not in got])
        got.update(theirs)
        for position, item in unread.waiting:
            row, *where = rows[position]
            rows[position] = (self._with_body(row, item, got[item.uid]), *where)  # type: ignore[assignment]

    def flush(self) -> list[IngestReport]:
        """Write every staged batch, in order, in one transaction; a report per batch. On any
        error nothing is written and the staged batches are dropped: their folders are refused until
        read again (`read_again`), so their UIDs are."""
        staged, self._staged = self._staged, Staged()
        self._view = StagedStore(self.store, self._staged)  # the store changes: nothing it said is kept
        try:
            self._take_bodies_read_behind(staged)
            if not staged.batches:
                return []
            with self.store.transaction(check_references=False):  # rows are written parent first
                return [self._write(batch) for batch in staged.batches]
        except BaseException:
            self._dropped.update(each.batch.folder for each in staged.batches)
            raise

    def read_again(self, folder: str) -> None:
        """The folder's watcher reads it again from where the store stands (each sync asks the store
        first): what a failed flush dropped of it will be read again, so it is accepted again."""
        self._dropped.discard(folder)

    def _refuse_dropped(self, folder: str) -> None:
        if folder in self._dropped:
            raise StagedWritesDropped(folder)

    def _write(self, staged: StagedBatch) -> IngestReport:
        batch, rows, now = staged.batch, staged.rows, staged.now
        report = IngestReport(batch.folder)
        new_ids = self.store.add_messages(rows)
        for uid, reason, content_hash, size in batch.quarantined:
            if self.store.quarantine(batch.folder, batch.uidvalidity, uid, reason, content_hash, size, now):
                self.store.append_event("message_quarantined", at=now,
                                        data={"folder": batch.folder, "uid": uid, "reason": reason,
                                              "content_hash": content_hash})
                report.quarantined += 1
        for row, *_ in rows:
            if row.message_id in new_ids and row.message_id in staged.failures:
                self.store.add_delivery_failures(row.message_id, row.client_id, row.at, staged.failures[row.message_id])
        for message_id, client_id, reason in staged.triage:
            if message_id in new_ids and self.store.add_triage(message_id, client_id, reason, now):
                self.store.append_event("message_triaged", at=now, client_id=client_id,
                                        message_ids=[message_id], data={"reason": reason})
                report.triaged += 1
        state = self.store.folder_state(batch.folder)
        last_uid = max(batch.last_uid, state.last_uid if state and state.uidvalidity == batch.uidvalidity else 0)
        self.store.save_folder_state(batch.folder, batch.uidvalidity, last_uid)
        report.stored = len(new_ids)
        report.already_known = len(rows) - len(new_ids)
        for row, *_ in rows:
            if row.message_id not in new_ids:
                continue
            if row.client_id:
                report.clients.add(row.client_id)
            if row.from_staff and row.body_text is not None:
                report.staff_replies.append(row.message_id)
            elif row.client_id and is_real_reply(row):
                report.client_replies.append(row.message_id)
        return report

    def _with_body(self, row: MessageRow, item: Pending, body: BodyReading) -> MessageRow:
        """The row `_row` makes with this body, for a row made before the body was read (no bounce)."""
        return replace(row, **self._body_fields(item, body))

    def _body_fields(self, item: Pending, body: BodyReading | None) -> dict[str, Any]:
        """The row's fields its body gives (does our request ask something; a staff reply's
        text), the unreadable one logged: for `_row`, and for a row whose body came later."""
        if body is None:
            return {"question": False, "body_text": None}
        if body.unreadable is not None:
            self.log.info("body unreadable, headers kept: %s", body.unreadable,
                          extra={"message_id": item.parsed.message_id})
        return {"question": bool(body.asks and item.kind.direction == "out"),
                "body_text": body.text if item.is_staff_reply else None}

    def _row(self, item: Pending, body: BodyReading | None, lookup: ThreadLookup, now: datetime,
             failures: dict[str, tuple[DeliveryFailure, ...]]) -> tuple[MessageRow, str | None]:
        parsed, kind = item.parsed, item.kind
        from_body = self._body_fields(item, body)
        client_id = kind.client_id
        if parsed.bounce and client_id is None and body is not None:
            for address in body.bounce_recipients:
                client = match_client(address, self.settings.clients)
                if client:
                    client_id = client.id
                    break
        if parsed.bounce and body is not None:
            found = failures[parsed.message_id] = body.failures
            original = self._view.message(found[0].original_message_id) if found and client_id is None else None
            client_id = client_id or (original.client_id if original else None)
        when = _when(item)
        assignment = assign_thread(parsed, replace(kind, client_id=client_id) if client_id != kind.client_id else kind,
                                   lookup, now_hint=when)
        subject_tagged = any(tag and tag in parsed.subject.casefold() for tag in self.request_tags)
        row = MessageRow(
            message_id=parsed.message_id,
            client_id=client_id,
            thread_id=assignment.thread_id,
            direction=kind.direction,
            at=when,
            subject=parsed.subject,
            from_addr=parsed.from_addr,
            to_addrs=parsed.to,
            cc_addrs=parsed.cc,
            in_reply_to=parsed.in_reply_to,
            references=parsed.references,
            thread_index_root=thread_index_root(parsed.thread_index),
            norm_subject=normalize_subject(parsed.subject),
            auto_reply=parsed.auto_reply,
            bounce=parsed.bounce,
            tagged=subject_tagged or item.request_header,
            parting_kind=parsed.parting_kind,
            content_hash=parsed.content_hash,
            size=parsed.size,
            from_staff=bool(kind.from_staff),
            ingested_at=now,
            auth_results=parsed.authentication_results if item.is_staff_reply else (),
            header_counts=parsed.header_counts if item.is_staff_reply else None,
            date_header=parsed.date if item.is_staff_reply else None,
            evidence_headers=parsed.evidence_headers if item.is_staff_reply else (),
            **from_body,
        )
        return row, assignment.triage_reason


def _when(item: Pending) -> datetime:
    """When a message was written or received (which of its dates to trust: core/mail.py)."""
    return message_time(item.parsed.date, item.internaldate, item.kind.direction)
