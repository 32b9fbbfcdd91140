"""The durable store: every method's behaviour, its uniqueness rules, migrations and read-only use."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import daemon.adapters.store as store_package
from daemon.adapters.store import (
    SCHEMA_VERSION,
    MessageRow,
    Store,
    StoreError,
    TokenRow,
)
from daemon.core.model import Envelope

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "parting.db") as opened:
        yield opened


def message(n: int, **changes) -> MessageRow:
    fields = dict(
        message_id=f"m{n}@example.com", client_id="acme", thread_id=f"t{n}", direction="in",
        at=at(n), subject=f"Subject {n}", from_addr="bob@acme.example",
        to_addrs=("office@firm.example",), norm_subject=f"subject {n}",
    )
    fields.update(changes)
    return MessageRow(**fields)


# -- opening, pragmas, migrations ----------------------------------------------------------------


def test_open_creates_the_schema_and_sets_the_pragmas(store: Store) -> None:
    assert store.schema_version() == SCHEMA_VERSION
    pragma = lambda name: store.conn.execute(f"PRAGMA {name}").fetchone()[0]  # noqa: E731
    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 2  # FULL
    assert pragma("wal_autocheckpoint") == 10_000  # checkpoints every ~40 MB of WAL, not every 4 MB
    assert pragma("busy_timeout") == 10_000
    assert pragma("foreign_keys") == 1
    assert store.integrity_check() == "ok"


def test_reopening_keeps_data_and_version(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as first:
        first.append_event("hold_over", at=T0)
    with Store.open(tmp_path / "p.db") as second:
        assert second.schema_version() == SCHEMA_VERSION
        assert [e.kind for e in second.events()] == ["hold_over"]


def test_open_in_a_missing_folder_is_refused_with_advice(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(StoreError) as error:
        Store.open(missing / "parting.db")
    assert str(error.value) == f"database folder {missing} does not exist: create it or set state.database"
    assert not missing.exists()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store.open(path) as opened:
        opened.db.execute("UPDATE schema_version SET version = ?", [SCHEMA_VERSION + 6])
    with pytest.raises(StoreError) as error:
        Store.open(path)
    assert str(error.value) == (
        f"database schema version {SCHEMA_VERSION + 6} is newer than this parting"
        f" ({SCHEMA_VERSION}): upgrade parting")
    with pytest.raises(StoreError, match="is newer than this parting"):
        Store.open_readonly(path)


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="is not a SQLite database"):
        Store.open(path)
    with pytest.raises(StoreError, match="is not a SQLite database"):
        Store.open_readonly(path)
    assert path.read_bytes() == before


def test_another_programs_database_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"not parting's \(invoices\)"):
        Store.open(with_tables(tmp_path / "other.db", "invoices"))


def with_tables(path: Path, *names: str) -> Path:
    conn = sqlite3.connect(path)
    for name in names:
        conn.execute(f"CREATE TABLE {name} (id INTEGER)")
    conn.commit()
    conn.close()
    return path


def test_a_new_file_litestream_has_begun_to_replicate_is_parting_s(tmp_path: Path) -> None:
    # Under `litestream replicate -exec "parting run"`, Litestream may create the file and its
    # tables before parting's first open (seen in tests/faults/test_fault_failover.py).
    with Store.open(with_tables(tmp_path / "parting.db", "_litestream_seq", "_litestream_lock")) as store:
        assert store.schema_version() == SCHEMA_VERSION
    # Only Litestream's own tables: any other is still another program's.
    with pytest.raises(StoreError, match=r"not parting's \(_litestream_other\)"):
        Store.open(with_tables(tmp_path / "other.db", "_litestream_seq", "_litestream_other"))


def test_a_folder_as_database_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="is a folder"):
        Store.open(tmp_path)


def test_a_folder_that_is_not_writable_is_refused(tmp_path: Path) -> None:
    open_to_all = Path(tempfile.mkdtemp(prefix="parting-store-"))  # pytest's tmp is private
    folder = open_to_all / "locked"
    folder.mkdir()
    open_to_all.chmod(0o755)
    folder.chmod(0o555)
    script = (
        "import sys\nfrom daemon.adapters.store import Store, StoreError\n"
        "try:\n    Store.open(sys.argv[1])\nexcept StoreError as e:\n    print(e)\n"
    )
    command = [sys.executable, "-c", script, str(folder / "p.db")]
    if os.geteuid() == 0:  # root may write anywhere: ask as an unprivileged user
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    finally:
        shutil.rmtree(open_to_all)
    assert result.stdout.strip() == (
        f"database folder {folder} is not writable by this user"
        " (SQLite keeps its -wal and -shm files beside the database)"), result.stderr


def test_a_failing_migration_leaves_the_old_version(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "p.db"
    Store.open(path).close()

    def broken(db) -> None:
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_package, "MIGRATIONS", [*store_package.MIGRATIONS, broken])
    monkeypatch.setattr(store_package, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="migration bug"):
        Store.open(path)
    monkeypatch.undo()
    with Store.open(path) as reopened:
        assert reopened.schema_version() == SCHEMA_VERSION
        assert "half_done" not in reopened.db.table_names()


def test_a_later_migration_is_applied_on_open(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "p.db"
    Store.open(path).close()

    def add_column(db) -> None:
        db.execute("ALTER TABLE casefile_notes ADD COLUMN mood TEXT")

    monkeypatch.setattr(store_package, "MIGRATIONS", [*store_package.MIGRATIONS, add_column])
    monkeypatch.setattr(store_package, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Store.open(path) as upgraded:
        assert upgraded.schema_version() == SCHEMA_VERSION + 1
        assert "mood" in upgraded.db["casefile_notes"].columns_dict


def test_memory_store_for_unit_tests() -> None:
    with Store.open(":memory:") as memory:
        memory.append_event("hold_over", at=T0)
        assert len(memory.events()) == 1


# -- transactions and times ----------------------------------------------------------------------


def test_a_transaction_is_all_or_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.append_event("verdict", at=T0)
            store.enqueue("<a@x>", "release", "us@x", ["c@y"], b"raw", T0)
            raise RuntimeError("crash before commit")
    assert store.events() == [] and store.rows() == []


def foreign_keys(store: Store) -> int:
    return store.conn.execute("PRAGMA foreign_keys").fetchone()[0]


def test_a_transaction_without_reference_checks_turns_them_on_again_however_it_ends(store: Store) -> None:
    orphan = "INSERT INTO message_uids (folder, uidvalidity, uid, message_id) VALUES ('INBOX', 1, ?, 'none@x')"
    with store.transaction(check_references=False):
        assert foreign_keys(store) == 0
        store.conn.execute(orphan, [1])  # unchecked, as ingest's writes are
        with store.transaction():  # nested: the outer block's setting holds
            store.conn.execute(orphan, [2])
    assert foreign_keys(store) == 1
    with pytest.raises(RuntimeError):
        with store.transaction(check_references=False):
            raise RuntimeError("crash before commit")
    assert foreign_keys(store) == 1
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.conn.execute(orphan, [3])  # checked again
    assert [row[2] for row in store.conn.execute("PRAGMA foreign_key_check")] == ["messages", "messages"]


def test_a_failed_inner_block_undoes_only_itself(store: Store) -> None:
    with store.transaction():
        store.append_event("verdict", at=T0)
        with pytest.raises(RuntimeError):
            with store.transaction():
                store.append_event("ladder_step", at=T0)
                raise RuntimeError
        store.append_event("hold_over", at=T0)
    assert [e.kind for e in store.events()] == ["verdict", "hold_over"]


def test_writes_are_invisible_to_others_until_the_outer_commit(store: Store) -> None:
    other = Store.open(store.path)
    with store.transaction():
        store.append_event("verdict", at=T0)
        with store.transaction():
            store.add_note("acme", "ann", "inner block done", T0)
        assert other.events() == [] and other.notes("acme") == []
    assert len(other.events()) == 1 and len(other.notes("acme")) == 1
    other.close()


def test_times_are_stored_as_utc_text_and_returned_aware(store: Store) -> None:
    event_id = store.append_event("verdict", at=datetime(2026, 11, 2, 11, 0, tzinfo=CET))
    stored = store.conn.execute("SELECT at FROM events WHERE id = ?", [event_id]).fetchone()[0]
    assert stored == "2026-11-02T10:00:00+00:00"
    assert store.events()[0].at == T0 and store.events()[0].at.utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        store.append_event("verdict", at=datetime(2026, 11, 2, 10, 0))


# -- events --------------------------------------------------------------------------------------


def test_events_round_trip_and_filter(store: Store) -> None:
    first = store.append_event(
        "verdict", at=T0, client_id="acme", message_ids=["a@x", "b@x"],
        data={"state": "overdue", "previous": at(5), "rules": {"silent"}}, policy_hash="abc")
    second = store.append_event("ladder_step", at=at(1), client_id="acme", draft_id=None)
    third = store.append_event("verdict", at=at(2), client_id="other")
    event = store.events()[0]
    assert (event.id, event.kind, event.client_id, event.message_ids, event.policy_hash) == (
        first, "verdict", "acme", ("a@x", "b@x"), "abc")
    assert event.data == {"state": "overdue", "previous": "2026-11-02T10:05:00+00:00", "rules": ["silent"]}
    assert first < second < third
    assert [e.id for e in store.events(client_id="acme")] == [first, second]
    assert [e.id for e in store.events(kinds=["verdict"])] == [first, third]
    assert [e.id for e in store.events(after_id=first)] == [second, third]
    assert [e.id for e in store.events(limit=2)] == [first, second]


def test_events_cannot_be_updated_or_deleted(store: Store) -> None:
    store.append_event("verdict", at=T0, client_id="acme")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: no UPDATE"):
        store.db.execute("UPDATE events SET kind = 'forged'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only: no DELETE"):
        store.db.execute("DELETE FROM events")
    assert [e.kind for e in store.events()] == ["verdict"]


# -- messages ------------------------------------------------------------------------------------


def test_a_message_is_stored_once_and_linked_from_each_location(store: Store) -> None:
    row = message(1, body_text="Thanks, approved", from_staff=True, ingested_at=at(3),
                  cc_addrs=("ann@firm.example",), in_reply_to=("m0@x",), references=("r@x", "m0@x"),
                  thread_index_root="AQHX", auto_reply=None, bounce=True, question=True, tagged=True,
                  parting_kind="review", content_hash="ff" * 32, size=1234)
    assert store.add_message(row, folder="INBOX", uidvalidity=7, uid=10) is True
    assert store.add_message(message(1, subject="changed"), folder="Sent", uidvalidity=3, uid=4) is False
    assert store.message_count() == 1
    assert store.message("m1@example.com") == row
    assert store.message("unknown@x") is None
    assert store.known_uids("INBOX", 7, [9, 10, 11]) == {10}
    assert store.known_uids("Sent", 3, [3, 4]) == {4}
    assert store.known_uids("INBOX", 8, [10]) == set()


def test_add_messages_stores_a_batch_and_reports_the_new_ids(store: Store) -> None:
    store.add_message(message(1), folder="INBOX", uidvalidity=7, uid=1)
    batch = [(message(n), "INBOX", 7, n) for n in range(1, 6)] + [(message(2), "Sent", 3, 99)]
    assert store.add_messages(batch) == {f"m{n}@example.com" for n in range(2, 6)}
    assert store.message_count() == 5
    assert store.known_uids("INBOX", 7, range(1, 10)) == {1, 2, 3, 4, 5}
    assert store.known_uids("Sent", 3, [99]) == {99}
    assert store.add_messages(batch) == set()
    assert store.message_count() == 5


def test_envelopes_per_client_in_time_order(store: Store) -> None:
    store.add_messages([
        (message(3), "INBOX", 1, 3),
        (message(1, direction="out", question=True, from_addr="us@firm.example"), "Sent", 1, 1),
        (message(2, client_id="zeta", auto_reply="Auto-Submitted: auto-replied"), "INBOX", 1, 2),
        (message(4, client_id=None), "INBOX", 1, 4),
    ])
    acme = store.envelopes("acme")
    assert [e.message_id for e in acme] == ["m1@example.com", "m3@example.com"]
    assert acme[0] == Envelope(
        message_id="m1@example.com", client_id="acme", thread_id="t1", direction="out", at=at(1),
        subject="Subject 1", from_addr="us@firm.example", question=True)
    grouped = store.recent_histories({"acme": None, "zeta": None, "nobody": None}, at(10))
    assert set(grouped) == {"acme", "zeta"}  # the unassigned message is in no one's history
    assert grouped["acme"] == acme
    assert grouped["zeta"][0].auto_reply == "Auto-Submitted: auto-replied"


def test_client_message_listings(store: Store) -> None:
    store.add_messages([(message(n), "INBOX", 1, n) for n in (4, 1, 3, 2)])
    ids = lambda rows: [r.message_id[:2] for r in rows]  # noqa: E731
    assert ids(store.messages_for_client("acme")) == ["m1", "m2", "m3", "m4"]
    assert ids(store.messages_for_client("acme", limit=2)) == ["m3", "m4"]
    assert ids(store.recent_messages("acme", 3)) == ["m4", "m3", "m2"]
    assert store.messages_for_client("nobody") == []


def test_thread_lookup_by_message_ids_and_index_root(store: Store) -> None:
    store.add_messages([
        (message(1, thread_id="T-a", thread_index_root="ROOT"), "INBOX", 1, 1),
        (message(2, thread_id="T-b", thread_index_root="ROOT"), "INBOX", 1, 2),
    ])
    assert store.thread_of_message_ids(["nope@x", "m2@example.com", "m1@example.com"]) == "T-b"
    assert store.thread_of_message_ids(["m1@example.com", "m2@example.com"]) == "T-a"
    assert store.thread_of_message_ids(["nope@x"]) is None
    assert store.thread_of_message_ids([]) is None
    assert store.thread_of_index_root("ROOT") == "T-b"  # the latest message's thread
    assert store.thread_of_index_root("OTHER") is None


def test_thread_lookup_by_subject_needs_the_client_or_a_shared_address(store: Store) -> None:
    store.add_messages([
        (message(1, thread_id="T-old", norm_subject="invoice"), "INBOX", 1, 1),
        (message(10, thread_id="T-acme", norm_subject="invoice"), "INBOX", 1, 10),
        (message(20, thread_id="T-zeta", client_id="zeta", from_addr="eve@zeta.example",
                 to_addrs=("office@firm.example",), norm_subject="invoice"), "INBOX", 1, 20),
        (message(30, thread_id="T-cc", client_id=None, direction="out", from_addr="us@firm.example",
                 to_addrs=("x@y.example",), cc_addrs=("new@acme.example",), norm_subject="invoice"),
         "Sent", 1, 30),
    ])
    lookup = store.thread_of_subject
    assert lookup("invoice", "acme", [], at(5)) == "T-acme"
    assert lookup("invoice", "acme", [], at(11)) is None  # nothing of acme's since then
    assert lookup("invoice", "acme", ["new@acme.example"], at(5)) == "T-cc"  # most recent first
    assert lookup("invoice", None, ["eve@zeta.example"], at(0)) == "T-zeta"  # from
    assert lookup("invoice", None, ["x@y.example"], at(0)) == "T-cc"  # to
    assert lookup("invoice", "nobody", ["stranger@else.example"], at(0)) is None
    assert lookup("receipt", "acme", [], at(0)) is None


def test_client_of_thread(store: Store) -> None:
    store.add_messages([
        (message(1, thread_id="T", client_id="acme"), "INBOX", 1, 1),
        (message(2, thread_id="T", client_id=None), "INBOX", 1, 2),
    ])
    assert store.client_of_thread("T") == "acme"
    assert store.client_of_thread("unknown") is None


# -- folders, quarantine, triage -----------------------------------------------------------------


def test_folder_state_and_uidvalidity_reset(store: Store) -> None:
    assert store.folder_state("INBOX") is None
    store.save_folder_state("INBOX", 7, 40, 1234)
    store.save_folder_state("INBOX", 7, 41)
    state = store.folder_state("INBOX")
    assert (state.name, state.uidvalidity, state.last_uid, state.highestmodseq) == ("INBOX", 7, 41, None)
    store.add_messages([(message(1), "INBOX", 7, 1), (message(2), "Sent", 3, 2)])
    store.save_folder_state("Sent", 3, 2)
    store.reset_folder("INBOX", 8)
    state = store.folder_state("INBOX")
    assert (state.uidvalidity, state.last_uid) == (8, 0)
    assert store.known_uids("INBOX", 7, [1]) == set()
    assert store.message_count() == 2  # the messages stay
    assert store.known_uids("Sent", 3, [2]) == {2}
    assert store.folder_state("Sent").last_uid == 2


def test_quarantine_is_idempotent_per_location(store: Store) -> None:
    assert store.quarantine("INBOX", 7, 5, "unreadable headers", "aa", 10, at(1)) is True
    assert store.quarantine("INBOX", 7, 5, "again", "aa", 10, at(2)) is False
    assert store.quarantine("INBOX", 7, 6, "too large", None, 10**9, at(3)) is True
    assert store.quarantine_count() == 2
    items = store.quarantined()
    assert [(q.uid, q.reason, q.at) for q in items] == [(6, "too large", at(3)), (5, "unreadable headers", at(1))]
    assert len(store.quarantined(limit=1)) == 1


def test_triage_items_open_and_close(store: Store) -> None:
    assert store.add_triage("m1@x", None, "no client", at(1)) is True
    assert store.add_triage("m1@x", None, "no client", at(2)) is False
    assert store.add_triage("m2@x", "acme", "two clients match", at(3)) is True
    assert store.triage_count() == 2
    first = store.triage()[0]
    assert (first.message_id, first.reason, first.at) == ("m1@x", "no client", at(1))
    assert store.close_triage(first.id, at(4), "ann", "spam") is True
    assert store.close_triage(first.id, at(5), "bob") is False
    assert [t.message_id for t in store.triage()] == ["m2@x"]
    assert store.triage_count() == 1
    closed = [t for t in store.triage(open_only=False) if t.id == first.id][0]
    assert (closed.closed_at, closed.closed_by, closed.note) == (at(4), "ann", "spam")
    with pytest.raises(StoreError, match="no triage item 99"):
        store.close_triage(99, at(6), "ann")


# -- client state --------------------------------------------------------------------------------


def test_pausing_clients(store: Store) -> None:
    store.set_paused("acme", True, at(1))
    store.set_paused("zeta", True, at(1))
    store.set_paused("zeta", False, at(2))
    assert store.paused_clients() == {"acme"}


def test_only_the_latest_verdict_is_kept(store: Store) -> None:
    store.save_verdict("acme", {"state": "awaiting"}, at(1))
    store.save_verdict("acme", {"state": "overdue", "since": at(2)}, at(2))
    store.save_verdict("zeta", {"state": "active"}, at(2))
    assert store.latest_verdicts() == {
        "acme": {"state": "overdue", "since": "2026-11-02T10:02:00+00:00"},
        "zeta": {"state": "active"},
    }


def test_a_ladder_step_is_taken_once_per_episode(store: Store) -> None:
    assert store.record_step("acme", 1, "nudge", at(1)) is True
    assert store.record_step("acme", 1, "nudge", at(2)) is False
    assert store.record_step("acme", 1, "notify_owner", at(3)) is True
    assert store.record_step("acme", 2, "nudge", at(4)) is True
    assert store.steps_done("acme", 1) == {"nudge", "notify_owner"}
    assert store.steps_done("acme", 2) == {"nudge"}
    assert store.steps_done("zeta", 1) == set()


def test_casefile_notes(store: Store) -> None:
    first = store.add_note("acme", "ann", "called, no answer", at(2))
    store.add_note("acme", "bob", "they wrote back", at(5))
    store.add_note("zeta", "ann", "other client", at(1))
    notes = store.notes("acme")
    assert [(n.id, n.author, n.text, n.at) for n in notes][0] == (first, "ann", "called, no answer", at(2))
    assert [n.author for n in notes] == ["ann", "bob"]


# -- drafts and review ---------------------------------------------------------------------------


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def new_draft(store: Store, text: str = "Dear Acme, ...") -> int:
    return store.create_draft("acme", "release", "Our work together", text, sha(text), "parting",
                              episode=1, at=at(0), state="owner_review")


def test_a_draft_starts_with_version_one_and_grows_versions(store: Store) -> None:
    draft_id = new_draft(store)
    draft = store.draft(draft_id)
    assert (draft.client_id, draft.kind, draft.state, draft.episode, draft.current_version,
            draft.subject, draft.created_at, draft.hold_until) == (
        "acme", "release", "owner_review", 1, 1, "Our work together", at(0), None)
    assert store.add_version(draft_id, "Dear Acme, edited", sha("Dear Acme, edited"), "ann", at(5)) == 2
    assert store.add_version(draft_id, "Third", sha("Third"), "bob", at(6)) == 3
    draft = store.draft(draft_id)
    assert (draft.current_version, draft.updated_at) == (3, at(6))
    versions = store.versions(draft_id)
    assert [(v.version, v.writer, v.text_sha256) for v in versions] == [
        (1, "parting", sha("Dear Acme, ...")), (2, "ann", sha("Dear Acme, edited")), (3, "bob", sha("Third"))]
    with pytest.raises(StoreError, match="no draft 99"):
        store.draft(99)
    with pytest.raises(StoreError, match="no draft 99"):
        store.add_version(99, "x", sha("x"), "ann", at(1))


def test_draft_states_and_holds(store: Store) -> None:
    first, second = new_draft(store), new_draft(store)
    store.set_draft_state(first, "held", at(1), hold_until=at(60 * 24 * 3))
    assert store.draft(first).hold_until == at(60 * 24 * 3)
    assert [d.id for d in store.drafts(states=["held"])] == [first]
    assert [d.id for d in store.drafts()] == [first, second]
    assert [d.id for d in store.drafts(client_id="zeta")] == []
    store.set_draft_state(first, "owner_review", at(2))
    assert store.draft(first).hold_until is None
    with pytest.raises(StoreError, match="no draft 42"):
        store.set_draft_state(42, "held", at(1))


def test_a_person_endorses_a_version_once(store: Store) -> None:
    draft_id = new_draft(store)
    store.add_version(draft_id, "v2", sha("v2"), "ann", at(1))
    assert store.endorse(draft_id, 2, "ann", "owner", "wrote", at(1)) is True
    assert store.endorse(draft_id, 2, "ann", "owner", "approved", at(2), "r@x") is False
    assert store.endorse(draft_id, 2, "bob", "reviewer", "approved", at(3), "r2@x", {"dmarc": "pass"}) is True
    assert store.endorse(draft_id, 1, "ann", "owner", "approved", at(4)) is True
    endorsements = store.endorsements(draft_id, 2)
    assert [(e.person, e.how) for e in endorsements] == [("ann", "wrote"), ("bob", "approved")]
    assert endorsements[1].auth_verdict == {"dmarc": "pass"}
    assert endorsements[1].via_message_id == "r2@x"
    with pytest.raises(StoreError, match="draft .* has no version 9"):
        store.endorse(draft_id, 9, "bob", "reviewer", "approved", at(5))


def token(token_id: str = "tok1", **changes) -> TokenRow:
    fields = dict(token_id=token_id, token_mac="mac", subject_kind="draft", subject_id=1, version=1,
                  text_sha256=sha("x"), person="bob", role="reviewer", expires_at=at(60 * 72),
                  review_message_id="review1@firm", issued_at=at(0))
    fields.update(changes)
    return TokenRow(**fields)


def test_tokens_are_stored_and_used_once(store: Store) -> None:
    store.issue_token(token("tok1"))
    store.issue_token(token("tok2", issued_at=at(1)))
    store.issue_token(token("tok3", subject_kind="deadline", subject_id=1, version=None, text_sha256=None))
    assert store.token("tok1") == token("tok1")
    assert store.token("nope") is None
    with pytest.raises(StoreError, match="cannot store token tok1"):
        store.issue_token(token("tok1"))
    assert store.use_token("tok1", at(5), "reply1@x") is True
    assert store.use_token("tok1", at(6), "reply2@x") is False
    used = store.token("tok1")
    assert (used.used_at, used.used_by_message_id) == (at(5), "reply1@x")
    # the same reply cannot spend a second token
    assert store.use_token("tok2", at(7), "reply1@x") is False
    assert store.token("tok2").used_at is None
    assert store.use_token("missing", at(7), "reply3@x") is False
    assert [t.token_id for t in store.tokens_for("draft", 1)] == ["tok1", "tok2"]
    assert [t.token_id for t in store.tokens_for("deadline", 1)] == ["tok3"]


def test_using_a_token_inside_a_caller_transaction(store: Store) -> None:
    store.issue_token(token("tok1"))
    store.issue_token(token("tok2"))
    with store.transaction():
        assert store.use_token("tok1", at(1), "reply@x") is True
        assert store.use_token("tok2", at(1), "reply@x") is False  # refused, transaction goes on
        store.append_event("review_decision", at=at(1))
    assert store.token("tok1").used_by_message_id == "reply@x"
    assert len(store.events()) == 1


def test_a_reply_is_processed_once(store: Store) -> None:
    assert store.processed_reply("r@x") is False
    assert store.mark_reply_processed("r@x", "approved", at(1)) is True
    assert store.mark_reply_processed("r@x", "rejected", at(2)) is False
    assert store.processed_reply("r@x") is True
    assert store.reply_outcome("r@x") == "approved"


# -- outbox --------------------------------------------------------------------------------------


def enqueue(store: Store, n: int, **options) -> int:
    return store.enqueue(f"<out{n}@firm>", "release", "office@firm.example", [f"c{n}@acme.example"],
                         b"From: x\r\n\r\nbody\r\n", options.pop("when", at(n)), **options)


def test_enqueue_is_idempotent_on_message_id(store: Store) -> None:
    draft_id = new_draft(store)
    row_id = enqueue(store, 1, client_id="acme", draft_id=draft_id)
    assert enqueue(store, 1) == row_id
    row = store.row(row_id)
    assert (row.message_id, row.state, row.attempts, row.recipients, row.raw, row.client_id,
            row.draft_id, row.created_at) == (
        "<out1@firm>", "queued", 0, ("c1@acme.example",), b"From: x\r\n\r\nbody\r\n", "acme",
        draft_id, at(1))
    assert len(store.rows()) == 1
    with pytest.raises(StoreError, match="no outbox row 77"):
        store.row(77)


def test_claim_takes_the_oldest_due_row_once(store: Store) -> None:
    late = enqueue(store, 1, not_before=at(30))
    second = enqueue(store, 3)
    first = enqueue(store, 2)
    claimed = store.claim_next(at(10))
    assert (claimed.id, claimed.state, claimed.attempts, claimed.updated_at) == (first, "sending", 1, at(10))
    assert store.claim_next(at(10)).id == second
    assert store.claim_next(at(10)) is None  # `late` is not due yet
    assert store.claim_next(at(30)).id == late


def test_retry_waits_for_the_next_attempt(store: Store) -> None:
    row_id = enqueue(store, 1)
    store.claim_next(at(1))
    store.mark_retry(row_id, "451 try later", at(20), at(2))
    row = store.row(row_id)
    assert (row.state, row.last_error, row.next_attempt_at) == ("queued", "451 try later", at(20))
    assert store.claim_next(at(19)) is None
    again = store.claim_next(at(20))
    assert (again.id, again.attempts) == (row_id, 2)


def test_sent_rows_count_for_the_rate_limit(store: Store) -> None:
    for n in (1, 2, 3):
        enqueue(store, n)
        store.mark_sent(store.claim_next(at(n)).id, "250 ok", at(n * 10))
    assert store.row(1).state == "sent" and store.row(1).server_reply == "250 ok"
    assert store.row(1).sent_at == at(10)
    assert store.sent_since(at(20)) == 2
    assert store.sent_since(at(31)) == 0


def test_outbox_state_moves_are_checked(store: Store) -> None:
    row_id = enqueue(store, 1)
    with pytest.raises(StoreError, match=r"cannot resend outbox row 1: it is queued, and only uncertain or failed"):
        store.resend(row_id, at(1))
    with pytest.raises(StoreError, match="it is queued"):
        store.mark_sent(row_id, "250", at(1))
    store.claim_next(at(1))
    store.mark_uncertain(row_id, at(2))
    assert store.row(row_id).state == "uncertain"
    with pytest.raises(StoreError, match="cannot retry"):
        store.mark_retry(row_id, "x", at(3), at(3))
    store.resend(row_id, at(3))
    assert store.row(row_id).state == "queued"
    store.claim_next(at(4))
    store.mark_failed(row_id, "550 no such user", at(5))
    assert (store.row(row_id).state, store.row(row_id).last_error) == ("failed", "550 no such user")
    store.resend(row_id, at(6))
    store.mark_sent(store.claim_next(at(7)).id, "250", at(8))
    for move in (lambda: store.resend(row_id, at(9)), lambda: store.cancel(row_id, at(9))):
        with pytest.raises(StoreError, match="it is sent"):
            move()
    with pytest.raises(StoreError, match="no outbox row 5"):
        store.cancel(5, at(9))


def test_cancel_from_queued_uncertain_or_failed(store: Store) -> None:
    queued = enqueue(store, 1, not_before=at(50))
    uncertain, failed, sending = (enqueue(store, n) for n in (2, 3, 4))
    for row_id in (uncertain, failed, sending):
        assert store.claim_next(at(10)).id == row_id
    store.mark_uncertain(uncertain, at(11))
    store.mark_failed(failed, "550", at(11))
    for row_id in (queued, uncertain, failed):
        store.cancel(row_id, at(12))
    with pytest.raises(StoreError, match="cannot cancel outbox row 4: it is sending"):
        store.cancel(sending, at(12))
    assert [r.id for r in store.rows(states=["cancelled"])] == [queued, uncertain, failed]
    assert [r.id for r in store.rows(states=["sending", "sent"])] == [sending]


def test_a_stop_cancels_the_drafts_queued_failed_and_uncertain_release_rows_not_one_sending(store: Store) -> None:
    drafts = [new_draft(store) for _ in range(4)]
    for draft_id in drafts:
        store.set_draft_state(draft_id, "sendable", at(1))
    rows = [enqueue(store, n, draft_id=draft_id, draft_version=1) for n, draft_id in enumerate(drafts, 1)]
    for _ in range(3):
        store.claim_next(at(5))
    store.mark_failed(rows[1], "550", at(6))
    store.mark_uncertain(rows[2], at(6))
    cancelled = [store.cancel_releases(draft_id, at(7)) for draft_id in drafts]
    assert cancelled == [[], [rows[1]], [rows[2]], [rows[3]]]
    assert [store.row(r).state for r in rows] == ["sending", "cancelled", "cancelled", "cancelled"]


# -- deadlines -----------------------------------------------------------------------------------


def test_a_deadline_is_set_once_per_kind_client_and_draft(store: Store) -> None:
    draft_id = new_draft(store)
    call = store.add_deadline("phone_call", "acme", at(60 * 24), at(0), draft_id=draft_id, data={"phone": "+44"})
    assert store.add_deadline("phone_call", "acme", at(60 * 48), at(1), draft_id=draft_id) == call
    retro = store.add_deadline("retrospective", "acme", at(60 * 24 * 7), at(0))
    assert store.add_deadline("retrospective", "acme", at(99), at(1)) == retro  # NULL draft too
    assert store.add_deadline("retrospective", "zeta", at(99), at(1)) != retro
    deadline = store.deadline(call)
    assert (deadline.kind, deadline.client_id, deadline.draft_id, deadline.due_at, deadline.state,
            deadline.data) == ("phone_call", "acme", draft_id, at(60 * 24), "open", {"phone": "+44"})
    assert len(store.deadlines()) == 3
    with pytest.raises(StoreError, match="no deadline 50"):
        store.deadline(50)


def test_due_deadlines_are_reminded_once_and_closed_once(store: Store) -> None:
    soon = store.add_deadline("phone_call", "acme", at(10), at(0))
    later = store.add_deadline("retrospective", "acme", at(100), at(0))
    assert [d.id for d in store.due_deadlines(at(10))] == [soon]
    store.mark_reminded(soon, at(11))
    assert store.due_deadlines(at(200)) == [store.deadline(later)]
    assert store.close_deadline(soon, "done", at(12), "ann", "they picked up") is True
    assert store.close_deadline(soon, "cancelled", at(13), "bob") is False
    closed = store.deadline(soon)
    assert (closed.state, closed.closed_at, closed.closed_by, closed.note, closed.reminded_at) == (
        "done", at(12), "ann", "they picked up", at(11))
    assert [d.id for d in store.deadlines(states=["open"])] == [later]
    assert [d.id for d in store.deadlines(client_id="acme")] == [soon, later]
    with pytest.raises(StoreError, match="done or cancelled"):
        store.close_deadline(later, "open", at(14), "ann")  # type: ignore[arg-type]
    store.close_deadline(later, "cancelled", at(15), "bob")
    assert store.due_deadlines(at(500)) == []


def test_status_counts_match_the_rows_they_count(store: Store) -> None:
    # `parting status` counts in SQL; the counts must be what counting the built rows gives,
    # including a deadline due a microsecond either side of now (stored texts with and without
    # microseconds compare as the times they name).
    now = at(10)
    for due in (now - timedelta(microseconds=1), now, now + timedelta(microseconds=1),
                now + timedelta(seconds=1), now - timedelta(seconds=1), at(10.5)):
        store.add_deadline("phone_call", f"c{due.isoformat()}", due, at(0))
    done = store.add_deadline("retrospective", "acme", at(1), at(0))
    store.close_deadline(done, "done", at(2), "ann")
    assert store.due_count(now) == sum(1 for d in store.deadlines(["open"]) if d.due_at <= now) == 3
    draft_id = new_draft(store)
    enqueue(store, 1, draft_id=draft_id)
    for states in (["in_review"], ["owner_review", "second_review", "approved"], ["queued"], ["held", "failed"]):
        assert store.draft_count(states) == len(store.drafts(states))
        assert store.row_count(states) == len(store.rows(states))
    assert store.draft_count([store.drafts()[0].state]) == 1
    assert store.row_count([store.rows()[0].state]) == 1


# -- read-only -----------------------------------------------------------------------------------


def fill(store: Store) -> None:
    store.add_messages([(message(n), "INBOX", 7, n) for n in range(1, 4)])
    store.save_folder_state("INBOX", 7, 3)
    store.append_event("verdict", at=T0, client_id="acme", data={"state": "overdue"})
    draft_id = new_draft(store)
    store.endorse(draft_id, 1, "ann", "owner", "approved", at(1))
    store.issue_token(token("t"))
    enqueue(store, 1, draft_id=draft_id)
    store.add_deadline("phone_call", "acme", at(5), at(0))
    store.quarantine("INBOX", 7, 9, "bad", None, 1, at(1))
    store.add_triage("m1@example.com", None, "no client", at(1))
    store.set_paused("acme", True, at(1))
    store.save_verdict("acme", {"state": "overdue"}, at(1))
    store.record_step("acme", 1, "nudge", at(1))
    store.add_note("acme", "ann", "note", at(1))
    store.mark_reply_processed("r@x", "approved", at(1))


def test_read_only_reads_everything_and_changes_no_byte(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    with Store.open(path) as writer:
        fill(writer)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    reader = Store.open_readonly(path)
    reads = [
        reader.events(), reader.folder_state("INBOX"), reader.message("m1@example.com"),
        reader.known_uids("INBOX", 7, [1, 2]), reader.envelopes("acme"), reader.recent_histories({"acme": None}, T0),
        reader.messages_for_client("acme"), reader.recent_messages("acme", 2), reader.message_count(),
        reader.thread_of_message_ids(["m1@example.com"]), reader.thread_of_index_root("r"),
        reader.thread_of_subject("subject 1", "acme", [], T0), reader.client_of_thread("t1"),
        reader.quarantined(), reader.quarantine_count(), reader.triage(), reader.triage_count(),
        reader.paused_clients(), reader.latest_verdicts(), reader.steps_done("acme", 1),
        reader.draft(1), reader.drafts(), reader.versions(1), reader.endorsements(1, 1),
        reader.token("t"), reader.tokens_for("draft", 1), reader.processed_reply("r@x"),
        reader.rows(), reader.row(1), reader.sent_since(T0), reader.due_deadlines(at(10)),
        reader.deadlines(), reader.deadline(1), reader.notes("acme"), reader.schema_version(),
    ]
    assert reads[2] == message(1) and reads[8] == 3 and reads[-1] == SCHEMA_VERSION
    writes = [
        lambda: reader.append_event("verdict", at=T0),
        lambda: reader.add_message(message(9), folder="INBOX", uidvalidity=7, uid=9),
        lambda: reader.enqueue("<n@x>", "release", "a@x", ["b@x"], b"", T0),
        lambda: reader.claim_next(at(100)),
        lambda: reader.use_token("t", at(2), "reply@x"),
    ]
    for write in writes:
        with pytest.raises(StoreError, match="read-only"):
            write()
    with pytest.raises(sqlite3.OperationalError, match="readonly|read-only"):
        reader.db.execute("INSERT INTO casefile_notes (client_id, author, text, at) VALUES ('a','b','c','d')")
    reader.close()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest


def test_read_only_open_needs_an_existing_current_database(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open_readonly(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
