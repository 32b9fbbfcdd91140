"""`parting drafts` reads every draft's writer and endorsements in one query each (the listing of a
store with many drafts), and says what `parting drafts show` says of each draft one by one."""

from __future__ import annotations

from test_cli_reports import as_json, fill_drafts, setup, utc  # noqa: F401 - setup is a fixture

from daemon.adapters.store import Store


def test_the_listing_agrees_with_each_draft_shown_alone(setup) -> None:  # noqa: F811
    fill_drafts(setup)
    with Store.open(setup["database"]) as store:  # a third draft: endorsed on version 1, then rewritten
        third = store.create_draft("globex", "release", "Parting", "v1\n", "h5", "parting", "ep-y", utc(11, 3),
                                   "owner_review")
        store.endorse(third, 1, "bob", "owner", "approved", utc(11, 3, 10))
        store.add_version(third, "v2\n", "h6", "alice", utc(11, 3, 11))
        store.endorse(third, 2, "alice", "second", "wrote", utc(11, 3, 11))
        store.endorse(third, 2, "carol", "second", "approved", utc(11, 3, 12))
    listed = as_json(setup, "drafts")["drafts"]
    assert [d["id"] for d in listed] == sorted(d["id"] for d in listed) and len(listed) == 3
    for row in listed:
        assert row == as_json(setup, "drafts", "show", str(row["id"]))["draft"]
    mine = listed[-1]
    assert (mine["writer"], mine["writer_name"], mine["version"]) == ("alice", "Alice Smith", 2)
    assert [(e["person"], e["version"]) for e in mine["endorsements"]] == [("alice", 2), ("carol", 2)]
    assert mine["missing"] == ""  # the owner alice wrote version 2 and carol approved it: bob's was of version 1


def statements_of_listing(setup: dict, monkeypatch, listing) -> list[str]:  # noqa: ANN001, F811
    """The SQL statements a listing runs (after opening the store), through sqlite3's trace hook."""
    from datetime import UTC, datetime

    seen: list[str] = []
    opened = Store.open_readonly.__func__  # type: ignore[attr-defined]

    def traced(cls, path):  # noqa: ANN001, ANN202
        store = opened(cls, path)
        store.conn.set_trace_callback(seen.append)
        return store

    monkeypatch.setattr(Store, "open_readonly", classmethod(traced))
    listing(str(setup["config"]), now=datetime(2026, 11, 20, tzinfo=UTC))
    return seen


def test_the_drafts_listing_runs_as_many_queries_for_thirty_drafts_as_for_one(setup, monkeypatch) -> None:  # noqa: F811
    from daemon.queries import listings

    fill_drafts(setup)
    few = statements_of_listing(setup, monkeypatch, listings.drafts)
    with Store.open(setup["database"]) as store:
        for n in range(30):
            draft = store.create_draft("acme", "nudge", f"Nudge {n}", "Hello\n", f"n{n}", "parting", f"ep-{n}",
                                       utc(11, 4), "owner_review")
            store.endorse(draft, 1, "alice", "owner", "approved", utc(11, 4, 10))
    many = statements_of_listing(setup, monkeypatch, listings.drafts)
    assert len(many) == len(few) <= 4
