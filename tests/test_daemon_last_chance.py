"""End to end through Dovecot and the SMTP sink (issue #17): the owner and the colleague approve,
then the colleague answers the latest email parting sent them (the last-chance notice) with
REJECT inside send_delay: nothing reaches the client, and the untouched draft of another client
still leaves, once."""

from __future__ import annotations

import mailfactory as mf
import pytest
from harness import RunningDaemon, utc, write_config
from test_daemon_review import START, by_kind, reply_to_review

pytestmark = pytest.mark.integration

OWNER, COLLEAGUE = "alice@example.com", "bob@example.com"


def seed_two_unresponsive_clients(dovecot) -> None:
    for client, address in (("acme", "jane@acme.example"), ("globex", "hank@globex.example")):
        for n, day in enumerate((5, 12, 19), start=1):
            raw, _ = mf.request(address, f"Signed form {n}?", utc(2026, 10, day, 10), f"{client}-req-{n}")
            mf.deliver(dovecot, "Sent", raw)


def about(sent, client_name: str) -> list:
    return [m for m in sent if client_name in str(m.message["Subject"])]


async def test_a_reject_to_the_last_chance_notice_stops_one_release_and_the_other_leaves_once(
        tmp_path, dovecot, smtp_sink):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink)
    seed_two_unresponsive_clients(dovecot)
    async with RunningDaemon(config, START) as daemon:
        for name in ("Acme", "Globex"):
            [review] = await daemon.wait_for(lambda n=name: about(by_kind(smtp_sink, "review", OWNER), n),
                                             timeout=20, what=f"the owner's review of {name}")
            await reply_to_review(daemon, dovecot, review, OWNER, "APPROVE", f"alice-{name}")
            [second] = await daemon.wait_for(lambda n=name: about(by_kind(smtp_sink, "review", COLLEAGUE), n),
                                             timeout=10, what=f"the colleague's review of {name}")
            await reply_to_review(daemon, dovecot, second, COLLEAGUE, "APPROVE", f"bob-{name}")
        notices = await daemon.wait_for(lambda: about(by_kind(smtp_sink, "last-chance", COLLEAGUE), "Acme"),
                                        timeout=10, what="the last-chance notice to the colleague")
        latest = about([m for m in smtp_sink.messages if COLLEAGUE in m.rcpt_tos], "Acme")[-1]
        assert latest.message["Message-ID"] == notices[-1].message["Message-ID"]
        assert "STOP" in latest.message.get_body(("plain",)).get_content()
        await daemon.advance(minutes=4)
        await reply_to_review(daemon, dovecot, latest, COLLEAGUE, "REJECT she called: all is well", "bob-no")
        await daemon.wait_for(lambda: any(d.state == "rejected" for d in daemon.store.drafts()), timeout=10,
                              what="the acme draft rejected")
        await daemon.advance(minutes=11)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the globex release")
        await daemon.advance(hours=1)
        releases = by_kind(smtp_sink, "release")
        assert [m.rcpt_tos[0] for m in releases] == ["hank@globex.example"]
        assert not any("jane@acme.example" in m.rcpt_tos for m in smtp_sink.messages)
