"""store.add_messages writes its values without the JSON encoder's per-call machinery and its
address rows in key order: the stored text is the very text the encoder writes, and a batch
stores exactly what the same messages stored one by one (add_message) store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from daemon.adapters.store import MessageRow, Store
from daemon.adapters.store.messages import _strings_json

ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode  # what the store wrote before
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@given(st.lists(st.text()))
def test_lists_of_strings_are_written_as_the_encoder_writes_them(items: list[str]) -> None:
    assert _strings_json(tuple(items)) == ENCODER(items)
    assert _strings_json(items) == ENCODER(items)


@given(st.lists(st.one_of(st.text(), st.integers(), st.none(), st.booleans())))
def test_anything_else_in_the_list_is_left_to_the_encoder(items: list) -> None:
    assert _strings_json(tuple(items)) == ENCODER(items)


def row(n: int, **changes) -> MessageRow:
    fields = dict(
        message_id=f"m{n}@example.com", client_id="acme" if n % 3 else None, thread_id=f"t{n % 4}",
        direction="in" if n % 2 else "out", at=T0 + timedelta(minutes=7 * n) if n % 5 else
        (T0 + timedelta(minutes=n)).astimezone(timezone(timedelta(hours=-5))),
        subject=f"Sujet \u00e9 {n % 3}", from_addr=f"p{n % 4}@acme.example",
        to_addrs=(f"p{(n + 1) % 4}@acme.example", "office@firm.example", "\u00e9l\u00e8ve@\u00e9cole.example"),
        cc_addrs=(f"p{n % 4}@acme.example",) if n % 2 else (), in_reply_to=(f"<m{n - 1}@example.com>",) if n else (),
        references=tuple(f"<m{k}@example.com>" for k in range(n)), norm_subject=f"sujet \u00e9 {n % 3}",
        question=bool(n % 2), ingested_at=T0 + timedelta(hours=n // 4),
    )
    fields.update(changes)
    return MessageRow(**fields)


def contents(store: Store) -> dict[str, list[tuple]]:
    return {table: sorted(store.conn.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("messages", "latest_by_address_subject", "latest_by_client_subject",
                          "latest_client_by_thread", "message_uids")}


def test_a_batch_stores_what_the_messages_one_by_one_store() -> None:
    rows = [row(n) for n in range(12)]
    rows.append(row(3, thread_id="other"))  # the same Message-ID again, in another folder: only a location
    one, many = Store.open(":memory:"), Store.open(":memory:")
    one.add_message(rows[0], folder="INBOX", uidvalidity=7, uid=1)
    many.add_messages([(rows[0], "INBOX", 7, 1)])  # known before the batch: a location only, again
    new = []
    for uid, message in enumerate(rows, start=1):
        folder = "Sent" if uid == len(rows) else "INBOX"
        if one.add_message(message, folder=folder, uidvalidity=7, uid=uid):
            new.append(message.message_id)
    got = many.add_messages([(message, "Sent" if uid == len(rows) else "INBOX", 7, uid)
                             for uid, message in enumerate(rows, start=1)])
    assert got == set(new) == {f"m{n}@example.com" for n in range(1, 12)}
    assert contents(many) == contents(one)
    stored = many.conn.execute("SELECT to_addrs, \"references\", ingested_at FROM messages"
                               " WHERE message_id = 'm5@example.com'").fetchone()
    assert stored == (ENCODER(list(rows[5].to_addrs)), ENCODER(list(rows[5].references)),
                      "2026-11-02T11:00:00+00:00")
