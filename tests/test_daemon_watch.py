"""The daemon watching a real Dovecot: backfill and linking, IDLE, outages, UIDVALIDITY, bad mail."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import mailfactory as mf
import pytest
from harness import RunningDaemon, utc, write_config

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)
CORPUS = Path(__file__).parent / "corpus" / "malformed"


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


def seed_threads(dovecot) -> dict[str, str]:
    mids = {}
    raw, mids["req1"] = mf.request("jane@acme.example", "Project kickoff?", utc(2026, 10, 20, 10), "req1")
    mf.deliver(dovecot, "Sent", raw)
    # a colleague of Jane's answers from another address at the client's domain
    raw, mids["rep1"] = mf.reply("tom@acme.example", mids["req1"], "Project kickoff?", utc(2026, 10, 20, 15), "rep1")
    mf.deliver(dovecot, "INBOX", raw)
    raw, mids["req2"] = mf.request("jane@acme.example", "Budget figures?", utc(2026, 10, 21, 10), "req2")
    mf.deliver(dovecot, "Sent", raw)
    # Outlook: Thread-Index and Thread-Topic, no In-Reply-To / References
    raw, mids["rep2"] = mf.outlook_reply("jane@acme.example", "Budget figures?", utc(2026, 10, 21, 16), "rep2",
                                         thread_index=b"\x01\xd9" + bytes(20) + b"\x00\x01\x02\x03\x04")
    mf.deliver(dovecot, "INBOX", raw)
    raw, mids["req3"] = mf.request("hank@globex.example", "Delivery address?", utc(2026, 10, 22, 10), "req3")
    mf.deliver(dovecot, "Sent", raw)
    # a changed subject, but correct References
    raw, mids["rep3"] = mf.reply("hank@globex.example", mids["req3"], "Totally different subject", utc(2026, 10, 22, 12),
                                 "rep3", references=[mids["req3"]])
    mf.deliver(dovecot, "INBOX", raw)
    raw, mids["ooo"] = mf.out_of_office("hank@globex.example", mids["req3"], "Delivery address?", utc(2026, 10, 22, 10, 1), "ooo")
    mf.deliver(dovecot, "INBOX", raw)
    raw, mids["bounce"] = mf.bounce("old@globex.example", mids["req3"], utc(2026, 10, 22, 10, 2), "bounce")
    mf.deliver(dovecot, "INBOX", raw)
    return mids


def stored(store, tag: str, mids: dict[str, str]):
    return store.message(mids[tag].strip("<>"))


async def test_backfill_links_replies_to_their_requests(config, dovecot):
    mids = seed_threads(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message_count() >= 8, timeout=20, what="the backfill")
        await daemon.settle()  # verdicts from a cycle after the last batch
        store = daemon.store
        req1, rep1 = stored(store, "req1", mids), stored(store, "rep1", mids)
        assert rep1.client_id == "acme" and rep1.direction == "in" and rep1.thread_id == req1.thread_id
        assert stored(store, "rep3", mids).thread_id == stored(store, "req3", mids).thread_id
        assert stored(store, "rep3", mids).client_id == "globex"
        assert stored(store, "rep2", mids).client_id == "acme"
        assert stored(store, "req1", mids).question and stored(store, "req1", mids).direction == "out"
        ooo = stored(store, "ooo", mids)
        assert ooo.auto_reply and ooo.client_id == "globex"
        bounce = stored(store, "bounce", mids)
        assert bounce.bounce and bounce.client_id == "globex"
        verdicts = store.latest_verdicts()
        assert verdicts["acme"]["state"] == "active"
        assert verdicts["globex"]["state"] == "active", "the real reply answered; the out-of-office did not matter"


async def test_outlook_reply_threads_by_thread_index_when_our_request_has_one(config, dovecot):
    index = b"\x01\xd9" + bytes(20)
    raw, req = mf.request("jane@acme.example", "Contract?", utc(2026, 10, 20, 10), "t-req")
    raw = raw.replace(b"Message-ID:", b"Thread-Index: " + base64.b64encode(index) + b"\r\nMessage-ID:", 1)
    mf.deliver(dovecot, "Sent", raw)
    reply, rep = mf.outlook_reply("jane@acme.example", "Contract?", utc(2026, 10, 20, 12), "t-rep", index + b"\x00\x00\x00\x01\x02")
    mf.deliver(dovecot, "INBOX", reply)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message_count() >= 2, timeout=20)
        assert daemon.store.message(rep.strip("<>")).thread_id == daemon.store.message(req.strip("<>")).thread_id


async def test_a_message_appended_during_idle_is_stored_without_waiting_for_a_cycle(config, dovecot):
    """IDLE wakes the watcher: with an hour between cycles, only IDLE can store it. (How fast: bench/latency.py.)"""
    async with RunningDaemon(config, START, tick=3600) as daemon:
        await asyncio.sleep(0.5)  # let both watchers settle into IDLE
        raw, mid = mf.reply("jane@acme.example", "<x@example.com>", "Hello", utc(2026, 11, 2, 9), "idle-1")
        mf.deliver(dovecot, "INBOX", raw)
        await daemon.wait_for(lambda: daemon.store.message(mid.strip("<>")), timeout=60, what="the IDLE delivery")


async def test_reconnects_after_the_server_restarts_and_misses_nothing(config, dovecot):
    async with RunningDaemon(config, START) as daemon:
        first, mid1 = mf.reply("jane@acme.example", "<a@example.com>", "One", utc(2026, 11, 2, 9), "r-1")
        mf.deliver(dovecot, "INBOX", first)
        await daemon.wait_for(lambda: daemon.store.message(mid1.strip("<>")), timeout=5)
        dovecot.stop()
        await asyncio.sleep(1.0)
        dovecot.start()
        raws = [mf.reply("jane@acme.example", "<a@example.com>", f"While away {n}", utc(2026, 11, 2, 9, n), f"away-{n}")
                for n in range(3)]
        for raw, _ in raws:
            mf.deliver(dovecot, "INBOX", raw)
        await daemon.wait_for(lambda: all(daemon.store.message(m.strip("<>")) for _, m in raws), timeout=30,
                              what="the messages that arrived during the outage")
        assert daemon.store.message_count() == 4, "nothing stored twice"


async def test_uidvalidity_change_resyncs_without_duplicates(config, dovecot):
    raws = [mf.request("jane@acme.example", f"Q{n}?", utc(2026, 10, 20 + n, 10), f"uv-{n}") for n in range(3)]
    for raw, _ in raws:
        mf.deliver(dovecot, "Sent", raw)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message_count() == 3, timeout=20)
        old = daemon.store.folder_state("Sent").uidvalidity
    dovecot.delete_folder("Sent")
    dovecot.create_folder("Sent")
    for raw, _ in raws:
        mf.deliver(dovecot, "Sent", raw)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: (daemon.store.folder_state("Sent").uidvalidity != old
                                       and daemon.store.folder_state("Sent").last_uid >= 3), timeout=20,
                              what="the resync")
        new = daemon.store.folder_state("Sent").uidvalidity
        assert daemon.store.known_uids("Sent", new, [1, 2, 3]) == {1, 2, 3}, "each UID linked under the new UIDVALIDITY"
        ours = [m for m in daemon.store.messages_for_client("acme") if m.parting_kind is None]
        assert len(ours) == 3, "one row per message, no duplicates"
        assert daemon.store.events(kinds=["folder_resync"])


async def test_malformed_messages_are_quarantined_and_the_daemon_stays_up(config, dovecot):
    corpus = sorted(p for p in CORPUS.glob("*.eml"))
    assert len(corpus) >= 20
    raws = [p.read_bytes() for p in corpus]
    dovecot.append_many("INBOX", [r for r in raws if r])
    good, mid = mf.reply("jane@acme.example", "<z@example.com>", "After the storm", utc(2026, 11, 1, 9), "good")
    async with RunningDaemon(config, START) as daemon:
        nonempty = sum(1 for r in raws if r)
        await daemon.wait_for(lambda: daemon.store.message_count() + daemon.store.quarantine_count() >= nonempty,
                              timeout=60, what="every corpus message stored or quarantined")
        for item in daemon.store.quarantined():
            assert item.reason, "every quarantined message says why"
        mf.deliver(dovecot, "INBOX", good)
        await daemon.wait_for(lambda: daemon.store.message(mid.strip("<>")), timeout=5,
                              what="a good message after the bad ones")


async def test_a_restart_fetches_nothing_already_stored(config, dovecot, monkeypatch):
    from daemon.runtime.intake import Intake

    seed_threads(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message_count() >= 8, timeout=20)
        await daemon.settle()
        stored = {(folder, uid) for folder in ("INBOX", "Sent")
                  for uid in daemon.store.known_uids(folder, daemon.store.folder_state(folder).uidvalidity,
                                                     dovecot.uids(folder))}
    fetched: list[tuple[str, int]] = []
    original = Intake._on_batch

    async def counting(self, folder, info, headers, read_bodies):
        fetched.extend((folder, h.uid) for h in headers)
        await original(self, folder, info, headers, read_bodies)

    monkeypatch.setattr(Intake, "_on_batch", counting)
    async with RunningDaemon(config, START) as daemon:
        await daemon.advance(minutes=1)
        rows = [daemon.store.message(mid) for mid in _all_ids(daemon.store)]
    assert len(stored) == 8
    assert not set(fetched) & stored, f"fetched again: {sorted(set(fetched) & stored)}"
    hashes = [row.content_hash for row in rows]
    assert len(hashes) == len(set(hashes)), [(r.message_id, r.subject, r.parting_kind) for r in rows]


def _all_ids(store) -> list[str]:
    return [message_id for (message_id,) in store.db.execute("SELECT message_id FROM messages").fetchall()]
