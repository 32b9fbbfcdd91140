"""Spoofed approvals against the daemon as a subprocess: every attack of the review issue
(tests/test_daemon_review_attacks.py), then a flood of 1,000 forged replies in one MULTIAPPEND.
None is accepted; each is logged in `events` as reply_refused with the code of the check that
stopped it; nobody unauthenticated is answered; and the genuine approvals that follow still work,
so exactly one release leaves.
"""

from __future__ import annotations

import secrets
import subprocess
from datetime import timedelta
from email import message_from_bytes
from email.policy import SMTP

import mailfactory as mf
import pytest
from faultkit import DaemonProcess, by_kind, wait_until
from harness import CLIENTS, START, daemon_command, seed_history, write_config

pytestmark = pytest.mark.integration

OWNER, COLLEAGUE, THIRD = "alice@example.com", "bob@example.com", "carol@example.com"
FLOOD = 1000
FAIL = (f"{mf.AUTHSERV}; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com;"
        " dmarc=fail header.from=example.com")
SOFTFAIL = f"{mf.AUTHSERV}; dkim=none; spf=softfail smtp.mailfrom=example.com; dmarc=fail header.from=example.com"


def tampered(review, *, mac: bool = False, token_id: bool = False) -> str:
    """The review's token address with its MAC changed, or with a token id nobody issued."""
    address = str(message_from_bytes(review.data)["Reply-To"])
    local, _, domain = address.partition("@")
    head, _, token = local.partition("+r-")
    ident, _, code = token.partition("-")
    if mac:
        code = code[:-1] + ("a" if code[-1] != "a" else "b")
    if token_id:
        ident = secrets.token_hex(8)
    return f"{head}+r-{ident}-{code}@{domain}"


def not_a_reply(raw: bytes) -> bytes:
    message = message_from_bytes(raw, policy=SMTP)
    del message["In-Reply-To"]
    del message["References"]
    return message.as_bytes()


def attack(name: str, review, text: str = "APPROVE", **kw):
    """(name, raw, Message-ID) of one forged reply to `review`."""
    sender = kw.pop("sender", OWNER)
    strip = kw.pop("strip_thread", False)
    raw, message_id = mf.staff_reply(sender, review.data, text, START, f"attack-{name}", **kw)
    return name, not_a_reply(raw) if strip else raw, message_id.strip("<>")


ANSWERABLE = {"only-quotes-approve", "replayed", "version-1-after-edit", "expired"}
FLOOD_VARIANTS = [  # (expected code, how) for the i-th forged reply, round robin
    ("not_authenticated", dict(auth=None)),
    ("not_authenticated", dict(auth=FAIL)),
    ("not_authenticated", dict(auth=mf.auth_results("example.com", authserv="mx.attacker.example"))),
    ("not_authenticated", dict(auth=SOFTFAIL, extra_auth_below=mf.auth_results("example.com"))),
    ("wrong_sender", dict(sender=COLLEAGUE)),
    ("forged_token", dict(mac=True)),
    ("unknown_token", dict(token_id=True)),
    ("auto_reply", dict(headers={"Auto-Submitted": "auto-replied"})),
    ("not_a_reply", dict(auth=None, strip_thread=True)),
]
FLOOD_TEXTS = ["APPROVE", "approve", "EDIT\nDear Jane,\n\nPay the invoice to IBAN XX00 0000.\n", "REJECT", "HOLD 30"]


def forged(review, n: int) -> tuple[str, bytes, str, str]:
    """The n-th reply of the flood: (expected code, raw, Message-ID, variant)."""
    code, how = FLOOD_VARIANTS[n % len(FLOOD_VARIANTS)]
    how = dict(how)
    if how.pop("mac", False) or how.pop("token_id", False):
        how["to"] = tampered(review, mac=code == "forged_token", token_id=code == "unknown_token")
    _, raw, message_id = attack(f"flood-{n}", review, FLOOD_TEXTS[n % len(FLOOD_TEXTS)], **how)
    return code, raw, message_id, f"{code} #{n % len(FLOOD_VARIANTS)}"


def refusals(daemon: DaemonProcess) -> dict[str, dict]:
    return {mid: event["data"] for event in daemon.events("reply_refused") for mid in event["message_ids"]}


def deliver_all(dovecot, attacks) -> None:
    dovecot.append_many("INBOX", [raw for _, raw, _ in attacks])


def expect_refused(daemon: DaemonProcess, expected: dict[str, tuple[str, ...]], what: str, timeout: float = 30) -> None:
    wait_until(lambda: set(expected) <= set(refusals(daemon)), what, daemon, timeout=timeout)
    got = refusals(daemon)
    wrong = {mid: (got[mid]["code"], codes) for mid, codes in expected.items() if got[mid]["code"] not in codes}
    assert not wrong, f"refused for other reasons than expected: {wrong}"
    assert all(got[mid]["reason"] for mid in expected), "every refusal says why"


def review_for(sink, person: str, n: int = 0):
    return [m for m in by_kind(sink, "review", person) if "Reminder:" not in str(m.message["Subject"])][n]


def test_every_spoofed_approval_is_refused_and_logged_and_the_genuine_one_still_works(
        tmp_path, dovecot, smtp_sink, record):
    seed_history(dovecot)
    daemon = DaemonProcess(write_config(tmp_path / "parting", dovecot, smtp_sink), tmp_path, START)
    daemon.start()
    try:
        owner_v1 = wait_until(lambda: by_kind(smtp_sink, "review", OWNER), "the owner's review", daemon)[0]
        named = [
            attack("no-auth", owner_v1, auth=None),
            attack("dmarc-fail", owner_v1, auth=FAIL),
            attack("forged-pass-below", owner_v1, auth=SOFTFAIL, extra_auth_below=mf.auth_results("example.com")),
            attack("other-authserv", owner_v1, auth=mf.auth_results("example.com", authserv="mx.attacker.example")),
            attack("third-party", owner_v1, sender=THIRD),
            attack("out-of-office", owner_v1, "I am away until Monday.\nAPPROVE",
                   headers={"Auto-Submitted": "auto-replied"}),
            attack("only-quotes-approve", owner_v1, "I will read it tonight."),
            attack("forged-mac", owner_v1, to=tampered(owner_v1, mac=True)),
            attack("unknown-token", owner_v1, to=tampered(owner_v1, token_id=True)),
            attack("not-a-reply", owner_v1, auth=None, strip_thread=True),
        ]
        codes = ["not_authenticated"] * 4 + ["wrong_sender", "auto_reply", "unknown_command", "forged_token",
                                             "unknown_token", "not_a_reply"]
        expected = {mid: (code,) for (_, _, mid), code in zip(named, codes)}
        deliver_all(dovecot, named)
        expect_refused(daemon, expected, "the first attacks refused")

        flood = [forged(owner_v1, n) for n in range(FLOOD)]
        dovecot.append_many("INBOX", [raw for _, raw, _, _ in flood])  # one MULTIAPPEND
        expect_refused(daemon, {mid: (code,) for code, _, mid, _ in flood}, "the flood refused", timeout=180)
        assert daemon.query("SELECT state FROM drafts") == [("owner_review",)], "the flood changed nothing"

        genuine = attack("alice-approves", owner_v1)  # the real owner, at last
        deliver_all(dovecot, [genuine])
        colleague_v1 = wait_until(lambda: by_kind(smtp_sink, "review", COLLEAGUE), "the colleague's review", daemon)[0]
        later = [
            attack("replayed", owner_v1),
            attack("owner-as-colleague", colleague_v1, sender=OWNER),
        ]
        deliver_all(dovecot, later)
        expect_refused(daemon, {later[0][2]: ("replayed",), later[1][2]: ("wrong_sender",)}, "replay and impostor")
        named += later
        deliver_all(dovecot, [attack("bob-edits", colleague_v1, "EDIT\nDear Jane,\n\nWe part as friends.\n\nAlice",
                                     sender=COLLEAGUE)])
        owner_v2 = wait_until(lambda: len(by_kind(smtp_sink, "review", OWNER)) > 1 and review_for(smtp_sink, OWNER, 1),
                              "version 2 back to the owner", daemon)
        stale = attack("version-1-after-edit", owner_v1)
        deliver_all(dovecot, [stale])
        expect_refused(daemon, {stale[2]: ("superseded", "replayed")}, "a version 1 token after the edit")
        named.append(stale)

        deliver_all(dovecot, [attack("alice-approves-v2", owner_v2)])
        wait_until(lambda: daemon.query("SELECT state FROM drafts") == [("sendable",)], "the draft sendable", daemon)
        daemon.set_clock(START + timedelta(minutes=11))
        wait_until(lambda: by_kind(smtp_sink, "release"), "the release", daemon)
        # the clock moves on only once the send is recorded: the deadlines count from that moment
        wait_until(lambda: daemon.scalar("SELECT count(*) FROM deadlines") == 2, "the follow-up deadlines", daemon)

        daemon.set_clock(START + timedelta(hours=25))
        reminder = wait_until(lambda: by_kind(smtp_sink, "reminder-phone_call", OWNER), "the call reminder", daemon)[0]
        daemon.set_clock(START + timedelta(hours=25 + 73))  # the reminder's token has expired
        expired = attack("expired", reminder, "DONE called")
        deliver_all(dovecot, [expired])
        expect_refused(daemon, {expired[2]: ("expired",)}, "an expired token")
        named.append(expired)
        daemon.stop()
    finally:
        daemon.kill()

    forged_ids = {mid for _, _, mid in named} | {mid for _, _, mid, _ in flood}
    outcomes = dict(daemon.query("SELECT message_id, outcome FROM processed_replies"))
    accepted_named = [name for name, _, mid in named if outcomes.get(mid, "").startswith("accepted")]
    accepted_flood = [variant for _, _, mid, variant in flood if outcomes.get(mid, "").startswith("accepted")]
    answered = {str(m.message.get("In-Reply-To", "")).strip("<> ") for m in by_kind(smtp_sink, "refusal")}
    # Only Alice herself, authenticated, holding her own genuine token, may be told why she was refused.
    impostors = {mid for name, _, mid in named if name not in ANSWERABLE} | {mid for _, _, mid, _ in flood}
    record("spoofing", "review attacks (live daemon)", len(named), forgeries_accepted=len(accepted_named),
           notes=f"codes: {', '.join(sorted({refusals_code(daemon, mid) for _, _, mid in named}))}")
    record("spoofing", "forged replies (one MULTIAPPEND)", len(flood), forgeries_accepted=len(accepted_flood),
           losses=len({mid for _, _, mid, _ in flood} - set(outcomes)),
           notes=f"{len(FLOOD_VARIANTS)} variants; then genuine approvals: 1 release")
    assert not accepted_named and not accepted_flood
    assert forged_ids <= set(outcomes), "every forged reply was judged"
    assert not answered & impostors, "no forger is answered"
    assert len(by_kind(smtp_sink, "release")) == 1
    endorsements = daemon.query("SELECT version, person, how FROM endorsements ORDER BY version, person")
    assert endorsements == [(1, "alice", "approved"), (2, "alice", "approved"), (2, "bob", "wrote")]


def refusals_code(daemon: DaemonProcess, message_id: str) -> str:
    return refusals(daemon)[message_id]["code"]


def test_a_client_name_that_would_inject_a_header_stops_the_daemon_before_any_mail(tmp_path, dovecot, smtp_sink,
                                                                                 record):
    evil = [{**CLIENTS[0], "name": "Acme =?UTF-8?Q?Ltd=0ABcc:_attacker@evil.example?="}, CLIENTS[1]]
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, clients=evil)
    seed_history(dovecot)
    out = subprocess.run(daemon_command(config), capture_output=True, text=True, timeout=60,
                         env=DaemonProcess(config, tmp_path, START).env)
    record("spoofing", "header injection through the config", 1, notes=f"exit {out.returncode}, nothing sent")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "clients[0].name: cannot go into an email header" in out.stderr
    assert smtp_sink.messages == []
