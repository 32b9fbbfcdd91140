"""Threading's look-ups (by subject, and the client of a thread) answer from their tables of the
latest message of each key exactly as the old queries over the messages did (a scan of the JSON
address lists), and an old database gains those tables for the messages it already holds."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import daemon.adapters.store as store_package
from daemon.adapters.store import MessageRow, Store
from daemon.adapters.store.base import to_json, to_utc_text

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ADDRESSES = [f"p{n}@c{n % 4}.example" for n in range(12)] + ["office@firm.example"]
SUBJECTS = ["invoice", "plans", "meeting", ""]
CLIENTS = ["c0", "c1", "c2", "c3", None]

# The query thread_of_subject ran before the index: every message with the subject, addresses
# read from its JSON lists. Kept here as the reference the indexed query must agree with.
REFERENCE = """SELECT m.thread_id FROM messages AS m
   WHERE m.norm_subject = :subject AND m.at >= :since
     AND (m.client_id = :client
          OR m.from_addr IN (SELECT value FROM json_each(:addrs))
          OR EXISTS (SELECT 1 FROM json_each(m.to_addrs) AS t
                     WHERE t.value IN (SELECT value FROM json_each(:addrs)))
          OR EXISTS (SELECT 1 FROM json_each(m.cc_addrs) AS c
                     WHERE c.value IN (SELECT value FROM json_each(:addrs))))
   ORDER BY m.at DESC, m.message_id DESC LIMIT 1"""


def random_rows(rng: random.Random, count: int) -> list[tuple[MessageRow, str, int, int]]:
    rows = []
    for n in range(count):
        to = tuple(rng.sample(ADDRESSES, rng.randint(0, 3)))
        rows.append((MessageRow(
            message_id=f"m{n}@example.com", client_id=rng.choice(CLIENTS), thread_id=f"t{rng.randint(0, 30)}",
            direction=rng.choice(["in", "out"]), at=T0 + timedelta(hours=rng.randint(0, 200)),
            subject="s", from_addr=rng.choice([*ADDRESSES, ""]), to_addrs=to,
            cc_addrs=tuple(rng.sample(ADDRESSES, rng.randint(0, 2))), norm_subject=rng.choice(SUBJECTS),
        ), "INBOX", 1, n + 1))
    return rows


def reference_answer(store: Store, subject: str, client: str | None, addrs: list[str], since: datetime):
    row = store.conn.execute(REFERENCE, {"subject": subject, "since": to_utc_text(since), "client": client,
                                         "addrs": to_json(addrs)}).fetchone()
    return row[0] if row else None


# And client_of_thread's, the latest message of the thread that has a client.
CLIENT_OF_THREAD = """SELECT client_id FROM messages WHERE thread_id = ? AND client_id IS NOT NULL
   ORDER BY at DESC, message_id DESC LIMIT 1"""


def ask_everything(store: Store, rng: random.Random, questions: int) -> list[tuple]:
    threads = [row[0] for row in store.conn.execute("SELECT DISTINCT thread_id FROM messages")]
    for thread in [*threads, "no such thread"]:
        expected_client = store.conn.execute(CLIENT_OF_THREAD, [thread]).fetchone()
        assert store.client_of_thread(thread) == (expected_client[0] if expected_client else None), thread
    stored = {row[0] for row in store.conn.execute("SELECT norm_subject FROM messages")}
    assert store.stored_subjects([*SUBJECTS, "never used"]) == stored
    answers = []
    for _ in range(questions):
        subject, client = rng.choice(SUBJECTS), rng.choice(CLIENTS)
        addrs = rng.sample(ADDRESSES, rng.randint(0, 3))
        since = T0 + timedelta(hours=rng.randint(-10, 210))
        expected = reference_answer(store, subject, client, addrs, since)
        assert store.thread_of_subject(subject, client, addrs, since) == expected, (subject, client, addrs, since)
        answers.append(expected)
    return answers


@pytest.mark.parametrize("seed", range(5))
def test_indexed_subject_lookup_agrees_with_the_json_scan(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    with Store.open(tmp_path / "p.db") as store:
        rows = random_rows(rng, 300)
        store.add_messages(rows[:200])
        store.add_messages(rows[150:])  # 50 seen again (another batch): stored and indexed once
        for row, _folder, _uidvalidity, uid in random_rows(random.Random(seed + 100), 20):
            store.add_message(row, folder="Sent", uidvalidity=7, uid=uid)
        answers = ask_everything(store, rng, 400)
        assert sum(a is not None for a in answers) > 100  # the questions do find threads
        # One row per address and subject that some stored message has, however often it was seen.
        indexed = store.conn.execute("SELECT count(*) FROM latest_by_address_subject").fetchone()[0]
        pairs = {(address, row.norm_subject) for row, *_ in rows
                 for address in (row.from_addr, *row.to_addrs, *row.cc_addrs) if address}
        assert indexed == len(pairs)


def test_a_version_1_database_is_indexed_when_upgraded(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "old.db"
    monkeypatch.setattr(store_package, "MIGRATIONS", store_package.MIGRATIONS[:1])
    monkeypatch.setattr(store_package, "SCHEMA_VERSION", 1)
    rng = random.Random(42)
    with Store.open(path) as old:
        old.conn.execute("DROP TABLE IF EXISTS latest_by_address_subject")  # v1 had no index of addresses
        with old.transaction():
            old.conn.executemany(
                "INSERT INTO messages (message_id, client_id, thread_id, direction, at, subject, from_addr,"
                " to_addrs, cc_addrs, norm_subject) VALUES (?, ?, ?, ?, ?, 's', ?, ?, ?, ?)",
                [(r.message_id, r.client_id, r.thread_id, r.direction, to_utc_text(r.at), r.from_addr,
                  to_json(list(r.to_addrs)), to_json(list(r.cc_addrs)), r.norm_subject)
                 for r, *_ in random_rows(rng, 200)])
        assert old.schema_version() == 1
    monkeypatch.undo()
    with Store.open(path) as upgraded:
        assert upgraded.schema_version() == store_package.SCHEMA_VERSION
        answers = ask_everything(upgraded, random.Random(7), 300)
        assert sum(a is not None for a in answers) > 50
