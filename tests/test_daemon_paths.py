"""The practice's other paths, end to end through Dovecot and the SMTP sink on a ManualClock:
delivery failures, answers outside email, triage, a new owner."""

from __future__ import annotations

import mailfactory as mf
import pytest
from harness import CLIENTS, RunningDaemon, utc, write_config
from test_daemon_review import START, by_kind, seed_history

from daemon.queries.explain import explain
from daemon.queries.status import status

pytestmark = pytest.mark.integration

TWO_ADDRESSES = [{**CLIENTS[0], "addresses": ["jane@acme.example", "accounts@acme.example"]}, CLIENTS[1]]


def text_of(mail) -> str:
    return mail.message.get_body(("plain",)).get_content()


# ---- delivery failures ----------------------------------------------------------------------------


async def test_a_bounced_request_is_undeliverable_the_owner_is_told_once_and_no_release(tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, clients=TWO_ADDRESSES)
    mids = seed_history(dovecot)
    raw, _ = mf.bounce("jane@acme.example", mids["acme1"], utc(2026, 10, 5, 10, 2), "bounce-1",
                       diagnostic="550 5.1.1 <jane@acme.example>: Recipient address rejected: User unknown")
    mf.deliver(dovecot, "INBOX", raw)
    async with RunningDaemon(config, START) as daemon:
        told = await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-bounce", "alice@example.com"), timeout=20,
                                     what="the owner told of the bounce")
        text = text_of(told[0])
        assert "jane@acme.example" in text and "User unknown" in text and "Signed form 1?" in text
        await daemon.advance(days=2)
        assert len(by_kind(smtp_sink, "owner-bounce")) == 1, "told once"
        assert not by_kind(smtp_sink, "review"), "two ignored requests, not three: no release draft"
        verdict = daemon.store.latest_verdicts()["acme"]
        assert verdict["state"] == "overdue" and verdict["ignored_count"] == 2, "the bounced request is not ignored"
        assert [hit["rule"] for hit in verdict["reasons"]].count("undeliverable") == 1
        assert "draft_release" not in verdict["ladder"]
        assert any("was not delivered to jane@acme.example" in line for line in verdict["explain"])


async def test_a_client_whose_every_address_bounced_is_unreachable_and_never_escalated(config, dovecot, smtp_sink):
    mids = seed_history(dovecot)
    raw, _ = mf.bounce("jane@acme.example", mids["acme1"], utc(2026, 10, 5, 10, 2), "bounce-all")
    mf.deliver(dovecot, "INBOX", raw)
    async with RunningDaemon(config, START) as daemon:
        told = await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-bounce", "alice@example.com"), timeout=20)
        assert "unreachable" in text_of(told[0])
        await daemon.wait_for(lambda: daemon.store.latest_verdicts().get("acme", {}).get("state") == "unreachable",
                              timeout=10, what="acme unreachable")
        await daemon.advance(days=30)
        assert not [m for m in smtp_sink.messages if m.message.get("X-Parting-Kind", "").startswith(("owner-n", "review"))]
        assert not daemon.store.drafts()
        assert daemon.store.latest_verdicts()["acme"]["ladder"] == []
    row = next(c for c in status(config, now=utc(2026, 12, 2))["clients"] if c["id"] == "acme")
    assert row["state"] == "unreachable"
    lines = explain(config, "acme", now=utc(2026, 12, 2))["explain"]
    assert any("every address of the client bounced" in line for line in lines)


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)
