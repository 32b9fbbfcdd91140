"""The release rules of issue #17 beyond the six reproductions: every way out of `sendable`
cancels the release, the store refuses what the flows must never do, and the claim re-checks."""

from __future__ import annotations

import sqlite3

import pytest
from harness import utc
from release_world import World, seed_unresponsive_acme

from daemon.adapters.store import StoreError

T0 = utc(2026, 11, 2, 10, 0)  # a Monday


@pytest.fixture
def sendable(tmp_path):
    """acme's release approved by alice and bob: queued behind the 10-minute send_delay."""
    w = World(tmp_path / "parting", T0)
    seed_unresponsive_acme(w, T0)
    w.cycle()
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    assert w.store.drafts()[0].state == "sendable"
    yield w
    w.close()


def release_rows(w: World) -> list:
    return [r for r in w.store.rows() if r.kind == "release"]


@pytest.mark.parametrize(("who", "text", "state"), [
    ("bob", "STOP", "rejected"), ("alice", "STOP", "rejected"), ("bob", "HOLD 2 days", "held"),
    ("alice", "REJECT not now", "rejected"),
])
def test_every_command_of_the_last_chance_notice_keeps_the_release_back(sendable, who, text, state) -> None:
    w = sendable
    w.advance(minutes=3)
    w.reply(who, w.to(who, "last-chance")[-1], text)
    w.advance(minutes=11)
    assert w.releases() == [] and w.store.drafts()[0].state == state
    assert [r.state for r in release_rows(w)] == ["cancelled"]


def test_an_approve_to_the_notice_is_refused_with_help(sendable) -> None:
    w = sendable
    w.reply("bob", w.to("bob", "last-chance")[-1], "APPROVE")
    [refused] = w.store.events(kinds=["reply_refused"])
    assert refused.data["code"] == "unknown_command"
    assert "STOP" in w.to("bob", "refusal")[-1].text()
    w.advance(minutes=11)
    assert len(w.releases()) == 1


def test_pausing_the_client_cancels_the_release_and_resuming_sends_it_once_after_a_new_delay(sendable) -> None:
    w = sendable
    w.advance(minutes=2)
    w.pause("acme", True)
    assert [r.state for r in release_rows(w)] == ["cancelled"], "at once, not at the next cycle"
    assert w.store.drafts()[0].state == "held"
    w.advance(minutes=11)
    w.advance(days=1)
    assert w.releases() == []
    w.pause("acme", False)
    w.advance(minutes=1)
    assert w.store.drafts()[0].state == "sendable"
    assert w.to("alice", "last-chance")[-1].at == w.clock.now(), "a new last chance"
    w.advance(minutes=11)
    w.advance(hours=1)
    assert len(w.releases()) == 1


def test_a_reply_from_the_client_withdraws_the_draft_and_its_release(sendable) -> None:
    w = sendable
    w.advance(minutes=2)
    w.client_writes("Re: Signed form 3?", "Sorry for the silence, the form is attached.\n")
    w.cycle()
    assert w.store.drafts()[0].state == "rejected"
    [withdrawn] = w.store.events(kinds=["draft_withdraw"])
    assert "new episode" in withdrawn.data["reason"]
    w.advance(minutes=11)
    assert w.releases() == []


def test_the_claim_cancels_a_release_whose_draft_moved_on_behind_the_flows_back(sendable) -> None:
    w = sendable
    w.store.set_draft_state(w.store.drafts()[0].id, "held", w.clock.now())  # a path that forgot the rule
    w.advance(minutes=11)
    assert w.releases() == []
    [row] = release_rows(w)
    assert row.state == "cancelled" and "no longer sendable" in row.last_error
    assert w.store.events(kinds=["release_cancelled"])[-1].data["by"] == "parting"


def test_the_store_refuses_a_second_live_release_of_a_draft(sendable) -> None:
    w = sendable
    [row] = release_rows(w)
    with pytest.raises(StoreError, match="UNIQUE"):
        w.store.enqueue("second@example.com", "release", "office@example.com", ["jane@acme.example"], b"x",
                        w.clock.now(), client_id="acme", draft_id=row.draft_id, draft_version=1)


def test_the_store_refuses_a_second_sent_release_in_one_episode(sendable) -> None:
    w = sendable
    w.advance(minutes=11)
    [sent] = release_rows(w)
    draft = w.store.draft(sent.draft_id)
    other = w.store.create_draft("acme", "release", "again", "text", "0" * 64, "parting", draft.episode,
                                 w.clock.now(), "sendable")
    second = w.store.enqueue("again@example.com", "release", "office@example.com", ["jane@acme.example"], b"x",
                             w.clock.now(), client_id="acme", draft_id=other, draft_version=1)
    claimed = w.store.claim_next(w.clock.now())
    assert claimed is not None and claimed.id == second
    with pytest.raises((StoreError, sqlite3.IntegrityError), match="already sent to this client in this episode"):
        w.store.mark_sent(second, "250", w.clock.now())


def test_a_reply_that_cannot_be_handled_is_parked_once_and_the_cycle_goes_on(sendable, monkeypatch) -> None:
    import daemon.flows.replies as replies

    def broken(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    w = sendable
    monkeypatch.setattr(replies.core, "judge_reply", broken)
    w.reply("bob", w.to("bob", "last-chance")[-1], "STOP")
    w.advance(minutes=11)
    assert [e.data["what"] for e in w.store.events(kinds=["item_parked"])] == [
        f"staff reply <{w.store.events(kinds=['item_parked'])[0].data['item'].split(':', 1)[1]}>"]
    assert "RuntimeError: the disk is on fire" in w.store.events(kinds=["item_parked"])[0].data["reason"]
    assert len(w.to("alice", "parked")) == 1, "the owner is told once"
    assert w.releases() == [], "a reply that may have said stop holds its draft"
    assert w.store.drafts()[0].state == "held"
    assert len(w.to("alice", "review")) == 1
    w.advance(days=1, minutes=1)  # the hold is over: a new last chance, then the release
    assert w.to("bob", "last-chance")[-1].at == w.clock.now()
    w.advance(minutes=11)
    assert len(w.releases()) == 1, "the cycle went on"
