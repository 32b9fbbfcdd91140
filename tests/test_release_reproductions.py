"""The six failures of issue #17, each replayed in-process (tests/release_world.py: the real
Service cycle, a real SQLite store, a ManualClock, a fake mailer) and each held to the promise:
a release leaves once, only with both sign-offs, never after someone said stop."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from harness import utc
from release_world import World, seed_unresponsive_acme

from daemon.adapters import smtp as mailer
from daemon.adapters.settings.load import SettingsError, load_settings
from daemon.adapters.store import StoreError
from daemon.cli import cli
from daemon.queries.common import ReportError
from daemon.queries.status import status

T0 = utc(2026, 11, 2, 10, 0)  # a Monday
EDIT = "EDIT\nDear Jane,\n\nWe have decided to end our work together. Thank you.\n\nAlice"


@pytest.fixture
def world(tmp_path):
    made: list[World] = []

    def make(**options) -> World:
        made.append(World(tmp_path / f"parting{len(made)}", T0, **options))
        seed_unresponsive_acme(made[-1], T0)
        made[-1].cycle()
        return made[-1]

    yield make
    for w in made:
        w.close()


def two_reviewers(world) -> World:
    """alice approves; bob stays silent, is reminded, and the review is offered to carol, who
    approves: version 1 is sendable while bob's token is still live."""
    w = world(review={"reviewers": ["bob", "carol"], "remind_after": "1 hour"})
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.advance(hours=2)  # bob reminded
    w.advance(hours=2)  # offered to carol
    assert w.to("carol", "review"), "the review was offered to carol"
    w.reply("carol", w.to("carol", "review")[-1], "APPROVE")
    assert w.store.drafts()[0].state == "sendable"
    return w


def test_1_a_live_token_edit_in_the_send_delay_means_one_release_of_the_new_text(world) -> None:
    w = two_reviewers(world)
    bobs_first = w.to("bob", "review")[0]
    w.reply("bob", bobs_first, EDIT)
    assert w.store.drafts()[0].current_version == 2
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.advance(minutes=11)
    w.advance(hours=1)
    assert len(w.releases()) == 1
    assert "We have decided to end our work together" in w.releases()[0].text()


def test_2_a_hold_in_the_send_delay_keeps_the_release_back_until_the_hold_is_over(world) -> None:
    w = two_reviewers(world)
    w.reply("bob", w.to("bob", "review")[0], "HOLD 3 days")
    assert w.store.drafts()[0].state == "held"
    w.advance(minutes=11)
    w.advance(days=1)
    assert w.releases() == [] and w.store.drafts()[0].state == "held"
    w.advance(days=2, minutes=1)  # the hold is over: sendable again, a new send delay, a new last chance
    assert w.store.drafts()[0].state == "sendable" and w.releases() == []
    w.advance(minutes=11)
    assert len(w.releases()) == 1 and w.store.drafts()[0].state == "sent"


@pytest.mark.parametrize("who", ["alice", "bob"])
def test_3_a_reject_to_the_latest_email_inside_send_delay_stops_the_release(world, who) -> None:
    w = world()
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    latest = [s for s in w.sent if s.row.draft_id and f"{who}@example.com" in s.row.recipients][-1]
    w.advance(minutes=5)
    w.reply(who, latest, "REJECT the client called this morning")
    w.advance(minutes=11)
    w.advance(days=1)
    assert w.releases() == [] and w.store.drafts()[0].state == "rejected"
    assert "leaves at Mon 2 Nov 2026 10:10" in latest.text() and "STOP" in latest.text()
    [decision] = [e for e in w.store.events(kinds=["review_decision"]) if e.data["command"] == "reject"]
    assert decision.data["role"] == "last_chance"


def test_3_stop_works_too_and_after_the_send_moment_the_notice_no_longer_stops_anything(world) -> None:
    w = world()
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    notice = w.to("bob", "last-chance")[-1]
    w.advance(minutes=11)
    assert len(w.releases()) == 1
    w.reply("bob", notice, "STOP")
    refused = w.store.events(kinds=["reply_refused"])[-1]
    assert refused.data["code"] in ("expired", "not_in_review")
    assert w.store.drafts()[0].state == "sent" and len(w.releases()) == 1


def test_3_with_no_send_delay_there_is_no_last_chance(world) -> None:
    w = world(review={"send_delay": "0 minutes"})
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    assert not [s for s in w.sent if s.kind == "last-chance"]
    assert len(w.releases()) == 1


@pytest.mark.parametrize(("failure", "row_state", "command", "draft_state"), [
    (mailer.UncertainDelivery, "uncertain", "REJECT she paid everything today", "rejected"),
    (lambda reason: mailer.PermanentFailure(550, reason), "failed", "HOLD 2 days", "held"),
])
def test_4_a_stop_against_an_uncertain_or_failed_release_cancels_it_and_resend_refuses(
        world, failure, row_state, command, draft_state) -> None:
    w = two_reviewers(world)
    w.fail_next_send = failure
    w.advance(minutes=11)
    [row] = [r for r in w.store.rows() if r.kind == "release"]
    assert row.state == row_state
    w.reply("bob", w.to("bob", "review")[0], command)
    assert w.store.row(row.id).state == "cancelled"
    with pytest.raises((ReportError, StoreError), match=f"cannot resend outbox row .*{draft_state}, not sendable"):
        w.operator("resend", row.id)
    shown = CliRunner(env={"PARTING_TEST_CLOCK_FILE": None}).invoke(
        cli, ["outbox", "resend", str(row.id), "--config", str(w.config)], terminal_width=200)
    assert shown.exit_code != 0 and f"{draft_state}, not sendable" in shown.output
    with pytest.raises((ReportError, StoreError)):
        w.operator("confirm", row.id)
    w.advance(hours=12)
    assert w.releases() == [] and w.store.drafts()[0].state == draft_state


def test_5_one_item_that_fails_is_parked_and_everything_else_still_leaves(world, monkeypatch) -> None:
    import daemon.flows.evaluate as evaluate

    def broken(*args, **kwargs):
        raise ValueError("the local part 'accounts.receivable+r-...' is longer than 64 characters")

    monkeypatch.setattr(evaluate, "start_draft", broken)
    w = world()
    for _ in range(3):
        w.advance(minutes=1)
    kinds = [s.kind for s in w.sent]
    assert "owner-nudge" in kinds and "owner-notify_owner" in kinds, "the other mail still left"
    assert kinds.count("parked") == 1, "the owner is told once"
    parked = status(w.config, now=w.clock.now())["parked"]
    assert len(parked) == 1 and "longer than 64 characters" in parked[0]["reason"]


def test_5_check_config_refuses_a_mailbox_local_part_too_long_for_the_token_address(tmp_path) -> None:
    w = World(tmp_path / "ok", T0, mailbox_address="accounts@example.com")
    w.close()
    config = w.config
    config.write_text(config.read_text().replace("accounts@example.com", "accounts.receivable@example.com"))
    with pytest.raises(SettingsError, match=r"mailbox.address\[0\].*local part 'accounts.receivable' is 19"):
        load_settings(config)
    checked = CliRunner().invoke(cli, ["check-config", str(config)], terminal_width=200)
    assert checked.exit_code != 0 and "at most 18" in checked.output


def test_5_a_huge_message_id_never_becomes_an_encoded_word_in_the_release(world) -> None:
    w = world()
    huge = "<" + "x" * 3000 + "@acme.example>"
    raw, _ = __import__("mailfactory").request("jane@acme.example", "Signed form 3?", utc(2026, 10, 20, 10),
                                              "acme-req-4")
    raw = raw.replace(b"Message-ID:", b"References: " + huge.encode() + b"\r\nMessage-ID:", 1)
    w.deliver("Sent", raw)
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    w.advance(minutes=11)
    [release] = w.releases()
    head = release.row.raw.split(b"\r\n\r\n")[0]
    assert b"=?" not in head
    assert all(len(line) <= 998 for line in release.row.raw.split(b"\r\n"))


def test_6_the_client_cannot_choose_the_release_subject(world) -> None:
    # A message in a new thread answers none of our requests: the episode (and the draft) go on.
    w = world(policy={"reply_answers": "thread"})
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    w.client_writes("URGENT: legal notice from our solicitors")
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    w.advance(minutes=11)
    for release in w.releases():
        assert "URGENT" not in str(release.message["Subject"])
        assert "acme-req-3" in str(release.message["In-Reply-To"]), "threaded under our own request"


def test_6_both_review_emails_show_the_frozen_envelope_and_the_release_keeps_it(world) -> None:
    w = world()
    owner = w.to("alice", "review")[-1].text()
    w.reply("alice", w.to("alice", "review")[-1], "APPROVE")
    colleague = w.to("bob", "review")[-1].text()
    for text in (owner, colleague):
        assert "To: jane@acme.example" in text
        assert "Subject: Re: Signed form 3?" in text
        assert re.search(r"in reply to our message of Mon 19 Oct 2026 1[01]:00", text)
    w.reply("bob", w.to("bob", "review")[-1], "APPROVE")
    w.advance(minutes=11)
    [release] = w.releases()
    assert (str(release.message["To"]), str(release.message["Subject"])) == ("jane@acme.example",
                                                                           "Re: Signed form 3?")
