"""A database restored from a replica may have lost its last writes: before anything leaves after
a start, every unfinished outbox row (queued, uncertain, failed; `sending` as before) is looked
up in the Sent folder by its Message-ID, and a restore is told apart from a restart and recorded.
The daemon runs in-process on a ManualClock against Dovecot and the SMTP sink."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import mailfactory as mf
import pytest
import yaml
from harness import RunningDaemon, write_config
from test_daemon_review import START

from daemon.adapters.store import Store
from daemon.flows.sending import settle_from_sent
from daemon.runtime.placement import PLACED, RESTORED, check_placement, token_file
from daemon.runtime.service import open_context

OFFICE = "office@example.com"


def database_of(config: Path) -> Path:
    return Path(yaml.safe_load(config.read_text())["state"]["database"])


def queue(config: Path, tag: str, *, state: str = "queued", not_before=None) -> tuple[int, bytes, str]:
    """A mail in the outbox, as a decision before the restore queued it; `state` where it stands."""
    raw, message_id = mf.request("jane@acme.example", f"Question {tag}", START, tag)
    message_id = message_id.strip("<>")
    with Store.open(database_of(config)) as store:
        row_id = store.enqueue(message_id, "nudge", OFFICE, ["jane@acme.example"], raw, START, client_id="acme",
                               not_before=not_before)
        if state != "queued":
            assert store.claim_next(START + timedelta(days=1)).id == row_id, "claim the oldest: queue it first"
            {"uncertain": store.mark_uncertain, "failed": lambda i, at: store.mark_failed(i, "550 no", at)}[state](
                row_id, START)
    return row_id, raw, message_id


def lose_the_token(config: Path) -> None:
    """What a restore into a fresh directory looks like: the database without its token file."""
    token_file(database_of(config)).unlink()


def events(config: Path, kind: str) -> list:
    with Store.open(database_of(config)) as store:
        return store.events(kinds=[kind])


def row_state(config: Path, row_id: int) -> tuple[str, str | None]:
    with Store.open(database_of(config)) as store:
        row = store.row(row_id)
        return row.state, row.server_reply


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


async def first_run(config: Path) -> None:
    async with RunningDaemon(config, START):
        pass


async def test_a_restored_copy_marks_queued_uncertain_and_failed_rows_found_in_sent_as_sent_and_sends_none(
        config, dovecot, smtp_sink):
    await first_run(config)
    rows = {state: queue(config, f"lost-{state}", state=state) for state in ("uncertain", "failed", "queued")}
    for _, raw, _ in rows.values():
        mf.deliver(dovecot, "Sent", raw)  # the old host sent them and filed its copies
    due_id, _, due_mid = queue(config, "due-not-in-sent")  # the lost writes may have sent it: no trace
    later_id, _, later_mid = queue(config, "not-yet-due", not_before=START + timedelta(hours=2))
    lose_the_token(config)
    before = len(smtp_sink.messages)
    async with RunningDaemon(config, START + timedelta(minutes=1)) as daemon:
        await daemon.settle()
    arrived = [mf_mid for mf_mid in (str(m.message.get("Message-ID", "")).strip("<>")
                                     for m in smtp_sink.messages[before:])]
    for state, (row_id, _, message_id) in rows.items():
        assert message_id not in arrived, f"the {state} row was sent again"
        assert row_state(config, row_id)[0] == "sent", state
        assert "found in the Sent folder" in row_state(config, row_id)[1]
    assert due_mid not in arrived and row_state(config, due_id)[0] == "uncertain"  # a person decides
    assert later_mid not in arrived and row_state(config, later_id)[0] == "queued"  # could not have left yet
    [restore] = events(config, RESTORED)
    assert restore.data["token_file"] == "missing" and restore.data["last_event_id"] > 0
    recovered = {e.data["outbox_id"]: e.data.get("recovered_from") for e in events(config, "sent")}
    assert {recovered[row_id] for row_id, _, _ in rows.values()} == {"queued", "uncertain", "failed"}


async def test_after_a_restore_a_row_queued_again_by_a_replayed_decision_is_looked_up_before_it_leaves(
        config, dovecot, smtp_sink):
    await first_run(config)
    lose_the_token(config)
    raw, message_id = mf.request("jane@acme.example", "Queued again", START, "queued-again")
    mf.deliver(dovecot, "Sent", raw)  # the old host's copy of a mail whose queueing the restore lost
    before = len(smtp_sink.messages)
    async with RunningDaemon(config, START + timedelta(minutes=1)) as daemon:
        assert daemon.service.restored is not None
        row_id = daemon.store.enqueue(message_id.strip("<>"), "nudge", OFFICE, ["jane@acme.example"], raw,
                                      daemon.clock.now(), client_id="acme")
        await daemon.settle()
        assert daemon.store.row(row_id).state == "sent"
    assert [m for m in smtp_sink.messages[before:]
            if str(m.message.get("Message-ID", "")).strip("<>") == message_id.strip("<>")] == []


async def test_every_start_settles_an_uncertain_row_whose_copy_is_in_sent(config, dovecot, smtp_sink):
    await first_run(config)
    row_id, raw, _ = queue(config, "uncertain-but-filed", state="uncertain")
    mf.deliver(dovecot, "Sent", raw)
    async with RunningDaemon(config, START + timedelta(minutes=1)):
        pass
    assert row_state(config, row_id)[0] == "sent"
    assert events(config, RESTORED) == []  # an ordinary restart is no restore


def test_a_restart_writes_nothing_a_copy_elsewhere_is_a_restore(tmp_path):
    database = tmp_path / "parting.db"
    with Store.open(database) as store:
        assert check_placement(store, database, START, host="a") is None  # first start: placed
        assert check_placement(store, database, START, host="a") is None  # restart: nothing new
        assert [e.kind for e in store.events()] == [PLACED]
        token_file(database).write_text("someone-else\n")  # a copy of another instance's database
        restore = check_placement(store, database, START + timedelta(hours=1), host="b")
        assert restore is not None and restore.from_host == "a"
        assert [e.kind for e in store.events()] == [PLACED, RESTORED, PLACED]
        assert store.events(kinds=[RESTORED])[0].data["token_file"] == "different"
        assert check_placement(store, database, START + timedelta(hours=2), host="b") is None


async def test_a_row_the_restored_start_could_not_look_up_waits_and_a_row_queued_after_it_is_not_doubted(config):
    """The flow with a look-up of our own: None (Sent could not be searched), then False."""
    await first_run(config)
    held_id, _, _ = queue(config, "held")  # in the restored copy
    ctx = open_context(config)
    try:
        later_id = ctx.store.enqueue("later@example.com", "nudge", OFFICE, ["jane@acme.example"], b"x", START)
        answers = {held_id: iter([None, False]), later_id: iter([False])}
        rows = {row.message_id: row.id for row in ctx.store.rows()}

        async def lookup(message_id: str) -> bool | None:
            return next(answers[rows[message_id]])

        checked: set[int] = set()
        at = lambda: START + timedelta(minutes=1)  # noqa: E731 - the injected clock
        first = await settle_from_sent(ctx, lookup, at, checked, doubt_upto=held_id)
        assert first == {held_id: "unknown", later_id: "unsent"} and checked == {later_id}
        assert ctx.store.row(held_id).state == "queued"  # the caller sends nothing while "unknown"
        second = await settle_from_sent(ctx, lookup, at, checked, doubt_upto=held_id)
        assert second == {held_id: "uncertain"} and ctx.store.row(held_id).state == "uncertain"
        assert ctx.store.row(later_id).state == "queued"  # queued after the restore: not in doubt
    finally:
        ctx.store.close()
