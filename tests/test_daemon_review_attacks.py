"""Every way to fake an approval, against the live daemon: each is refused, logged with its
reason, changes nothing, and leaves no release in the outbox."""

from __future__ import annotations

import mailfactory as mf
import pytest
from harness import START, RunningDaemon, by_kind, reply_to_review, seed_history, write_config

pytestmark = pytest.mark.integration


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


async def owner_review(daemon, sink):
    return (await daemon.wait_for(lambda: by_kind(sink, "review", "alice@example.com"), timeout=20,
                                  what="the owner's review email"))[0]


async def refused(daemon, code: str, count: int = 1):
    events = await daemon.wait_for(lambda: [e for e in daemon.store.events(kinds=["reply_refused"])
                                            if e.data["code"] == code][count - 1:] or None,
                                   timeout=10, what=f"a refusal with code {code}")
    await daemon.settle()
    return events


def no_release(daemon, sink) -> None:
    assert not [r for r in daemon.store.rows() if r.kind == "release"]
    assert not by_kind(sink, "release")


FORGERIES = {
    "no Authentication-Results": dict(auth=None),
    "failing DMARC": dict(auth=f"{mf.AUTHSERV}; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com; dmarc=fail header.from=example.com"),
    "forged pass below a real fail": dict(
        auth=f"{mf.AUTHSERV}; dkim=none; spf=softfail smtp.mailfrom=example.com; dmarc=fail header.from=example.com",
        extra_auth_below=mf.auth_results("example.com")),
    "pass from another authserv-id": dict(auth=mf.auth_results("example.com", authserv="mx.attacker.example")),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_unauthenticated_approvals_are_refused(config, dovecot, smtp_sink, forgery):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "forged", **FORGERIES[forgery])
        [event] = await refused(daemon, "not_authenticated")
        assert event.data["reason"]
        assert daemon.store.drafts()[0].state == "owner_review"
        assert not by_kind(smtp_sink, "review", "bob@example.com")
        assert not by_kind(smtp_sink, "refusal"), "an unauthenticated sender is never answered"
        no_release(daemon, smtp_sink)


async def test_a_third_party_with_the_token_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "carol@example.com", "APPROVE", "carol")
        await refused(daemon, "wrong_sender")
        assert daemon.store.drafts()[0].state == "owner_review"
        no_release(daemon, smtp_sink)


async def test_the_owner_cannot_answer_the_colleagues_review_email(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "alice-ok")
        colleague = (await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10))[0]
        await reply_to_review(daemon, dovecot, colleague, "alice@example.com", "APPROVE", "alice-as-bob")
        await refused(daemon, "wrong_sender")
        assert daemon.store.drafts()[0].state == "second_review"
        no_release(daemon, smtp_sink)


async def test_a_replayed_approval_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "first")
        await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "again")
        await refused(daemon, "replayed")
        endorsements = daemon.store.endorsements(daemon.store.drafts()[0].id, 1)
        assert [e.person for e in endorsements] == ["alice"], "the approval counted once"
        no_release(daemon, smtp_sink)


async def test_a_token_for_version_1_after_an_edit_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "a1")
        colleague = (await daemon.wait_for(lambda: by_kind(smtp_sink, "review", "bob@example.com"), timeout=10))[0]
        await reply_to_review(daemon, dovecot, colleague, "bob@example.com", "EDIT\nDear Jane,\n\nGoodbye.\n", "b-edit")
        await daemon.wait_for(lambda: daemon.store.drafts()[0].current_version == 2, timeout=10)
        # bob's version-1 token was used; alice's first (version 1) token was used too. A fresh
        # approval of version 1 by bob is impossible; replaying alice's v1 review is superseded/replayed.
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "a-old")
        events = await daemon.wait_for(lambda: daemon.store.events(kinds=["reply_refused"]), timeout=10)
        assert events[-1].data["code"] in ("superseded", "replayed")
        assert daemon.store.drafts()[0].state == "owner_review"
        no_release(daemon, smtp_sink)


async def test_an_expired_token_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await daemon.advance(hours=73)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "APPROVE", "late")
        await refused(daemon, "expired")
        no_release(daemon, smtp_sink)


async def test_an_out_of_office_quoting_the_review_is_refused(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "I am away until Monday.\nAPPROVE",
                              "ooo", headers={"Auto-Submitted": "auto-replied"})
        await refused(daemon, "auto_reply")
        assert daemon.store.drafts()[0].state == "owner_review"
        no_release(daemon, smtp_sink)


async def test_reject_above_a_quote_that_says_approve_is_a_reject(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        assert "APPROVE" in review.message.get_body(("plain",)).get_content()
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "REJECT", "rej")
        await daemon.wait_for(lambda: daemon.store.drafts()[0].state == "rejected", timeout=10)
        no_release(daemon, smtp_sink)


async def test_a_client_name_with_an_encoded_newline_is_refused_before_any_mail(tmp_path, dovecot, smtp_sink):
    from harness import CLIENTS

    from daemon.adapters.settings.load import SettingsError

    evil = [{**CLIENTS[0], "name": "Acme =?UTF-8?Q?Ltd=0ABcc:_attacker@evil.example?="}, CLIENTS[1]]
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, clients=evil)
    seed_history(dovecot)
    with pytest.raises(SettingsError) as refused_config:
        async with RunningDaemon(config, START):
            pass
    assert "clients[0].name: cannot go into an email header" in str(refused_config.value)
    assert "config.yaml:" in str(refused_config.value)
    assert smtp_sink.messages == [], "the daemon never started, nothing was sent"


async def test_an_authenticated_owner_with_an_unclear_answer_gets_help_and_nothing_changes(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        await reply_to_review(daemon, dovecot, review, "alice@example.com", "Let me think about it.", "unclear")
        await refused(daemon, "unknown_command")
        [answer] = await daemon.wait_for(lambda: by_kind(smtp_sink, "refusal", "alice@example.com"), timeout=10,
                                         what="the helpful answer")
        body = answer.message.get_body(("plain",)).get_content()
        assert "APPROVE" in body and "REJECT" in body, "the answer says what can be written"
        assert daemon.store.drafts()[0].state == "owner_review"
        no_release(daemon, smtp_sink)


async def test_the_token_table_holds_claims_not_tokens(config, dovecot, smtp_sink):
    """Tokens are recomputed from their stored claims with the key; the tokens table holds no MAC.
    (The review email itself carries the token, in the outbox copy and in Sent: that is why a
    reply must also come from the person's own, authenticated address.)"""
    import sqlite3

    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        review = await owner_review(daemon, smtp_sink)
        token = str(review.message["Reply-To"]).split("+r-", 1)[1].split("@", 1)[0]
        mac = token.split("-", 1)[1]
        database = daemon.service.ctx.settings.database
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT * FROM tokens").fetchall()
    assert rows and not any(mac in str(value) for row in rows for value in row)
