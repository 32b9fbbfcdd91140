"""After the release: the phone-call deadline, client replies, DONE replies, review reminders.
All on an injected clock: simulated hours and days pass without waiting."""

from __future__ import annotations

import mailfactory as mf
import pytest
from harness import START, RunningDaemon, by_kind, reply_to_review, seed_history, utc, write_config

pytestmark = pytest.mark.integration


async def send_release(daemon, dovecot, sink):
    """The whole review by reply, then past send_delay: returns the release as the client got it."""
    owner = (await daemon.wait_for(lambda: by_kind(sink, "review", "alice@example.com"), timeout=20))[0]
    await reply_to_review(daemon, dovecot, owner, "alice@example.com", "APPROVE", "f-alice")
    colleague = (await daemon.wait_for(lambda: by_kind(sink, "review", "bob@example.com"), timeout=10))[0]
    await reply_to_review(daemon, dovecot, colleague, "bob@example.com", "APPROVE", "f-bob")
    await daemon.wait_for(lambda: any(r.kind == "release" for r in daemon.store.rows()), timeout=10)
    await daemon.advance(minutes=11)
    return (await daemon.wait_for(lambda: by_kind(sink, "release"), timeout=10))[0]


def open_call(daemon):
    calls = [d for d in daemon.store.deadlines() if d.kind == "phone_call"]
    assert len(calls) == 1
    return calls[0]


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


async def test_the_phone_call_falls_due_after_24_hours_and_is_reminded_once(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await send_release(daemon, dovecot, smtp_sink)
        sent_at = daemon.clock.now()
        call = open_call(daemon)
        assert abs((call.due_at - sent_at).total_seconds() - 24 * 3600) < 60
        await daemon.advance(hours=23)
        assert not by_kind(smtp_sink, "reminder-phone_call")
        await daemon.advance(hours=2)
        reminders = await daemon.wait_for(lambda: by_kind(smtp_sink, "reminder-phone_call", "alice@example.com"),
                                          timeout=10, what="the call reminder")
        text = reminders[0].message.get_body(("plain",)).get_content()
        assert "+44 20 7946 0000" in text and "Jane Doe" in text
        await daemon.advance(days=1)
        assert len(by_kind(smtp_sink, "reminder-phone_call")) == 1, "reminded once"


async def test_a_business_time_deadline_skips_the_weekend(tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink,
                          extra={"followup": {"phone_call_after": "1 business days", "retrospective_after": "7 days"}})
    seed_history(dovecot)
    friday = utc(2026, 11, 6, 10, 0)
    async with RunningDaemon(config, friday) as daemon:
        await send_release(daemon, dovecot, smtp_sink)
        call = open_call(daemon)
        assert call.due_at.date().isoformat() == "2026-11-09", "Friday + 1 business day is Monday"
        await daemon.advance(days=2)  # Sunday
        assert not by_kind(smtp_sink, "reminder-phone_call")
        await daemon.advance(days=1)  # Monday, past the time of day
        await daemon.wait_for(lambda: by_kind(smtp_sink, "reminder-phone_call"), timeout=10)


async def test_a_client_reply_before_the_call_cancels_it_and_tells_the_owner(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        release = await send_release(daemon, dovecot, smtp_sink)
        await daemon.advance(hours=2)
        raw, _ = mf.reply("jane@acme.example", release.message["Message-ID"], str(release.message["Subject"]),
                          daemon.clock.now(), "jane-answers", body="Understood. Thank you for everything.\n")
        mf.deliver(dovecot, "INBOX", raw)
        await daemon.wait_for(lambda: open_call(daemon).state == "cancelled", timeout=10, what="the call cancelled")
        await daemon.wait_for(lambda: by_kind(smtp_sink, "client-answered", "alice@example.com"), timeout=10)
        await daemon.advance(hours=30)
        assert not by_kind(smtp_sink, "reminder-phone_call")
        assert daemon.store.drafts()[0].state == "sent", "the release itself stands"
        assert daemon.store.events(kinds=["deadline_cancelled"])


async def test_a_reply_after_the_call_fell_due_reopens_nothing(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        release = await send_release(daemon, dovecot, smtp_sink)
        await daemon.advance(hours=25)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "reminder-phone_call"), timeout=10)
        raw, _ = mf.reply("jane@acme.example", release.message["Message-ID"], str(release.message["Subject"]),
                          daemon.clock.now(), "jane-late")
        mf.deliver(dovecot, "INBOX", raw)
        await daemon.advance(hours=1)
        assert [d.state for d in daemon.store.drafts()] == ["sent"]
        assert len(by_kind(smtp_sink, "release")) == 1
        assert open_call(daemon).state == "open", "a late reply does not close the call: the owner does"
        assert not by_kind(smtp_sink, "client-answered")


async def test_done_from_the_owner_closes_the_call_and_done_from_anyone_else_does_not(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await send_release(daemon, dovecot, smtp_sink)
        await daemon.advance(hours=25)
        reminder = (await daemon.wait_for(lambda: by_kind(smtp_sink, "reminder-phone_call"), timeout=10))[0]
        await reply_to_review(daemon, dovecot, reminder, "bob@example.com", "DONE called them", "bob-done")
        await daemon.wait_for(lambda: [e for e in daemon.store.events(kinds=["reply_refused"])
                                       if e.data["code"] == "wrong_sender"], timeout=10)
        assert open_call(daemon).state == "open"
        await reply_to_review(daemon, dovecot, reminder, "alice@example.com",
                              "DONE Called Jane; she understood and asked for the files.", "alice-done")
        await daemon.wait_for(lambda: open_call(daemon).state == "done", timeout=10)
        call = open_call(daemon)
        assert call.closed_by == "alice" and call.note.startswith("Called Jane")


async def test_a_silent_reviewer_is_reminded_once_then_the_review_goes_to_the_next(tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink,
                          review={"reviewers": ["bob", "carol"], "remind_after": "4 hours"})
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner = (await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com"), timeout=20))[0]
        await reply_to_review(daemon, dovecot, owner, "alice@example.com", "APPROVE", "r-alice")
        await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10)
        await daemon.advance(hours=5)
        reminders = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com")[1:], timeout=10,
                                          what="bob's reminder")
        assert "Reminder" in str(reminders[0].message["Subject"])
        assert not by_kind(smtp_sink, "review", "carol@example.com")
        await daemon.advance(hours=5)
        carol = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "carol@example.com"), timeout=10,
                                      what="the review offered to carol")
        assert len(by_kind(smtp_sink, "review", "bob@example.com")) == 2, "bob was reminded once"
        await reply_to_review(daemon, dovecot, carol[0], "carol@example.com", "APPROVE", "r-carol")
        await daemon.wait_for(lambda: daemon.store.drafts()[0].state == "sendable", timeout=10)
        # bob answers his reminder late: his approval is recorded, nothing is sent twice
        await reply_to_review(daemon, dovecot, reminders[0], "bob@example.com", "APPROVE", "r-bob-late")
        draft = daemon.store.drafts()[0]
        await daemon.wait_for(lambda: "bob" in {e.person for e in daemon.store.endorsements(draft.id, 1)},
                              timeout=10, what="bob's late approval recorded")
        await daemon.advance(minutes=11)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10)
        await daemon.advance(minutes=5)
        assert len(by_kind(smtp_sink, "release")) == 1


async def test_the_retrospective_answer_is_kept_in_the_case_file(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await send_release(daemon, dovecot, smtp_sink)
        await daemon.advance(days=7, hours=1)
        retro = (await daemon.wait_for(lambda: by_kind(smtp_sink, "reminder-retrospective", "alice@example.com"),
                                       timeout=10, what="the retrospective email"))[0]
        text = retro.message.get_body(("plain",)).get_content()
        assert "casefiles/acme-" in text, "the retrospective points at the written case file"
        await reply_to_review(daemon, dovecot, retro, "alice@example.com",
                              "DONE A call in the second week would have told us sooner.", "retro")
        await daemon.wait_for(lambda: daemon.store.notes("acme"), timeout=10, what="the lessons kept")
        assert daemon.store.notes("acme")[0].text == "A call in the second week would have told us sooner."
        retrospective = next(d for d in daemon.store.deadlines() if d.kind == "retrospective")
        assert retrospective.state == "done"


async def test_an_expired_review_request_is_renewed_so_the_draft_never_sticks(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        first = (await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "alice@example.com"), timeout=20))[0]
        await daemon.advance(hours=73)  # past token_ttl (72 hours), unanswered
        renewed = await daemon.wait_for(
            lambda: [m for m in by_kind(smtp_sink, "review", "alice@example.com")
                     if "Reminder" not in str(m.message["Subject"])][1:], timeout=10, what="a fresh review email")
        assert renewed[0].message["Reply-To"] != first.message["Reply-To"], "a new token"
        assert daemon.store.events(kinds=["review_renewed"])
        await reply_to_review(daemon, dovecot, renewed[0], "alice@example.com", "APPROVE", "renewed-ok")
        await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10,
                              what="the draft moving on after the renewed approval")
        await daemon.advance(minutes=30)
        renewals = daemon.store.events(kinds=["review_renewed"])
        assert len(renewals) == 1, "renewed once, not every cycle"
