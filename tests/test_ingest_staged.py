"""A catch-up stages its batches and writes several in one transaction (flows/ingest_staged.py):
what is stored must not depend on where the writes fall. The same mailbox, cut into the same
batches, is ingested once batch by batch (`commit`) and once staged with flushes at random
points: every table ingest writes must come out identical, row for row.

The mailboxes are drawn to make threading lean on rows not yet written: replies by
References to earlier messages, bare replies by subject only, Outlook Thread-Index roots, the
same Message-ID twice (in one batch and across batches), bounces naming a message of an
earlier batch, and strangers writing into a client's thread (triage)."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailfactory import OFFICE, build, message_id
from mailfactory import bounce as bounce_mail

from daemon.adapters.imap.connection import FetchedHeader
from daemon.adapters.settings.load import load_settings
from daemon.adapters.store import Store
from daemon.flows.ingest import Ingestor
from daemon.flows.ingest_pool import IngestPool, Later, read_bodies
from daemon.flows.ingest_staged import StagedWritesDropped

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=60)
SUBJECTS = ["Signed lease", "Re: Signed lease", "Meter readings", "RE: Meter readings", "Invoice 12", ""]
CLIENT_ADDRESSES = ["jane@acme.example", "bob@acme.example", "hank@globex.example"]
STRANGERS = ["stranger@elsewhere.example", "temp@freemail.example"]
ROOTS = [bytes([n]) * 22 for n in range(1, 4)]


@pytest.fixture(scope="module")
def parting_settings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("staged")
    fake_server = SimpleNamespace(port=1143, password="secret", user="office")
    return load_settings(write_config(folder, fake_server, SimpleNamespace(port=2525)), environ={})


@st.composite
def mailboxes(draw) -> list[tuple[str, bytes, bytes | None]]:
    """(folder, header block, whole message when ingest may want its body) in arrival order."""
    mail: list[tuple[str, bytes, bytes | None]] = []
    ids: list[str] = []
    for n in range(draw(st.integers(2, 28))):
        when = T0 + timedelta(hours=draw(st.integers(0, 24 * 45)))
        tag = f"m{draw(st.integers(0, 40))}"  # a tag drawn twice is the same Message-ID twice
        kind = draw(st.sampled_from(["sent", "reply", "bare", "outlook", "stranger", "bounce"]))
        parent = draw(st.sampled_from(ids)) if ids and draw(st.booleans()) else None
        subject = draw(st.sampled_from(SUBJECTS))
        if kind == "bounce" and ids:
            # A stranger's bounce names its client only through the message it returns.
            raw, mid = bounce_mail(draw(st.sampled_from(CLIENT_ADDRESSES + STRANGERS)), draw(st.sampled_from(ids)),
                                   when, tag)
            folder = "INBOX"
        elif kind == "sent":
            mid = message_id(tag)
            to = draw(st.sampled_from(CLIENT_ADDRESSES + STRANGERS))
            cc = [draw(st.sampled_from(CLIENT_ADDRESSES))] if draw(st.booleans()) else None
            raw = build(sender=OFFICE, to=to, cc=cc, subject=subject, body="Could you send the form?\n", when=when,
                        mid=mid, in_reply_to=parent, references=[parent] if parent else None)
            folder = "Sent"
        else:
            sender = draw(st.sampled_from(STRANGERS if kind == "stranger" else CLIENT_ADDRESSES))
            mid = message_id(tag, sender.split("@")[1])
            headers = None
            if kind == "outlook":
                root = draw(st.sampled_from(ROOTS)) + bytes(draw(st.integers(0, 1)) * [n % 256] * 5)
                headers = {"Thread-Index": base64.b64encode(root).decode()}
            threaded = kind in ("reply", "stranger") and parent is not None
            raw = build(sender=sender, to=OFFICE, subject=subject, body="Here it is.\n", when=when, mid=mid,
                        in_reply_to=parent if threaded else None, references=[parent] if threaded else None,
                        headers=headers)
            folder = "INBOX"
        ids.append(mid)
        mail.append((folder, raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", raw))
    return mail


def ingest(parting_settings, mail, cuts: list[int], flushes: list[bool] | None,
           worker: str | None = None) -> dict[str, list]:
    """Ingest `mail` cut at `cuts`, each part split by folder as a catch-up reads it; with
    `flushes`, stage every batch and flush after those marked (and at the end). With `worker`,
    a stand-in for the ingest worker reads each staged batch's bodies behind ("reads"), or
    fails to ("fails": they are read here then), as flows/ingest_pool.py's would."""
    store = Store.open(":memory:")
    ingestor = Ingestor(parting_settings, store)
    bounds = [0, *sorted(set(cuts)), len(mail)]
    uids = {"INBOX": 0, "Sent": 0}
    batches = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        for folder in ("INBOX", "Sent"):
            part = []
            for header, raw in ((h, r) for f, h, r in mail[start:end] if f == folder):
                uids[folder] += 1
                part.append((FetchedHeader(uid=uids[folder], header=header, internaldate=T0 + timedelta(days=50),
                                           size=len(raw)), raw))
            if part:
                batches.append((folder, part))
    for number, (folder, part) in enumerate(batches):
        batch, bodies = parsed(ingestor, folder, part)
        if flushes is None:
            ingestor.commit(batch, bodies, NOW)
            continue
        later = None
        if worker is not None:
            given = [item for item in ingestor.body_items(batch, bodies) if not item.bounce]
            later = Later(frozenset(item.uid for item in given),
                          lambda given=given: read_bodies(given) if worker == "reads" else None)
        ingestor.stage(batch, bodies, NOW, later=later, behind=later is not None)
        if flushes[number % len(flushes)]:
            ingestor.flush()
    ingestor.flush()
    assert ingestor.staged_messages == 0
    # Ingest writes with SQLite's foreign key checks off (Store.transaction): every row it wrote
    # must still name a stored parent, and the checks are on again for everyone else.
    assert store.conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert store.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    return tables(store.conn)


def parsed(ingestor: Ingestor, folder: str, part: list[tuple[FetchedHeader, bytes]]):
    """A batch as `parse` reads it (UIDVALIDITY 7), and the bodies it asks for."""
    batch = ingestor.parse(folder, 7, [header for header, _ in part])
    return batch, {header.uid: raw for header, raw in part if header.uid in batch.body_uids}


def tables(conn: sqlite3.Connection) -> dict[str, list]:
    return {table: sorted(conn.execute(f"SELECT {columns} FROM {table}").fetchall(), key=repr) for table, columns in {
        "messages": "*",
        "latest_by_address_subject": "*",
        "latest_by_client_subject": "*",
        "latest_client_by_thread": "*",
        "message_uids": "*",
        "quarantine": "*",
        "triage": "message_id, client_id, reason, at, closed_at",
        "folders": "*",
        "delivery_failures": "*",
        "events": "kind, client_id, message_ids, data",
    }.items()}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mail=mailboxes(), cuts=st.lists(st.integers(0, 28), max_size=8),
       flushes=st.lists(st.booleans(), min_size=1, max_size=6), worker=st.sampled_from([None, "reads", "fails"]))
def test_staged_batches_store_exactly_what_batch_by_batch_commits_store(parting_settings, mail, cuts, flushes,
                                                                        worker) -> None:
    assert ingest(parting_settings, mail, cuts, flushes, worker) == ingest(parting_settings, mail, cuts, None)


def test_a_staged_batch_is_threaded_against_the_batches_staged_before_it(parting_settings) -> None:
    """The plain case the property stands on: a reply in the second batch finds its request,
    staged in the first and not yet written, by References, by subject and by Thread-Index."""
    request = build(sender=OFFICE, to="jane@acme.example", subject="Signed lease", body="Could you sign?\n",
                    when=T0, mid=message_id("req"), headers={"Thread-Index": base64.b64encode(ROOTS[0]).decode()})
    replies = [
        build(sender="jane@acme.example", to=OFFICE, subject="Re: Signed lease", body="Done.\n",
              when=T0 + timedelta(hours=1), mid=message_id("by-ref", "acme.example"),
              in_reply_to=message_id("req"), references=[message_id("req")]),
        build(sender="jane@acme.example", to=OFFICE, subject="Re: Signed lease", body="And this.\n",
              when=T0 + timedelta(hours=2), mid=message_id("by-subject", "acme.example")),
        build(sender="hank@globex.example", to=OFFICE, subject="RE: something else", body="See.\n",
              when=T0 + timedelta(hours=3), mid=message_id("by-index", "globex.example"),
              headers={"Thread-Index": base64.b64encode(ROOTS[0] + b"\x01" * 5).decode()}),
    ]
    store = Store.open(":memory:")
    ingestor = Ingestor(parting_settings, store)
    sent = ingestor.parse("Sent", 1, [FetchedHeader(1, request.split(b"\r\n\r\n")[0] + b"\r\n\r\n", T0, len(request))])
    ingestor.stage(sent, {1: request}, NOW)
    inbox = ingestor.parse("INBOX", 1, [FetchedHeader(n + 1, raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n", T0, len(raw))
                                        for n, raw in enumerate(replies)])
    ingestor.stage(inbox, {}, NOW)
    assert store.message_count() == 0 and ingestor.staged_messages == 4  # nothing written yet
    reports = ingestor.flush()
    assert [report.stored for report in reports] == [1, 3]
    threads = {store.message(mid.strip("<>")).thread_id for mid in
               [message_id("req"), message_id("by-ref", "acme.example"), message_id("by-subject", "acme.example"),
                message_id("by-index", "globex.example")]}
    assert len(threads) == 1


def test_bodies_read_behind_are_taken_in_only_when_the_next_batch_is_staged_or_at_the_flush(
        parting_settings) -> None:
    """A staged batch's bodies (does our request ask something?) thread nothing: the worker reads
    them while this process goes on, and they are waited for only when the next batch is staged
    or the group is written; the rows then hold what reading them at once gives."""
    requests = [build(sender=OFFICE, to="jane@acme.example", subject=f"Form {n}", when=T0 + timedelta(hours=n),
                      body="Could you send the form?\n" if n % 2 else "Thank you, noted.\n", mid=message_id(f"f{n}"))
                for n in range(4)]
    parts = [[(FetchedHeader(n + 1, raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n", T0, len(raw)), raw)
              for n, raw in enumerate(requests) if n // 2 == number] for number in range(2)]
    store = Store.open(":memory:")
    ingestor = Ingestor(parting_settings, store)
    waited: list[int] = []

    def staged_behind(part, number: int) -> None:
        batch, bodies = parsed(ingestor, "Sent", part)
        given = ingestor.body_items(batch, bodies)
        assert len(given) == 2  # our requests to a client: their bodies are wanted
        later = Later(frozenset(item.uid for item in given),
                      lambda: waited.append(number) or read_bodies(given))
        ingestor.stage(batch, bodies, NOW, later=later, behind=True)

    staged_behind(parts[0], 0)
    assert waited == []  # this process went on
    staged_behind(parts[1], 1)
    assert waited == [0]  # the first batch's were taken in before the second was staged
    ingestor.flush()
    assert waited == [0, 1]
    asks = dict(store.conn.execute("SELECT message_id, question FROM messages").fetchall())
    assert asks == {message_id(f"f{n}").strip("<>"): n % 2 for n in range(4)}


def test_a_batch_read_again_before_its_flush_finds_its_uids_known(parting_settings) -> None:
    """A watcher may read a folder's batch again (a reconnect) while the first reading is staged:
    the staged UIDs count as known, per folder and UIDVALIDITY, so nothing is stored twice."""
    raw = build(sender="jane@acme.example", to=OFFICE, subject="Keys", body="Here.\n", when=T0,
                mid=message_id("keys", "acme.example"))
    header = FetchedHeader(5, raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n", T0, len(raw))
    store = Store.open(":memory:")
    ingestor = Ingestor(parting_settings, store)
    ingestor.stage(ingestor.parse("INBOX", 1, [header]), {}, NOW)
    assert ingestor.parse("INBOX", 1, [header]).pending == []  # staged: known
    assert len(ingestor.parse("INBOX", 2, [header]).pending) == 1  # another UIDVALIDITY: not
    assert len(ingestor.parse("Sent", 1, [header]).pending) == 1  # another folder: not
    ingestor.flush()
    assert ingestor.parse("INBOX", 1, [header]).pending == []  # written: known to the store


def test_two_copies_of_a_message_id_in_one_batch_thread_a_later_batch_as_the_store_would(parting_settings) -> None:
    """add_messages keeps the first copy's row but the addresses of both: a later reply by
    subject from the second copy's sender joins the first copy's thread, staged or written."""
    def mail(sender: str, when: datetime, mid: str, references: list[str] | None = None) -> tuple[str, bytes, bytes]:
        raw = build(sender=sender, to=OFFICE, subject="Re: Keys", body="Here.\n", when=when, mid=mid,
                    references=references)
        return ("INBOX", raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", raw)

    twice = message_id("twice", "acme.example")
    mailbox = [mail("jane@acme.example", T0, twice, references=[message_id("root", "acme.example")]),
               mail("hank@globex.example", T0 + timedelta(hours=1), twice),
               mail("hank@globex.example", T0 + timedelta(hours=2), message_id("later", "globex.example"))]
    staged = ingest(parting_settings, mailbox, [2], [False])
    assert staged == ingest(parting_settings, mailbox, [2], None)
    threads = {mid: thread for mid, thread in
               ((row[0], row[2]) for row in staged["messages"])}  # message_id, client_id, thread_id
    assert threads[message_id("later", "globex.example").strip("<>")] == threads[twice.strip("<>")]


# ---------------------------------------------------------------- through the Service, real Dovecot


def test_a_catch_up_writes_its_batches_a_group_at_a_time_and_stores_the_golden_rows(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch) -> None:
    """Batches of 7 staged until 14 messages wait: fewer transactions than batches, none
    holding back a batch once 14 messages wait, and exactly the golden rows."""
    from test_ingest_pool import assert_golden, run_once, seeded_config

    config = seeded_config(dovecot, smtp_sink, tmp_path)
    written: list[tuple[int, ...]] = []  # per flush: the messages each staged batch held
    flush = Ingestor.flush

    def counted(self):
        sizes = tuple(len(staged.rows) for staged in self._staged.batches)
        reports = flush(self)
        if reports:
            written.append(sizes)
        return reports

    monkeypatch.setattr(Ingestor, "flush", counted)
    body_readings, behind = IngestPool.body_readings, []

    def recorded(self, items, **options):
        behind.append(options.get("behind", False))
        return body_readings(self, items, **options)

    monkeypatch.setattr(IngestPool, "body_readings", recorded)
    run_once(config, batch=7, staged=14, staged_from=0)
    assert_golden(config)
    assert behind and all(behind)  # a staged batch's bodies: all the worker's, taken in later
    batches = sum(len(sizes) for sizes in written)
    assert len(written) < batches
    # Written as soon as 14 messages wait (quarantined ones are not messages): never later.
    assert all(sum(sizes[:-1]) < 14 for sizes in written)
    assert sum(len(sizes) > 1 for sizes in written) >= 2


async def test_a_stop_mid_catch_up_writes_what_it_staged_and_a_restart_reads_the_rest(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch) -> None:
    """Nothing staged is lost to a stop: the batches threaded before it are written as the
    catch-up ends, with their folders' last UIDs; a restart reads on from there, nothing twice.
    (The catch-up is held after its second batch, so the stop comes mid-way.)"""
    from harness import RunningDaemon
    from test_ingest_golden import GOLDEN, NOW, snapshot
    from test_ingest_pool import run_once, seeded_config

    from daemon.runtime.intake import Intake
    from daemon.runtime.service import Service

    config = seeded_config(dovecot, smtp_sink, tmp_path)
    on_batch, seen, never = Intake._on_batch, [], asyncio.Event()

    async def held_after_two(self, *args):
        await on_batch(self, *args)
        seen.append(args[0])
        if len(seen) >= 2:
            await never.wait()

    monkeypatch.setattr(Intake, "_on_batch", held_after_two)
    daemon = RunningDaemon(config, NOW)
    daemon.service = Service(config, clock=daemon.clock, tick=0.2, environ={}, batch=3, staged=10_000, staged_from=0)
    daemon.task = asyncio.create_task(daemon.service.run(install_signals=False))
    await daemon.wait_for(lambda: len(seen) >= 2, timeout=30, what="two staged batches")
    assert daemon.service.ingestor.staged_messages >= 6
    assert daemon.store.message_count() == 0  # staged, not written
    staged = daemon.service.ingestor.staged_messages
    await daemon.stop()
    stored = snapshot(config.parent / "parting.db")
    assert len(stored["message_uids"]) + len(stored["quarantine"]) == staged, "the staged batches were written at the stop"
    assert stored["folders"], "with their folders' last UIDs"
    monkeypatch.setattr(Intake, "_on_batch", on_batch)
    await asyncio.to_thread(run_once, config, batch=3)
    got, want = snapshot(config.parent / "parting.db"), json.loads(GOLDEN.read_text())
    assert got["message_uids"] == want["message_uids"], "every UID stored once, none skipped"
    assert sorted(row["message_id"] for row in got["messages"]) == sorted(row["message_id"] for row in want["messages"])


def batches_a_write(monkeypatch) -> list[int]:
    """From now on, how many batches each write of the ingest (Ingestor.flush) holds."""
    written: list[int] = []
    flush = Ingestor.flush

    def counted(self):
        batches = len(self._staged.batches)
        reports = flush(self)
        if reports:
            written.append(batches)
        return reports

    monkeypatch.setattr(Ingestor, "flush", counted)
    return written


def test_a_catch_up_into_a_small_database_writes_every_batch_at_once(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch) -> None:
    """Below `staged_from` bytes a commit is cheap: no batch waits for the next one."""
    from test_ingest_pool import assert_golden, run_once, seeded_config

    config = seeded_config(dovecot, smtp_sink, tmp_path)
    written = batches_a_write(monkeypatch)
    run_once(config, batch=7, staged=14, staged_from=10 * 1024 * 1024)
    assert_golden(config)
    assert len(written) > 4 and set(written) == {1}


def test_by_default_a_catch_up_is_staged_once_the_database_passes_4_mb(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch) -> None:
    """The README's sizes, the Service's own defaults: into a new, small store every batch of a
    catch-up is written at once (its first mail reaches the cycle soonest); into one past 4 MB a
    catch-up's batches are written together (up to 3,000 messages a transaction)."""
    from test_ingest_pool import run_once, seeded_config

    from daemon.runtime.intake import STAGED_FROM

    written = batches_a_write(monkeypatch)
    small = seeded_config(dovecot, smtp_sink, tmp_path / "small")
    run_once(small, batch=7)
    assert len(written) > 4 and set(written) == {1}, written

    large = seeded_config(dovecot, smtp_sink, tmp_path / "large", seed=False)  # the same mailbox
    store = Store.open(large.parent / "parting.db")
    with store.transaction():  # a store past 4 MB (its size is all that counts here)
        store.conn.execute("CREATE TABLE filler (blob BLOB)")
        store.conn.executemany("INSERT INTO filler VALUES (?)", [(bytes(100_000),)] * 45)
    assert store.database_bytes() > STAGED_FROM == 4 * 1024 * 1024
    store.close()
    batches = len(written)
    written.clear()
    run_once(large, batch=7)
    assert len(written) == 2 and sum(written) == batches, written  # one write a folder's catch-up


def test_a_failed_write_of_two_folders_batches_makes_each_folder_be_read_again(parting_settings, monkeypatch) -> None:
    """Two watchers catching up at once stage into one group. A write that fails drops it all, the
    batches of the folder that did not fail too: its watcher must read them again from the store's
    state, not go on, or its next write would move the folder's last UID past them for good."""
    def header(uid: int, name: str) -> FetchedHeader:
        raw = build(sender="jane@acme.example", to=OFFICE, subject=f"About {name}", body="Here.\n", when=T0,
                    mid=message_id(name, "acme.example"))
        return FetchedHeader(uid, raw.split(b"\r\n\r\n")[0] + b"\r\n\r\n", T0, len(raw))

    store = Store.open(":memory:")
    ingestor = Ingestor(parting_settings, store)
    ingestor.stage(ingestor.parse("INBOX", 1, [header(1, "in-1")]), {}, NOW)
    ingestor.stage(ingestor.parse("Sent", 1, [header(1, "sent-1")]), {}, NOW)
    sent_2 = ingestor.parse("Sent", 1, [header(2, "sent-2")])  # parsed before the failure, staged after it
    add_messages = store.add_messages
    monkeypatch.setattr(store, "add_messages", lambda rows: (_ for _ in ()).throw(sqlite3.OperationalError("disk full")))
    with pytest.raises(sqlite3.OperationalError):
        ingestor.flush()
    monkeypatch.setattr(store, "add_messages", add_messages)
    for go_on in (lambda: ingestor.parse("Sent", 1, [header(3, "sent-3")]),
                  lambda: ingestor.stage(sent_2, {}, NOW),
                  lambda: ingestor.parse("INBOX", 1, [header(2, "in-2")])):
        with pytest.raises(StagedWritesDropped):
            go_on()
    assert store.folder_state("Sent") is None and store.folder_state("INBOX") is None
    ingestor.read_again("Sent")  # its watcher asks the store where the folder stands: UID 0
    ingestor.stage(ingestor.parse("Sent", 1, [header(1, "sent-1"), header(2, "sent-2")]), {}, NOW)
    assert [report.stored for report in ingestor.flush()] == [2]
    assert store.folder_state("Sent").last_uid == 2
    with pytest.raises(StagedWritesDropped):  # INBOX's watcher has not asked yet
        ingestor.parse("INBOX", 1, [header(2, "in-2")])


async def test_both_watchers_read_again_what_a_failed_write_of_their_staged_batches_dropped(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch) -> None:
    """The running daemon catches up INBOX and Sent at once, staging both into one group. The first
    write holding both folders' batches fails (the disk, say): each watcher reads its folder again
    from the store's state, and in the end every UID is stored once, none skipped."""
    from harness import RunningDaemon
    from test_ingest_golden import GOLDEN, NOW, snapshot
    from test_ingest_pool import seeded_config

    from daemon.runtime.service import Service

    config = seeded_config(dovecot, smtp_sink, tmp_path)
    flush, failed = Ingestor.flush, []

    def failing_once(self):
        folders = {staged.batch.folder for staged in self._staged.batches}
        if failed or len(folders) < 2:
            return flush(self)
        failed.append(sorted(folders))
        add_messages = self.store.add_messages
        self.store.add_messages = lambda rows: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error"))
        try:
            return flush(self)
        finally:
            self.store.add_messages = add_messages

    monkeypatch.setattr(Ingestor, "flush", failing_once)
    want = json.loads(GOLDEN.read_text())
    daemon = RunningDaemon(config, NOW)
    daemon.service = Service(config, clock=daemon.clock, tick=0.2, environ={}, batch=2, staged=10_000, staged_from=0)
    daemon.task = asyncio.create_task(daemon.service.run(install_signals=False))
    try:
        database = config.parent / "parting.db"
        await daemon.wait_for(lambda: bool(failed) and database.exists() and len(snapshot(database)["message_uids"])
                              >= len(want["message_uids"]), timeout=60, what="every message stored")
    finally:
        await daemon.stop()
    assert failed and len(failed[0]) == 2, "a write of both folders' staged batches failed"
    got = snapshot(config.parent / "parting.db")
    assert got["message_uids"] == want["message_uids"], "every UID stored once, none skipped"
    assert got["quarantine"] == want["quarantine"]
