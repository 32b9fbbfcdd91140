"""A backfill writes every index entry of every message it stores: the messages and message_uids
tables keep only the indexes some query reads, threading's look-ups read small tables of the
latest message of each key instead, and every one of those queries seeks a key."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.adapters.store import Store
from daemon.adapters.store.schema import SCHEMA_VERSION


def indexes(store: Store, table: str) -> set[str]:
    return {row[1] for row in store.conn.execute(f"PRAGMA index_list({table})") if row[3] == "c"}


def test_ingest_tables_keep_only_the_indexes_queries_read() -> None:
    store = Store.open(":memory:")
    assert store.conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert indexes(store, "messages") == {"messages_client_at", "messages_index_root"}
    assert indexes(store, "message_uids") == set()  # its primary key (folder, uidvalidity, uid) serves


def test_threading_questions_seek_a_key() -> None:
    store = Store.open(":memory:")
    for sql, args, key in [
        ("SELECT value FROM json_each(?) WHERE EXISTS"
         " (SELECT 1 FROM latest_by_client_subject WHERE norm_subject = json_each.value)", ['["a"]'],
         "latest_by_client_subject USING PRIMARY KEY (norm_subject=?)"),
        ("SELECT at, message_id, thread_id FROM latest_by_client_subject WHERE norm_subject = ? AND client_id = ?",
         ["a", "acme"], "latest_by_client_subject USING PRIMARY KEY (norm_subject=? AND client_id=?)"),
        ("SELECT at, message_id, thread_id FROM latest_by_address_subject WHERE address = ? AND norm_subject = ?",
         ["x@y", "a"], "latest_by_address_subject USING PRIMARY KEY (address=? AND norm_subject=?)"),
        ("SELECT at, message_id, client_id FROM latest_client_by_thread WHERE thread_id = ?", ["t"],
         "latest_client_by_thread USING PRIMARY KEY (thread_id=?)"),
        ("SELECT at, message_id, thread_id FROM messages WHERE thread_index_root = ?"
         " ORDER BY at DESC, message_id DESC LIMIT 1", ["r"], "messages USING INDEX messages_index_root"),
    ]:
        plan = " ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, args))
        assert key in plan, plan
    since = datetime(2026, 1, 1, tzinfo=UTC)
    assert store.stored_subjects(["a"]) == set() and store.threads_of_message_ids(["x@y"]) == {}
    assert store.latest_of_subject("a", client_id="acme") is None and store.client_of_thread("t") is None
    assert store.thread_of_subject("a", "acme", ["x@y"], since) is None
