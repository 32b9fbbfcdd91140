"""A backfill writes every index entry of every message it stores: the messages and message_uids
tables keep only the indexes some query reads, and those queries still seek an index."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.adapters.store import Store
from daemon.adapters.store.schema import SCHEMA_VERSION


def indexes(store: Store, table: str) -> set[str]:
    return {row[1] for row in store.conn.execute(f"PRAGMA index_list({table})") if row[3] == "c"}


def test_ingest_tables_keep_only_the_indexes_queries_read() -> None:
    store = Store.open(":memory:")
    assert store.conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    assert indexes(store, "messages") == {"messages_client_at", "messages_thread", "messages_index_root",
                                          "messages_subject_client_at"}
    assert indexes(store, "message_uids") == set()  # its primary key (folder, uidvalidity, uid) serves


def test_subject_questions_still_seek_an_index() -> None:
    store = Store.open(":memory:")
    since = datetime(2026, 1, 1, tzinfo=UTC)
    plans = []
    for sql, args in [
        ("SELECT value FROM json_each(?) WHERE EXISTS (SELECT 1 FROM messages WHERE norm_subject = json_each.value)",
         ['["a"]']),
        ("SELECT at, message_id, thread_id FROM messages WHERE norm_subject = ? AND client_id = ? AND at >= ?"
         " ORDER BY at DESC, message_id DESC LIMIT 1", ["a", "acme", since.isoformat()]),
    ]:
        plans.append(" ".join(row[3] for row in store.conn.execute("EXPLAIN QUERY PLAN " + sql, args)))
    assert all("messages_subject_client_at" in plan for plan in plans), plans
    assert store.stored_subjects(["a"]) == set() and store.threads_of_message_ids(["x@y"]) == {}
