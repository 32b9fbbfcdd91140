"""Reading replies end to end, through Dovecot and the SMTP sink: a greeting before the command is
how people write (one release), while a negated or questioning APPROVE and a genuine mail replayed
with stacked header fields are refused, answered with the grammar, and release nothing."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import mailfactory as mf
import pytest
from harness import RunningDaemon, utc, write_config
from test_daemon_review import START, by_kind, reply_to_review, seed_history

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


async def review_for(daemon, sink, person: str, count: int = 1):
    return (await daemon.wait_for(lambda: by_kind(sink, "review", person)[count - 1:] or None, timeout=20,
                                  what=f"review email {count} to {person}"))[count - 1]


async def refusals(daemon, code: str, count: int):
    found = await daemon.wait_for(lambda: [e for e in daemon.store.events(kinds=["reply_refused"])
                                           if e.data["code"] == code][count - 1:] and
                                  [e for e in daemon.store.events(kinds=["reply_refused"]) if e.data["code"] == code],
                                  timeout=15, what=f"{count} refusal(s) with code {code}")
    await daemon.settle()
    return found


async def test_a_reply_that_opens_with_a_greeting_releases_once(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner = await review_for(daemon, smtp_sink, "alice@example.com")
        await reply_to_review(daemon, dovecot, owner, "alice@example.com", "Hello,\n\nApproved.\n\nAlice", "hi-alice")
        colleague = await review_for(daemon, smtp_sink, "bob@example.com")
        for review in (owner, colleague):  # the review emails say how to answer
            body = " ".join(review.message.get_body(("plain",)).get_content().split())
            assert "(a greeting line before it is fine; APPROVE stands alone on its line" in body
        # Bob's server signs for a subdomain and says nothing of DMARC: relaxed alignment by the
        # Public Suffix List (mail.example.com belongs to example.com) authenticates him.
        aligned_by_psl = f"{mf.AUTHSERV}; dkim=pass header.d=mail.example.com header.s=sel; spf=none"
        await reply_to_review(daemon, dovecot, colleague, "bob@example.com", "Hi Alice,\n\nApproved.\n\nBob", "hi-bob",
                              auth=aligned_by_psl)
        await daemon.wait_for(lambda: daemon.store.drafts()[0].state == "sendable", timeout=10, what="sendable")
        await daemon.advance(minutes=11)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the release")
        await daemon.advance(minutes=5)
        assert len(by_kind(smtp_sink, "release")) == 1
        assert not daemon.store.events(kinds=["reply_refused"])
        decisions = daemon.store.events(kinds=["review_decision"])
        assert [(e.data["person"], e.data["authentication"]["method"]) for e in decisions] == [
            ("alice", "dmarc"), ("bob", "dkim")]


async def test_negated_and_questioning_approvals_are_refused_and_answered_with_the_grammar(config, dovecot, smtp_sink):
    seed_history(dovecot)
    texts = ["Approve - NOT. We should call them first.", "Approved by whom? I never saw this.",
             "Hi Bob,\n\nApprove only after Alice fixes the date"]
    async with RunningDaemon(config, START) as daemon:
        owner = await review_for(daemon, smtp_sink, "alice@example.com")
        for n, text in enumerate(texts):
            await reply_to_review(daemon, dovecot, owner, "alice@example.com", text, f"negated-{n}")
        await refusals(daemon, "unknown_command", len(texts))
        answers = await daemon.wait_for(lambda: by_kind(smtp_sink, "refusal")[len(texts) - 1:] and
                                        by_kind(smtp_sink, "refusal"), timeout=10, what="the answers")
        for answer in answers:
            body = answer.message.get_body(("plain",)).get_content()
            assert "An APPROVE line holds the word and nothing else" in body
            assert "not read as APPROVE" in body
        await daemon.advance(minutes=30)
        assert daemon.store.drafts()[0].state == "owner_review"
        assert not daemon.store.events(kinds=["review_decision"])
        assert not by_kind(smtp_sink, "review", "bob@example.com")
        assert not by_kind(smtp_sink, "release")


async def test_a_genuine_mail_replayed_with_stacked_headers_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner = await review_for(daemon, smtp_sink, "alice@example.com")
        review = message_from_bytes(owner.data, policy=default)
        # The owner's real mail, signed and authenticated, written weeks before the review...
        genuine = mf.build(sender="alice@example.com", to="printer@example.com", subject="Print run",
                           body="Approved, go ahead with the print run.\n", when=utc(2026, 10, 12, 9),
                           mid=mf.message_id("print-run"),
                           headers={"Authentication-Results": mf.auth_results("example.com")})
        # ...with the review token's To and an In-Reply-To stacked above its own header fields.
        stacked = f"To: {review['Reply-To']}\r\nIn-Reply-To: {review['Message-ID']}\r\n".encode()
        dovecot.append("INBOX", stacked + genuine, msg_time=daemon.clock.now())
        [event] = await refusals(daemon, "repeated_header", 1)
        assert "2 To header fields" in event.data["reason"]
        # the same mail with the token's To only (no second copy) is older than the token
        replaced = genuine.replace(b"To: printer@example.com", f"To: {review['Reply-To']}".encode())
        replaced = replaced.replace(b"Subject: Print run", f"In-Reply-To: {review['Message-ID']}\r\nSubject: x".encode())
        dovecot.append("INBOX", replaced.replace(b"print-run", b"print-run-2"), msg_time=daemon.clock.now())
        await refusals(daemon, "older_than_token", 1)
        await daemon.advance(minutes=30)
        assert daemon.store.drafts()[0].state == "owner_review"
        assert not daemon.store.events(kinds=["review_decision"])
        assert not by_kind(smtp_sink, "release")
        assert not [r for r in daemon.store.rows() if r.kind == "release"]
