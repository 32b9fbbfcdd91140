"""core/release.py: the one transition and what moves with it, the envelope hash, the nudges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.release import (
    DraftFacts,
    Endorsement,
    Envelope,
    Event,
    OpenToken,
    endorsed_hash,
    review_nudges,
    transition,
)
from daemon.core.replytext import Command

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
A_OK, B_OK = Endorsement("alice", "owner", "approved"), Endorsement("bob", "reviewer", "approved")


def facts(state: str = "second_review", endorsements=(A_OK,), **kw) -> DraftFacts:
    return DraftFacts(**{"state": state, "version": 1, "writer": "parting", "endorsements": tuple(endorsements),
                         "owner": "alice", "reviewers": ("bob", "carol"), "approvals_required": 1,
                         "send_delay": timedelta(minutes=10), **kw})


def command(kind: str, person: str = "bob", role: str = "reviewer", **kw) -> Event:
    return Event("command", Command(kind, **kw), person, role)  # type: ignore[arg-type]


def test_entering_sendable_queues_one_release_and_a_last_chance_for_the_owner_and_every_endorser() -> None:
    step = transition(facts(), command("approve"), NOW)
    assert (step.state, step.queue_release, step.not_before) == ("sendable", True, NOW + timedelta(minutes=10))
    assert step.last_chance == ("alice", "bob")


def test_with_no_send_delay_there_is_no_last_chance() -> None:
    step = transition(facts(send_delay=timedelta(0)), command("approve"), NOW)
    assert step.queue_release and step.last_chance == ()


@pytest.mark.parametrize(("event", "state"), [
    (command("reject", reason="no"), "rejected"), (command("stop"), "rejected"),
    (command("hold", days=2), "held"), (command("edit", text="Dear Jane"), "owner_review"),
    (Event("withdraw", reason="the client wrote back"), "rejected"), (Event("suspend"), "held"),
])
def test_every_way_out_of_sendable_cancels_the_release(event: Event, state: str) -> None:
    step = transition(facts("sendable", (A_OK, B_OK)), event, NOW)
    assert step.state == state and step.cancel_releases and not step.queue_release


@pytest.mark.parametrize(("event", "revoked"), [
    (command("edit", text="x"), True), (command("reject"), True), (command("stop"), True), (Event("sent"), True),
    (command("hold", days=1), False), (command("approve", person="carol"), False), (Event("suspend"), False),
])
def test_tokens_die_with_their_version_and_with_the_final_states(event: Event, revoked: bool) -> None:
    assert transition(facts("sendable", (A_OK, B_OK)), event, NOW).revoke_tokens is revoked


def test_a_late_approve_in_sendable_is_recorded_and_moves_nothing_else() -> None:
    step = transition(facts("sendable", (A_OK, B_OK)), command("approve", person="carol"), NOW)
    assert (step.state, step.endorsement, step.cancel_releases, step.queue_release) == (
        "sendable", Endorsement("carol", "reviewer", "approved"), False, False)


@pytest.mark.parametrize("state", ["rejected", "sent"])
def test_final_states_stay_final(state: str) -> None:
    for event in (command("approve"), command("edit", text="x"), Event("resume"), Event("hold_over")):
        step = transition(facts(state, (A_OK, B_OK)), event, NOW)
        assert step.state == state and not step.changed and not step.queue_release


def test_the_mail_left_is_the_truth_even_after_a_late_decision() -> None:
    assert transition(facts("rejected", (A_OK, B_OK)), Event("sent"), NOW).state == "sent"


def test_a_hold_ends_only_when_its_time_is_over_and_a_suspension_only_by_resume() -> None:
    held = facts("held", (A_OK, B_OK), hold_until=NOW + timedelta(days=1))
    assert not transition(held, Event("hold_over"), NOW).changed
    over = transition(held, Event("hold_over"), NOW + timedelta(days=1))
    assert over.state == "sendable" and over.queue_release
    suspended = facts("held", (A_OK, B_OK), hold_until=None)
    assert not transition(suspended, Event("hold_over"), NOW + timedelta(days=99)).changed
    assert transition(suspended, Event("resume"), NOW).state == "sendable"


def test_the_endorsed_hash_covers_the_envelope_and_the_text() -> None:
    envelope = Envelope(("jane@acme.example",), "Re: Signed form 3?", "<r3@example.com>", ("<r3@example.com>",))
    base = endorsed_hash(envelope, "Dear Jane")
    assert base != endorsed_hash(envelope, "Dear Jane.")
    assert base != endorsed_hash(Envelope(("jane@acme.example",), "Re: URGENT", "<r3@example.com>",
                                          ("<r3@example.com>",)), "Dear Jane")
    assert base != endorsed_hash(Envelope(("eve@evil.example",), envelope.subject, envelope.in_reply_to,
                                          envelope.references), "Dear Jane")
    assert Envelope.from_dict(envelope.to_dict()) == envelope


def test_remind_once_then_offer_a_reviewer_s_review_to_the_next_reviewer() -> None:
    def after(start: datetime) -> datetime:
        return start + timedelta(hours=1)

    fresh = OpenToken("t1", "bob", "reviewer", NOW)
    assert review_nudges([fresh], reviewers=("bob", "carol"), owner="alice", asked={"alice", "bob"}, after=after,
                         now=NOW + timedelta(minutes=59)) == []
    [remind] = review_nudges([fresh], reviewers=("bob", "carol"), owner="alice", asked={"alice", "bob"},
                             after=after, now=NOW + timedelta(hours=1))
    assert (remind.kind, remind.person) == ("remind", "bob")
    reminded = OpenToken("t1", "bob", "reviewer", NOW, reminded_at=NOW + timedelta(hours=1))
    [offer] = review_nudges([reminded], reviewers=("bob", "carol"), owner="alice", asked={"alice", "bob"},
                            after=after, now=NOW + timedelta(hours=2))
    assert (offer.kind, offer.offer_to) == ("offer", "carol")
    owner = OpenToken("t2", "alice", "owner", NOW, reminded_at=NOW)
    notice = OpenToken("t3", "bob", "last_chance", NOW)
    assert review_nudges([owner, notice], reviewers=("bob", "carol"), owner="alice", asked={"alice"},
                         after=after, now=NOW + timedelta(days=9)) == []


@given(st.lists(st.sampled_from(["approve", "reject", "stop", "hold", "edit"]), max_size=12),
       st.lists(st.sampled_from(["alice", "bob", "carol"]), min_size=12, max_size=12))
def test_only_a_version_both_signed_ever_queues_and_nothing_queues_twice(kinds: list[str], people: list[str]) -> None:
    state = facts("owner_review", ())
    queued_live = False
    for kind, person in zip(kinds, people, strict=False):
        role = "owner" if person == "alice" else "reviewer"
        event = command(kind, person, role, days=1) if kind == "hold" else (
            command(kind, person, role, text="new") if kind == "edit" else command(kind, person, role))
        step = transition(state, event, NOW)
        if step.cancel_releases:
            queued_live = False
        if step.queue_release:
            assert not queued_live, "a second live release"
            queued_live = True
            endorsers = {e.person for e in state.endorsements} | ({step.endorsement.person} if step.endorsement else set())
            assert "alice" in endorsers and endorsers - {"alice"}
        endorsements = state.endorsements
        if step.new_text is not None:
            endorsements, writer = ((step.endorsement,) if step.endorsement else ()), person
        else:
            writer = state.writer
            if step.endorsement and step.endorsement not in endorsements:
                endorsements = (*endorsements, step.endorsement)
        state = facts(step.state, endorsements, writer=writer, hold_until=step.hold_until)
