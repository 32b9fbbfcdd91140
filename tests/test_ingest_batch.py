"""Ingest threads a batch the same whichever way the mailbox is cut into batches: a reply that
names its thread only by subject finds a message of the same batch as well as a stored one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from harness import write_config
from mailfactory import OFFICE, build, message_id, request

from daemon.adapters.imap.connection import FetchedHeader
from daemon.adapters.settings.load import load_settings
from daemon.adapters.store import Store
from daemon.flows.ingest import Ingestor

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=10)


@pytest.fixture
def settings(tmp_path: Path):
    fake_server = SimpleNamespace(port=1143, password="secret", user="office")
    return load_settings(write_config(tmp_path, fake_server, SimpleNamespace(port=2525)), environ={})


def header_only(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"


def bare_reply(sender: str, subject: str, when: datetime, tag: str) -> tuple[bytes, str]:
    """A client's answer whose mail program kept the subject but dropped In-Reply-To and References."""
    mid = message_id(tag, sender.split("@")[1])
    return build(sender=sender, to=OFFICE, subject=f"Re: {subject}", body="Here it is.\n", when=when, mid=mid), mid


def mailbox() -> list[tuple[str, bytes, str]]:
    """(folder, raw, Message-ID) in arrival order: two requests to acme, each answered twice by
    subject only, and one to globex on the same bare topic that acme's answers must not join."""
    mail = []
    for n, subject in enumerate(["Signed lease", "Meter readings"]):
        raw, mid = request("jane@acme.example", subject, T0 + timedelta(days=n, hours=1), f"req{n}")
        mail.append(("Sent", raw, mid))
        for k in range(2):  # she answers, then sends what she forgot, both by subject only
            raw, mid = bare_reply("jane@acme.example", subject, T0 + timedelta(days=n, hours=3 + k), f"rep{n}.{k}")
            mail.append(("INBOX", raw, mid))
    raw, mid = request("hank@globex.example", "Meter readings", T0 + timedelta(days=1, hours=2), "globex")
    mail.append(("Sent", raw, mid))
    return mail


def ingest(settings, batches: list[list[int]]) -> dict[str, str]:
    """Ingest the mailbox cut into these batches (positions in arrival order); Message-ID -> thread."""
    mail = mailbox()
    store = Store.open(":memory:")
    ingestor = Ingestor(settings, store)
    for positions in batches:
        for folder in ("INBOX", "Sent"):
            headers = [FetchedHeader(uid=p + 1, header=header_only(mail[p][1]), internaldate=T0 + timedelta(days=9),
                                     size=len(mail[p][1])) for p in positions if mail[p][0] == folder]
            if not headers:
                continue
            batch = ingestor.parse(folder, 1, headers)
            bodies = {p + 1: mail[p][1] for p in positions if p + 1 in batch.body_uids}
            ingestor.commit(batch, bodies, NOW)
    return {mid: store.message(mid.strip("<>")).thread_id for _, _, mid in mail}


def grouping(threads: dict[str, str]) -> set[frozenset[str]]:
    return {frozenset(mid for mid in threads if threads[mid] == thread) for thread in threads.values()}


def test_a_reply_by_subject_finds_its_thread_in_the_same_batch(settings) -> None:
    one_batch = ingest(settings, [list(range(7))])
    one_by_one = ingest(settings, [[n] for n in range(7)])
    assert grouping(one_batch) == grouping(one_by_one)  # thread ids name a thread's first message seen
    threads = list(one_batch.values())
    request0, reply0, again0, request1, reply1, again1, globex = threads
    assert reply0 == again0 == request0 and reply1 == again1 == request1  # each bare reply joined the request
    assert request0 != request1 and globex != request1  # another subject, another client's thread


def test_only_a_real_reply_counts_as_a_client_reply(settings) -> None:
    """The one test of a reply (core/rules.py is_real_reply): mail carrying parting's own
    X-Parting-Kind that comes back into the Inbox is not the client answering."""
    store = Store.open(":memory:")
    ingestor = Ingestor(settings, store)
    real, real_id = bare_reply("jane@acme.example", "Signed lease", T0 + timedelta(hours=3), "real")
    ours_id = message_id("ours", "acme.example")
    ours = build(sender="jane@acme.example", to=OFFICE, subject="Re: Signed lease", body="Hello\n",
                 when=T0 + timedelta(hours=4), mid=ours_id, headers={"X-Parting-Kind": "release"})
    headers = [FetchedHeader(uid=n + 1, header=header_only(raw), internaldate=T0 + timedelta(hours=4), size=len(raw))
               for n, raw in enumerate([real, ours])]
    report = ingestor.commit(ingestor.parse("INBOX", 1, headers), {}, NOW)
    assert report.stored == 2
    assert report.client_replies == [real_id.strip("<>")]


def test_threading_a_batch_asks_the_store_a_fixed_number_of_questions(settings) -> None:
    """Replies to stored messages and new conversations on new subjects are threaded from answers
    the store gives once per batch: the SELECTs a commit runs do not grow with the batch."""
    from mailfactory import reply

    def selects_to_commit(size: int) -> int:
        store = Store.open(":memory:")
        ingestor = Ingestor(settings, store)
        sent = [request("jane@acme.example", f"Lease {n}", T0 + timedelta(hours=n), f"cnt{size}.{n}")
                for n in range(size)]
        first = [FetchedHeader(uid=n + 1, header=header_only(raw), internaldate=T0 + timedelta(hours=n), size=len(raw))
                 for n, (raw, _) in enumerate(sent)]
        ingestor.commit(ingestor.parse("Sent", 1, first), {}, NOW)
        later = T0 + timedelta(days=2)
        inbox = [reply("jane@acme.example", mid, f"Lease {n}", later + timedelta(hours=n), f"rep{size}.{n}")[0]
                 for n, (_, mid) in enumerate(sent)]
        inbox += [build(sender="jane@acme.example", to=OFFICE, subject=f"New topic {n}", body="Hello.\n",
                        when=later + timedelta(hours=n), mid=message_id(f"new{size}.{n}", "acme.example"))
                  for n in range(size)]
        second = [FetchedHeader(uid=n + 1, header=header_only(raw), internaldate=later + timedelta(hours=n % size),
                                size=len(raw)) for n, raw in enumerate(inbox)]
        batch = ingestor.parse("INBOX", 1, second)
        statements: list[str] = []
        store.conn.set_trace_callback(statements.append)
        report = ingestor.commit(batch, {}, NOW)
        store.conn.set_trace_callback(None)
        assert report.stored == 2 * size
        threads = {store.message(mid.strip("<>")).thread_id for _, mid in sent}
        assert len(threads) == size  # each reply joined its own request (checked below)
        for n, (_, mid) in enumerate(sent):
            reply_id = message_id(f"rep{size}.{n}", "acme.example").strip("<>")
            assert store.message(reply_id).thread_id == store.message(mid.strip("<>")).thread_id
        return sum(statement.lstrip().upper().startswith("SELECT") for statement in statements)

    assert selects_to_commit(3) == selects_to_commit(12)
