"""The practice's other paths, end to end through Dovecot and the SMTP sink on a ManualClock:
delivery failures, answers outside email, triage, a new owner."""

from __future__ import annotations

import json

import mailfactory as mf
import pytest
from click.testing import CliRunner
from harness import CLIENTS, RunningDaemon, utc, write_config
from test_daemon_review import START, by_kind, reply_to_review, seed_history

from daemon.cli import cli
from daemon.queries.casefile.build import build_casefile
from daemon.queries.explain import explain
from daemon.queries.status import status
from daemon.runtime.clock import write_clock_file

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


# ---- answers outside email ------------------------------------------------------------------------


def seed_two_ignored(dovecot) -> dict[str, str]:
    """acme ignores two requests: the owner is nudged and notified, no release is drafted."""
    mids = {}
    for n, day in enumerate((19, 26), start=1):
        raw, mids[f"acme{n}"] = mf.request("jane@acme.example", f"Signed form {n}?", utc(2026, 10, day, 10),
                                           f"acme-two-{n}")
        mf.deliver(dovecot, "Sent", raw)
    return mids


def acme_verdict(daemon) -> dict:
    return daemon.store.latest_verdicts().get("acme", {})


async def test_answered_by_reply_to_an_owner_notice_is_the_client_s_answer(config, dovecot, smtp_sink):
    seed_two_ignored(dovecot)
    async with RunningDaemon(config, START) as daemon:
        notice = (await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-notify_owner", "alice@example.com"),
                                        timeout=20, what="the owner notice"))[0]
        assert "ANSWERED" in text_of(notice) and "+r-" in str(notice.message["Reply-To"])
        assert acme_verdict(daemon)["state"] == "overdue"
        await reply_to_review(daemon, dovecot, notice, "bob@example.com", "ANSWERED by phone: all fine", "bob-ans")
        await daemon.wait_for(lambda: [e for e in daemon.store.events(kinds=["reply_refused"])
                                       if e.data["code"] == "wrong_sender"], timeout=10, what="bob refused")
        await reply_to_review(daemon, dovecot, notice, "alice@example.com",
                              "ANSWERED by phone: Jane will send both forms on Friday.", "alice-ans")
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "active", timeout=10,
                              what="acme active again")
        verdict = acme_verdict(daemon)
        assert verdict["episode"].startswith("ep-recorded-") and verdict["ignored_count"] == 0
        recorded = daemon.store.recorded("acme")
        assert [(r.how, r.note, r.by) for r in recorded] == [("phone", "Jane will send both forms on Friday.",
                                                              "alice")]
        assert daemon.store.events(kinds=["answer_recorded"])
        notices = len([m for m in smtp_sink.messages if m.message.get("X-Parting-Kind", "").startswith("owner-")])
        await daemon.advance(days=2)
        assert len([m for m in smtp_sink.messages
                    if m.message.get("X-Parting-Kind", "").startswith("owner-")]) == notices, "no new notice"
        casefile = build_casefile(daemon.store, daemon.service.ctx.settings, "acme", now=daemon.clock.now())
    lines = explain(config, "acme", now=utc(2026, 11, 4, 12))["explain"]
    assert any("answered by phone" in line and "recorded by alice" in line and "Friday" in line for line in lines)
    assert any("the client answered by phone" in entry["detail"] for entry in casefile["timeline"])


async def test_answered_from_the_command_line_starts_a_new_episode(config, dovecot, smtp_sink, monkeypatch):
    seed_two_ignored(dovecot)
    clock_file = config.parent / "clock"
    monkeypatch.setenv("USER", "alice")
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "overdue", timeout=20)
        write_clock_file(clock_file, daemon.clock.now())
        result = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "answered", "acme", "--by", "meeting", "--note", "Met Jane at the fair",
                                          "--at", "2026-11-02 09:30", "--json", "--config", str(config)])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert (data["how"], data["by"], data["at"]) == ("meeting", "alice", "2026-11-02T09:30:00+00:00")
        await daemon.advance(minutes=1)
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "active", timeout=10,
                              what="acme judged again from the recorded answer")
        assert acme_verdict(daemon)["episode"] == data["episode"]
        future = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "answered", "acme", "--by", "phone", "--note", "x", "--at",
                                          "2030-01-01 10:00", "--config", str(config)])
        assert future.exit_code != 0 and "after now" in future.output
        assert len(daemon.store.recorded("acme")) == 1, "a refused answer records nothing"


# ---- triage ---------------------------------------------------------------------------------------


def seed_reply_from_a_private_address(dovecot, mids: dict[str, str], sender: str = "jane.doe@gmail.example",
                                      tag: str = "private") -> str:
    """Jane answers request 2 from her private address, which parting does not know: triage."""
    raw, mid = mf.reply(sender, mids["acme2"], "Signed form 2?", utc(2026, 10, 30, 9), tag,
                        body="Sorry, writing from home: both forms are signed, I will post them.\n")
    mf.deliver(dovecot, "INBOX", raw)
    return mid


async def test_a_triaged_reply_assigned_by_the_owner_makes_the_client_active_again(config, dovecot, smtp_sink):
    mids = seed_two_ignored(dovecot)
    async with RunningDaemon(config, START) as daemon:
        # delivered once the Sent folder is read, so the reply's thread is known to be acme's
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "overdue", timeout=20)
        private = seed_reply_from_a_private_address(dovecot, mids)
        asked = (await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-triage", "alice@example.com"), timeout=20,
                                       what="the owner asked about the triaged message"))[0]
        text = text_of(asked)
        assert "jane.doe@gmail.example" in text and "ASSIGN acme" in text and "DISMISS" in text
        assert acme_verdict(daemon)["state"] == "overdue", "an unplaced reply is not the client's answer"
        await reply_to_review(daemon, dovecot, asked, "alice@example.com", "ASSIGN acme LEARN", "alice-assign")
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "active", timeout=10,
                              what="acme active again")
        assert acme_verdict(daemon)["episode"] == f"ep-{private.strip('<>')}"
        assert not daemon.store.triage(), "the item is closed"
        assert daemon.store.events(kinds=["triage_assigned"])[0].data["learned_address"] is True
        await daemon.advance(days=1)
        assert len(by_kind(smtp_sink, "owner-triage")) == 1, "one email per item"
        # from then on, mail from the learned address is acme's
        raw, later = mf.reply("jane.doe@gmail.example", mids["acme1"], "Signed form 1?", daemon.clock.now(),
                              "private-later")
        mf.deliver(dovecot, "INBOX", raw)
        await daemon.wait_for(lambda: (m := daemon.store.message(later.strip("<>"))) and m.client_id == "acme",
                              timeout=10, what="later mail classified as acme's")
    row = status(config, now=utc(2026, 11, 4))
    assert {"address": "jane.doe@gmail.example", "client": "acme"}.items() <= row["learned_addresses"][0].items()
    assert next(c for c in row["clients"] if c["id"] == "acme")["state"] == "active"


async def test_triage_from_the_command_line_lists_assigns_and_dismisses(config, dovecot, smtp_sink, monkeypatch):
    mids = seed_two_ignored(dovecot)
    clock_file = config.parent / "clock"
    monkeypatch.setenv("USER", "alice")
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "overdue", timeout=20)
        seed_reply_from_a_private_address(dovecot, mids)
        seed_reply_from_a_private_address(dovecot, mids, sender="someone@elsewhere.example", tag="stray")
        await daemon.wait_for(lambda: len(daemon.store.triage()) == 2, timeout=20, what="two triage items")
        write_clock_file(clock_file, daemon.clock.now())
        listing = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "triage", "--json", "--config", str(config)])
        assert listing.exit_code == 0, listing.output
        items = {item["from"]: item for item in json.loads(listing.stdout)["items"]}
        assert items["jane.doe@gmail.example"]["likely_client"] == "acme"
        home, stray = items["jane.doe@gmail.example"]["id"], items["someone@elsewhere.example"]["id"]
        assigned = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "triage", "assign", str(home), "acme", "--config", str(config)])
        assert assigned.exit_code == 0 and "assigned to acme" in assigned.output, assigned.output
        dismissed = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "triage", "dismiss", str(stray), "--note", "not about this client",
                                             "--config", str(config)])
        assert dismissed.exit_code == 0 and "dismissed by alice" in dismissed.output, dismissed.output
        again = CliRunner().invoke(cli, ["--clock-file", str(clock_file), "triage", "dismiss", str(stray), "--note", "x", "--config", str(config)])
        assert again.exit_code != 0 and "already closed" in again.output
        await daemon.advance(minutes=1)
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "active", timeout=10,
                              what="acme judged again")
        assert not daemon.store.triage() and not daemon.store.learned_addresses()


# ---- a new owner ----------------------------------------------------------------------------------


async def test_an_owner_change_on_reload_starts_a_new_episode_and_tells_the_new_owner(tmp_path, dovecot, smtp_sink):
    folder = tmp_path / "parting"
    config = write_config(folder, dovecot, smtp_sink)
    seed_two_ignored(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-notify_owner", "alice@example.com"), timeout=20)
        assert acme_verdict(daemon)["ignored_count"] == 2
        await daemon.advance(hours=1)
        assert not daemon.store.events(kinds=["owner_changed"]), "the first owners are only noted"
        write_config(folder, dovecot, smtp_sink, clients=[{**CLIENTS[0], "owner": "carol"}, CLIENTS[1]])
        await daemon.service._reload()
        told = await daemon.wait_for(lambda: by_kind(smtp_sink, "owner-changed", "carol@example.com"), timeout=10,
                                     what="the new owner told")
        text = text_of(told[0])
        assert "Alice Smith" in text and "Signed form 1?" in text and "Signed form 2?" in text
        await daemon.wait_for(lambda: acme_verdict(daemon).get("state") == "active", timeout=10,
                              what="a new episode for acme")
        verdict = acme_verdict(daemon)
        assert verdict["episode"].startswith("ep-recorded-") and verdict["ignored_count"] == 0
        assert any(hit["rule"] == "owner-changed" for hit in verdict["reasons"])
        event = daemon.store.events(kinds=["owner_changed"])[0]
        assert (event.data["old"], event.data["new"]) == ("alice", "carol")
        await daemon.advance(days=1)
        assert len(daemon.store.events(kinds=["owner_changed"])) == 1, "one change, one episode"
        casefile = build_casefile(daemon.store, daemon.service.ctx.settings, "acme", now=daemon.clock.now())
    assert any("owner changed from alice to carol" in entry["detail"] for entry in casefile["timeline"])
    lines = explain(config, "acme", now=utc(2026, 11, 4))["explain"]
    assert any("owner changed from alice to carol" in line for line in lines)
