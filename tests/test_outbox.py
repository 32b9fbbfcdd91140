"""The outbox against the SMTP sink and Dovecot: once, threaded, filed in Sent; faults at the final
"." lead to retry, failed (owner told) or uncertain, never to two copies; the hourly limit, dry
run, append_to_sent and header injection. The daemon runs in-process on a ManualClock."""

from __future__ import annotations

import base64
from datetime import timedelta
from email import message_from_bytes
from email.policy import default
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import SimpleNamespace

import mailfactory as mf
import pytest
import yaml
from harness import CLIENTS, START, RunningDaemon, by_kind, reply_to_review, seed_history, write_config

from daemon.adapters.templates import TemplateProblem
from daemon.core.outgoing import HeaderInjection, build_message
from daemon.flows.context import queue_mail
from daemon.flows.sending import restamped, retry_delay
from daemon.runtime.service import open_context

pytestmark = pytest.mark.integration

OWNER, COLLEAGUE, CLIENT = "alice@example.com", "bob@example.com", "jane@acme.example"
EVIL = "evil@attacker.example"
# Stands in for Dovecot and the sink where a test needs settings but no server.
NO_SERVER = SimpleNamespace(user="office@example.com", password="x", port=1)


def edit_config(config: Path, change) -> Path:
    tree = yaml.safe_load(config.read_text())
    change(tree)
    config.write_text(yaml.safe_dump(tree, sort_keys=False))
    return config


def sent_folder(dovecot) -> list:
    return [message_from_bytes(raw, policy=default) for raw in dovecot.fetch_all("Sent")]


def ours(messages) -> list:
    return [m for m in messages if m.get("X-Parting-Kind")]


def release_row(daemon, states=("queued",)):
    return next((r for r in daemon.store.rows(list(states)) if r.kind == "release"), None)


def deferred(daemon, row_id: int, *, attempts: int):
    """The row once it is back in the queue after its `attempts`-th try (not while that try runs)."""
    row = daemon.store.row(row_id)
    return row if row.state == "queued" and row.attempts == attempts else None


def notices(sink) -> list:
    return by_kind(sink, "send-failed", OWNER)


async def approve_release(daemon, dovecot, sink):
    """The owner and the colleague approve; returns the release's queued outbox row."""
    owner_review = await daemon.wait_for(lambda: by_kind(sink, "review", OWNER), timeout=20,
                                         what="the owner's review email")
    await reply_to_review(daemon, dovecot, owner_review[0], OWNER, "APPROVE", "alice-approve")
    colleague = await daemon.wait_for(lambda: by_kind(sink, "review", COLLEAGUE), timeout=10,
                                      what="the colleague's review email")
    await reply_to_review(daemon, dovecot, colleague[0], COLLEAGUE, "APPROVE", "bob-approve")
    row = await daemon.wait_for(lambda: release_row(daemon), timeout=10, what="the release in the outbox")
    await daemon.settle()  # whatever else the decision queued has left: a fault set now hits the release
    return row


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


# ---------------------------------------------------------------------------- the good path


async def test_an_approved_release_arrives_once_threaded_dated_when_sent_and_filed_in_sent(config, dovecot, smtp_sink):
    mids = seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        queued = await approve_release(daemon, dovecot, smtp_sink)
        assert queued.not_before == START + timedelta(minutes=10)
        await daemon.advance(minutes=9)
        assert not by_kind(smtp_sink, "release"), "send_delay holds the release"
        await daemon.advance(minutes=2)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the release")
        await daemon.advance(hours=3)

        [release] = by_kind(smtp_sink, "release")
        message = release.message
        assert sorted(release.rcpt_tos) == sorted([CLIENT, OWNER])
        assert message["Message-ID"] == f"<{queued.message_id}>"
        assert message["In-Reply-To"] == mids["acme3"], "threads under the last message to the client"
        assert mids["acme3"] in message["References"].split()
        assert message["Subject"] == "Re: Signed form 3?"
        assert parsedate_to_datetime(message["Date"]) == START + timedelta(minutes=11), "dated when it left"
        row = daemon.store.row(queued.id)
        assert row.state == "sent" and row.attempts == 1 and row.server_reply.startswith("250")
        filed = [raw for raw in dovecot.fetch_all("Sent") if f"<{queued.message_id}>".encode() in raw]
        assert filed == [release.data], "one copy in Sent, the very bytes the server accepted"
        assert daemon.store.draft(row.draft_id).state == "sent"
        assert {d.kind for d in daemon.store.deadlines(["open"])} == {"phone_call", "retrospective"}
        assert not notices(smtp_sink)


# ---------------------------------------------------------------------------- faults at the final "."


@pytest.mark.parametrize("reply", ["421 4.7.0 Closing, try again later", "451 4.3.0 Local problem, try later"])
async def test_a_temporary_refusal_is_retried_once_the_clock_passes_the_backoff(config, dovecot, smtp_sink, reply):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        queued = await approve_release(daemon, dovecot, smtp_sink)
        smtp_sink.reply_with(reply)
        await daemon.advance(minutes=11)
        row = await daemon.wait_for(lambda: deferred(daemon, queued.id, attempts=1), what="the deferred release")
        first_try = START + timedelta(minutes=11)
        assert row.next_attempt_at == first_try + retry_delay(1) == first_try + timedelta(minutes=1)
        assert reply[:3] in row.last_error
        await daemon.advance(seconds=50)
        assert daemon.store.row(queued.id).state == "queued", "not before next_attempt_at"
        assert not by_kind(smtp_sink, "release")

        await daemon.advance(seconds=15)
        await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the retried release")
        await daemon.advance(hours=1)
        assert len(by_kind(smtp_sink, "release")) == 1
        row = daemon.store.row(queued.id)
        assert row.state == "sent" and row.attempts == 2
        [deferral] = daemon.store.events(kinds=["send_deferred"])
        assert deferral.data["outbox_id"] == queued.id and reply[:3] in deferral.data["reason"]
        assert deferral.data["next_attempt_at"] == (first_try + timedelta(minutes=1)).isoformat()
        assert not notices(smtp_sink), "a retry that succeeds bothers nobody"


async def test_temporary_refusals_up_to_max_attempts_end_failed_and_the_owner_is_told(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:  # write_config sets smtp.max_attempts: 3
        queued = await approve_release(daemon, dovecot, smtp_sink)
        smtp_sink.reply_with("451 4.3.0 Try later", times=3)
        await daemon.advance(minutes=11)
        await daemon.wait_for(lambda: deferred(daemon, queued.id, attempts=1), what="attempt 1 deferred")
        await daemon.advance(minutes=1, seconds=1)
        second = await daemon.wait_for(lambda: deferred(daemon, queued.id, attempts=2), what="attempt 2 deferred")
        assert second.next_attempt_at == START + timedelta(minutes=12, seconds=1) + timedelta(minutes=2)
        await daemon.advance(minutes=2, seconds=1)
        failed = await daemon.wait_for(lambda: daemon.store.row(queued.id).state == "failed"
                                       and daemon.store.row(queued.id), what="the release failed")
        [notice] = await daemon.wait_for(lambda: notices(smtp_sink), timeout=10, what="the owner told")
        await daemon.advance(days=2)

        assert failed.attempts == 3 and "after 3 attempts" in failed.last_error
        assert not by_kind(smtp_sink, "release")
        assert notice.message["Subject"] == "Not sent: Re: Signed form 3?"
        body = notice.message.get_body(("plain",)).get_content()
        assert "451" in body and f"parting outbox resend {queued.id}" in body
        assert daemon.store.row(queued.id).state == "failed", "nothing is retried after failed"


async def test_a_permanent_refusal_fails_at_once_and_the_owner_is_told(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        queued = await approve_release(daemon, dovecot, smtp_sink)
        smtp_sink.reply_with("550 5.7.1 Message refused by policy")
        await daemon.advance(minutes=11)
        [notice] = await daemon.wait_for(lambda: notices(smtp_sink), timeout=10, what="the owner told")
        await daemon.advance(days=1)

        row = daemon.store.row(queued.id)
        assert row.state == "failed" and row.attempts == 1 and "550" in row.last_error
        assert not by_kind(smtp_sink, "release")
        assert "550 5.7.1" in notice.message.get_body(("plain",)).get_content()
        [event] = daemon.store.events(kinds=["send_failed"])
        assert event.data["outbox_id"] == queued.id
        assert daemon.store.draft(row.draft_id).state == "sendable", "no follow-up for a mail that never left"


async def test_a_connection_dropped_after_the_final_dot_is_uncertain_and_never_sent_twice(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        queued = await approve_release(daemon, dovecot, smtp_sink)
        smtp_sink.drop_after_data()
        await daemon.advance(minutes=11)
        [notice] = await daemon.wait_for(lambda: notices(smtp_sink), timeout=10, what="the owner told")
        await daemon.advance(days=2)

        assert len(by_kind(smtp_sink, "release")) == 1, "the server kept it; it is never sent again by itself"
        row = daemon.store.row(queued.id)
        assert row.state == "uncertain" and row.attempts == 1
        assert notice.message["Subject"] == "Perhaps not sent: Re: Signed form 3?"
        assert daemon.store.events(kinds=["send_uncertain"])


async def test_a_server_that_never_answers_the_final_dot_leaves_the_row_uncertain(config, dovecot, smtp_sink):
    edit_config(config, lambda tree: tree["mailbox"]["smtp"]["timeouts"].update(data="1 second"))
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        queued = await approve_release(daemon, dovecot, smtp_sink)
        smtp_sink.stall(3)
        await daemon.advance(minutes=11)
        [notice] = await daemon.wait_for(lambda: notices(smtp_sink), timeout=15, what="the owner told")
        await daemon.advance(days=1)

        row = daemon.store.row(queued.id)
        assert row.state == "uncertain" and row.attempts == 1
        assert "no reply within 1 s" in daemon.store.events(kinds=["send_uncertain"])[0].data["reason"]
        assert not by_kind(smtp_sink, "release")
        assert "will not try again" in notice.message.get_body(("plain",)).get_content()


async def test_a_review_email_that_cannot_be_delivered_tells_the_owner(config, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        owner_review = await daemon.wait_for(lambda: by_kind(smtp_sink, "review", OWNER), timeout=20)
        smtp_sink.reply_with("550 5.1.1 bob: no such mailbox")
        await reply_to_review(daemon, dovecot, owner_review[0], OWNER, "APPROVE", "alice-approve")
        [notice] = await daemon.wait_for(lambda: notices(smtp_sink), timeout=10, what="the owner told")

        [review] = [r for r in daemon.store.rows() if r.kind == "review" and COLLEAGUE in r.recipients]
        assert review.state == "failed"
        assert not by_kind(smtp_sink, "review", COLLEAGUE)
        body = notice.message.get_body(("plain",)).get_content()
        assert COLLEAGUE in body and "review" in body and "550 5.1.1" in body


# ---------------------------------------------------------------------------- limits and modes


async def test_the_hourly_limit_holds_the_rest_and_sends_them_the_next_hour(config, dovecot, smtp_sink):
    edit_config(config, lambda tree: tree["mailbox"]["smtp"].update(max_per_hour=2))
    seed_history(dovecot)  # three messages fall due at once: two notices and the owner's review
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: len(daemon.store.rows()) == 3 and len(smtp_sink.messages) == 2, timeout=20,
                              what="two of three sent")
        await daemon.advance(minutes=59)
        assert len(smtp_sink.messages) == 2
        [held] = daemon.store.rows(["queued"])
        await daemon.advance(minutes=2)
        await daemon.wait_for(lambda: len(smtp_sink.messages) == 3, timeout=10, what="the held message")
        assert daemon.store.row(held.id).state == "sent"
        assert {r.state for r in daemon.store.rows()} == {"sent"}


async def test_dry_run_writes_every_message_as_eml_and_sends_nothing(config, dovecot, smtp_sink, tmp_path):
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    edit_config(config, lambda tree: tree.update(mode="dry_run", dry_run={"folder": str(outgoing)}))
    seed_history(dovecot)

    def written(kind: str, to: str) -> list[bytes]:
        raws = [p.read_bytes() for p in sorted(outgoing.glob("*.eml"))] if outgoing.exists() else []
        return [r for r in raws if message_from_bytes(r, policy=default)["X-Parting-Kind"] == kind
                and to in str(message_from_bytes(r, policy=default)["To"])]

    def review_of(raw: bytes):
        return SimpleNamespace(data=raw)

    async with RunningDaemon(config, START) as daemon:
        [owner_review] = await daemon.wait_for(lambda: written("review", OWNER), timeout=20, what="the review .eml")
        await reply_to_review(daemon, dovecot, review_of(owner_review), OWNER, "APPROVE", "alice-approve")
        [colleague] = await daemon.wait_for(lambda: written("review", COLLEAGUE), timeout=10, what="the colleague's")
        await reply_to_review(daemon, dovecot, review_of(colleague), COLLEAGUE, "APPROVE", "bob-approve")
        await daemon.wait_for(lambda: release_row(daemon), timeout=10, what="the release in the outbox")
        await daemon.advance(minutes=11)
        [release] = await daemon.wait_for(lambda: written("release", CLIENT), timeout=10, what="the release .eml")

        sent_release = release_row(daemon, ["sent"])
        assert message_from_bytes(release, policy=default)["Message-ID"] == f"<{sent_release.message_id}>"
        assert smtp_sink.messages == [], "nothing reaches an SMTP server in dry run"
        assert not ours(sent_folder(dovecot)), "nothing is filed in Sent either"
        rows = daemon.store.rows()
        assert {r.state for r in rows} == {"sent"}
        assert all("dry run: written to" in r.server_reply for r in rows)
        assert len(list(outgoing.glob("*.eml"))) == len(rows)


async def test_append_to_sent_false_files_nothing_in_sent(config, dovecot, smtp_sink):
    edit_config(config, lambda tree: tree["mailbox"].update(append_to_sent=False))
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: len(smtp_sink.messages) == 3, timeout=20, what="the first three messages")
        await daemon.settle()
        assert {r.state for r in daemon.store.rows()} == {"sent"}
    assert not ours(sent_folder(dovecot))
    assert len(sent_folder(dovecot)) == 4, "the seeded history only"


# ---------------------------------------------------------------------------- headers


def test_restamping_the_date_changes_that_line_and_nothing_else():
    raw = build_message(from_addr="office@example.com", from_name="Alice Smith (Example Ltd)", to=[CLIENT],
                        subject="Re: Très long sujet " * 8, body="Grüße\n" + "x" * 1200 + "\n.dot\n",
                        message_id="<parting.release.1@example.com>", date=START, auto_submitted=False,
                        in_reply_to="<a@b.example>", references=["<r@b.example>", "<a@b.example>"], kind="release")
    later = START + timedelta(days=3, minutes=7)
    fresh = restamped(raw, later)
    changed = [(a, b) for a, b in zip(raw.split(b"\r\n"), fresh.split(b"\r\n")) if a != b]
    assert len(fresh.split(b"\r\n")) == len(raw.split(b"\r\n"))
    assert [b for _, b in changed] == [b"Date: Thu, 05 Nov 2026 10:07:00 +0000"]
    assert restamped(b"not a message at all", later) == b"not a message at all"


async def test_a_client_name_with_a_line_break_is_refused_before_anything_is_sent(tmp_path, dovecot, smtp_sink):
    from daemon.adapters.settings.load import SettingsError

    acme = {**CLIENTS[0], "name": f"Acme Ltd\r\nBcc: {EVIL}"}
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, clients=[acme, CLIENTS[1]])
    seed_history(dovecot)
    with pytest.raises(SettingsError, match=r"config.yaml:\d+: clients\[0\].name: cannot go into an email header"):
        async with RunningDaemon(config, START):
            pass
    assert smtp_sink.messages == []


async def test_an_encoded_newline_in_a_template_variable_is_refused_and_nothing_is_sent(tmp_path, dovecot, smtp_sink):
    """Values the config does not check for headers (a phone number) can still reach one through a
    user's template: the mail is refused when it is built, recorded once, and nothing leaves."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "release.txt.j2").write_text("Subject: Please call {{ client.phone }}\n\nDear {{ person.name }},\n\nGoodbye.\n")
    acme = {**CLIENTS[0], "phone": "=?utf-8?q?0800=0D=0ABcc:_evil@attacker.example?="}
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, clients=[acme, CLIENTS[1]],
                          extra={"templates": {"dir": str(templates)}})
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        [refused] = await daemon.wait_for(lambda: daemon.store.events(kinds=["mail_refused"]), timeout=20,
                                          what="the release draft refused")
        await daemon.advance(days=1)
        assert refused.data["action"] == "draft_release"
        assert "encoded word" in refused.data["reason"] and "CR" in refused.data["reason"]
        assert daemon.store.drafts() == []
        assert len(daemon.store.events(kinds=["mail_refused"])) == 1, "recorded once, not at every tick"
        assert not by_kind(smtp_sink, "review") and not by_kind(smtp_sink, "release")
        assert all(EVIL not in m.rcpt_tos and "Bcc" not in m.message for m in smtp_sink.messages)


async def test_a_subject_with_an_encoded_line_break_cannot_add_a_header_to_the_release(config, dovecot, smtp_sink):
    evil_subject = "=?utf-8?b?" + base64.b64encode(f"Signed form 3?\u2028Bcc: {EVIL}".encode()).decode() + "?="
    for n, day in enumerate((5, 12, 19), start=1):
        raw, _ = mf.request(CLIENT, f"Signed form {n}?", START.replace(month=10, day=day), f"acme-req-{n}")
        if n == 3:
            raw = raw.replace(b"Subject: Signed form 3?", b"Subject: " + evil_subject.encode())
        mf.deliver(dovecot, "Sent", raw)
    async with RunningDaemon(config, START) as daemon:
        await approve_release(daemon, dovecot, smtp_sink)
        await daemon.advance(minutes=11)
        [release] = await daemon.wait_for(lambda: by_kind(smtp_sink, "release"), timeout=10, what="the release")
        assert sorted(release.rcpt_tos) == sorted([CLIENT, OWNER])
        assert "Bcc" not in release.message and EVIL not in str(release.message["To"])
        subject_lines = [line for line in release.data.split(b"\r\n\r\n")[0].split(b"\r\n")
                         if line.lower().startswith(b"subject:")]
        assert len(subject_lines) == 1 and b"\xe2\x80\xa8" not in release.data


def test_queue_mail_refuses_header_injection_and_queues_nothing(tmp_path):
    ctx = open_context(write_config(tmp_path, NO_SERVER, NO_SERVER))
    try:
        owner = ctx.settings.person("alice")
        base = dict(kind="owner-notice", template="send_failed.txt.j2", to=[owner.email], now=START)
        message = {"id": 1, "kind": "release", "to": CLIENT, "status": "failed", "reason": "x", "attempts": 1}
        context = {"company": {"name": "Example Ltd"}, "client": None, "owner": None, "person": {"name": "Alice"}}
        with pytest.raises(TemplateProblem, match="Subject"):
            queue_mail(ctx, key="a", context={**context, "message": {**message, "subject": "Hi\r\nBcc: " + EVIL}},
                       **base)
        with pytest.raises(HeaderInjection, match="From"):
            queue_mail(ctx, key="b", context={**context, "message": {**message, "subject": "Hi"}},
                       from_name="Example =?utf-8?q?Ltd=0ABcc:_x@y.example?=", **base)
        with pytest.raises(HeaderInjection, match="contains CR"):
            queue_mail(ctx, key="c", context={**context, "message": {**message, "subject": "Hi"}},
                       in_reply_to="<a@b>\r\nBcc: " + EVIL, **base)
        assert ctx.store.rows() == []
    finally:
        ctx.store.close()
