"""The staff reply's header section as it arrived (schema migration _v3_reply_headers): how often
each once-only field appeared, and its own Date; rows stored before it read as "not counted"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import daemon.adapters.store as store_package
from daemon.adapters.store import MessageRow, Store
from daemon.adapters.store.schema import MIGRATIONS, _v3_reply_headers

AT = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def staff_reply(message_id: str, **changes) -> MessageRow:
    fields = dict(message_id=message_id, client_id=None, thread_id="t1", direction="in", at=AT, subject="Re: x",
                  from_addr="alice@example.com", to_addrs=("office@example.com",), from_staff=True,
                  body_text="Approve")
    fields.update(changes)
    return MessageRow(**fields)


def test_header_counts_and_the_date_header_round_trip(tmp_path: Path) -> None:
    row = staff_reply("r1@example.com", header_counts=(("From", 1), ("To", 2)),
                      date_header=datetime(2026, 10, 12, 9, tzinfo=UTC))
    with Store.open(tmp_path / "p.db") as store:
        store.add_message(row, folder="INBOX", uidvalidity=1, uid=1)
        assert store.message("r1@example.com") == row
        store.add_message(staff_reply("r2@example.com", from_staff=False, body_text=None),
                          folder="INBOX", uidvalidity=1, uid=2)
        other = store.message("r2@example.com")
        assert other is not None and (other.header_counts, other.date_header) == (None, None)


def test_a_reply_stored_before_the_migration_reads_as_not_counted(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "p.db"
    before = MIGRATIONS[:MIGRATIONS.index(_v3_reply_headers)]
    monkeypatch.setattr(store_package, "MIGRATIONS", before)
    monkeypatch.setattr(store_package, "SCHEMA_VERSION", len(before))
    with Store.open(path) as old:
        old.db.execute(
            "INSERT INTO messages (message_id, thread_id, direction, at, subject, from_addr, to_addrs, cc_addrs,"
            ' in_reply_to, "references", norm_subject, from_staff, body_text)'
            " VALUES ('old@example.com', 't', 'in', ?, 'Re: x', 'alice@example.com', '[]', '[]', '[]', '[]', 'x', 1,"
            " 'Approve')", [AT.isoformat()])
        old.db.conn.commit()
    monkeypatch.undo()
    with Store.open(path) as store:
        row = store.message("old@example.com")
        assert row is not None and row.body_text == "Approve"
        assert (row.header_counts, row.date_header) == (None, None)
