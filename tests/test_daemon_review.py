"""End to end through Dovecot and the SMTP sink: unresponsive client -> owner decides -> colleague
checks -> release email sent once, threaded, filed in Sent -> follow-up call deadline."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from harness import START, RunningDaemon, by_kind, reply_to_review, seed_history, write_config

pytestmark = pytest.mark.integration

@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


async def test_owner_then_colleague_approve_and_the_release_leaves_once(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner_review = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com"),
                                             timeout=20, what="the owner's review email")
        assert not by_kind(smtp_sink, "review", "bob@example.com"), "the colleague is asked only after the owner"
        text = owner_review[0].message.get_body(("plain",)).get_content()
        assert "Signed form" in text and "APPROVE" in text
        await reply_to_review(daemon, dovecot, owner_review[0], "alice@example.com", "Approve", "alice-approve")

        colleague_review = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"),
                                                 timeout=10, what="the colleague's review email")
        assert not by_kind(smtp_sink, "release"), "nothing leaves on the owner's word alone"
        await reply_to_review(daemon, dovecot, colleague_review[0], "bob@example.com", "APPROVE", "bob-approve")
        await daemon.wait_for(lambda: daemon.store.rows(["queued"]) and any(
            r.kind == "release" for r in daemon.store.rows(["queued"])), timeout=10, what="the release in the outbox")
        assert not by_kind(smtp_sink, "release"), "send_delay holds the release back"

        await daemon.advance(minutes=11)
        releases = await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the release")
        await daemon.advance(minutes=5)

        assert len(by_kind(smtp_sink, "release")) == 1
        release = releases[0].message
        assert "jane@acme.example" in releases[0].rcpt_tos
        assert release["In-Reply-To"], "the release threads under the last conversation"
        assert not any("hank@globex.example" in m.rcpt_tos for m in by_kind(smtp_sink, "release"))
        decisions = [e for e in daemon.store.events(kinds=["review_decision"])]
        assert [(e.data["person"], e.data["command"]) for e in decisions] == [("alice", "approve"), ("bob", "approve")]
        assert all(e.data["authentication"]["ok"] for e in decisions)
        deadlines = daemon.store.deadlines(["open"])
        assert {d.kind for d in deadlines} == {"phone_call", "retrospective"}
        call = next(d for d in deadlines if d.kind == "phone_call")
        assert call.data["phone"] == "+44 20 7946 0000"
        assert (call.due_at - daemon.clock.now()).total_seconds() == pytest.approx(24 * 3600 - 5 * 60, abs=120)
        [written] = daemon.store.events(kinds=["casefile_written"])
        casefile = Path(written.data["path"]).read_text()
        assert "Signed form 1?" in casefile and "<script" not in casefile
        sent_copies = [message_from_bytes(raw, policy=default) for raw in dovecot.fetch_all("Sent")]
        assert sum(1 for m in sent_copies if m.get("X-Parting-Kind") == "release") == 1


async def test_a_colleague_edit_goes_back_to_the_owner(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner_review = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com"), timeout=20)
        await reply_to_review(daemon, dovecot, owner_review[0], "alice@example.com", "APPROVE", "alice-1")
        colleague = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10)
        edited = "EDIT\nDear Jane,\n\nWe have decided to end our work together. Thank you.\n\nAlice"
        await reply_to_review(daemon, dovecot, colleague[0], "bob@example.com", edited, "bob-edit")
        second = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com")[1:], timeout=10,
                                       what="the edited version back to the owner")
        assert "We have decided to end our work together" in second[0].message.get_body(("plain",)).get_content()
        draft = daemon.store.drafts()[0]
        assert draft.current_version == 2 and draft.state == "owner_review"
        await reply_to_review(daemon, dovecot, second[0], "alice@example.com", "approve", "alice-2")
        await daemon.wait_for(lambda: daemon.store.draft(draft.id).state == "sendable", timeout=10)
        await daemon.advance(minutes=11)
        release = await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10)
        assert "We have decided to end our work together" in release[0].message.get_body(("plain",)).get_content()


async def test_reject_stops_the_release_and_is_recorded(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner_review = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com"), timeout=20)
        await reply_to_review(daemon, dovecot, owner_review[0], "alice@example.com",
                              "REJECT Carol knows them better; let her call first", "alice-reject")
        await daemon.wait_for(lambda: daemon.store.drafts()[0].state == "rejected", timeout=10)
        await daemon.advance(days=2)
        assert not by_kind(smtp_sink, "release")
        assert not by_kind(smtp_sink, "review", "bob@example.com")
        decision = daemon.store.events(kinds=["review_decision"])[0]
        assert decision.data["reason"].startswith("Carol knows them better")
