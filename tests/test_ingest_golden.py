"""Ingest stays equivalent: a fixed, varied mailbox read through the real path (a real Dovecot,
`parting run --once` as the Service runs it, a fixed clock) must store exactly the rows and
verdicts recorded in tests/data/ingest_golden.json.

Every column ingest writes is compared, message by message: messages, their IMAP locations, the
threading tables (latest_by_address_subject, latest_by_client_subject, latest_client_by_thread),
quarantine, triage, folder states, the delivery failures read from bounces and the verdicts the
cycle records. UIDVALIDITY is left out (Dovecot draws a new one per server), nothing else is.

To record the file afresh after a change that is *meant* to change what is stored:
    PARTING_GOLDEN_WRITE=1 .venv/bin/python -m pytest tests/test_ingest_golden.py -p no:cacheprovider
and review the diff of tests/data/ingest_golden.json like code.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness import CLIENTS, utc, write_config
from mailfactory import OFFICE, build, message_id, out_of_office, outlook_reply, reply, request, statement
from mailfactory import bounce as bounce_mail

from daemon.runtime.clock import ManualClock
from daemon.runtime.service import Service

GOLDEN = Path(__file__).parent / "data" / "ingest_golden.json"
MALFORMED = Path(__file__).parent / "corpus" / "malformed"
NOW = utc(2026, 6, 1, 10, 0)
T0 = utc(2026, 3, 2, 9, 0)

GOLDEN_CLIENTS = [
    *CLIENTS,
    {"id": "initech", "name": "Initech", "contact": "Bill Lumbergh", "addresses": ["bill@initech.example"],
     "domains": ["initech.example"], "owner": "alice"},
    {"id": "umbrella", "name": "Umbrella Corp", "contact": "Zoë Ünal", "addresses": ["zoe@umbrella.example"],
     "domains": [], "owner": "carol", "timezone": "America/New_York"},
]


def at(days: float, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def raw_mail(headers: list[tuple[str, str]], body: bytes, *, content_type: str = "text/plain; charset=utf-8"
             ) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers]
    if content_type:
        lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def mailbox() -> list[tuple[str, bytes, datetime]]:
    """(folder, raw message, INTERNALDATE) in delivery order."""
    mail: list[tuple[str, bytes, datetime]] = []

    def add(folder: str, raw: bytes, when: datetime) -> None:
        mail.append((folder, raw, when))

    # A thread with acme: request, reply, follow-up, second reply with a long References chain.
    raw, req1 = request("jane@acme.example", "Signed lease for Unit 4", at(0), "g-req1")
    add("Sent", raw, at(0))
    raw, rep1 = reply("jane@acme.example", req1, "Signed lease for Unit 4", at(1, 2), "g-rep1")
    add("INBOX", raw, at(1, 2))
    raw, fol1 = request("jane@acme.example", "Re: Signed lease for Unit 4", at(2), "g-fol1",
                        question="Thanks. Could you also send the meter readings?")
    add("Sent", raw, at(2))
    chain = [message_id(f"g-old{n}", "acme.example") for n in range(40)] + [req1, rep1, fol1]
    raw, _ = reply("jane@acme.example", fol1, "Signed lease for Unit 4", at(3), "g-rep2", references=chain)
    add("INBOX", raw, at(3))
    # A statement that asks nothing; an out-of-office answer to it.
    raw, st1 = statement("hank@globex.example", "Quarterly report", at(4), "g-st1")
    add("Sent", raw, at(4))
    raw, _ = out_of_office("hank@globex.example", st1, "Quarterly report", at(4, 1), "g-ooo1")
    add("INBOX", raw, at(4, 1))
    # A request to globex that bounced (the bounce names the client only in its body).
    raw, req2 = request("hank.old@globex-mail.example", "Insurance renewal", at(5), "g-req2")
    add("Sent", raw, at(5))
    raw, _ = bounce_mail("hank.old@globex-mail.example", req2, at(5, 0.1), "g-bounce1")
    add("INBOX", raw, at(5, 0.1))
    # Outlook threads by Thread-Index only.
    raw, _ = request("bill@initech.example", "TPS reports", at(6), "g-req3")
    add("Sent", raw, at(6))
    index = bytes(range(22))
    raw, _ = outlook_reply("bill@initech.example", "TPS reports", at(7), "g-out1", index)
    add("INBOX", raw, at(7))
    raw, _ = outlook_reply("bill@initech.example", "TPS reports", at(8), "g-out2", index + b"\x01\x02\x03\x04\x05")
    add("INBOX", raw, at(8))
    # A reply that names its thread by subject alone; a stranger on the same bare topic.
    raw, _ = request("zoe@umbrella.example", "Invoice", at(9), "g-req4")
    add("Sent", raw, at(9))
    raw = build(sender="zoe@umbrella.example", to=OFFICE, subject="RE: Invoice", body="Attached.\n", when=at(10),
                mid=message_id("g-bare1", "umbrella.example"))
    add("INBOX", raw, at(10))
    raw = build(sender="someone@stranger.example", to=OFFICE, subject="Invoice", body="Pay me.\n", when=at(10, 1),
                mid=message_id("g-stranger1", "stranger.example"))
    add("INBOX", raw, at(10, 1))
    # Encoded words: subject and display names (UTF-8 base64 and ISO-8859-1 quoted-printable).
    raw = raw_mail([
        ("From", "=?utf-8?b?Wm/DqyDDnG5hbA==?= <zoe@umbrella.example>"),
        ("To", f"=?iso-8859-1?q?B=FCro?= <{OFFICE}>"),
        ("Subject", "=?utf-8?q?Re=3A_Rechnung_f=C3=BCr_M=C3=A4rz?="),
        ("Date", "Mon, 16 Mar 2026 10:00:00 -0400"),
        ("Message-ID", message_id("g-enc1", "umbrella.example")),
    ], "Anbei die Rechnung für März.\r\n".encode())
    add("INBOX", raw, at(14))
    # Our HTML-only request (does it ask something?) and an HTML-only answer.
    raw = raw_mail([
        ("From", f"Example Ltd <{OFFICE}>"), ("To", "bill@initech.example"), ("Subject", "Site visit"),
        ("Date", "Tue, 17 Mar 2026 09:00:00 +0000"), ("Message-ID", message_id("g-html1")),
    ], b"<html><body><p>Hello Bill,</p><p>Which day would suit you for the visit?</p></body></html>\r\n",
        content_type="text/html; charset=utf-8")
    add("Sent", raw, at(15))
    raw = raw_mail([
        ("From", "Bill <bill@initech.example>"), ("To", OFFICE), ("Subject", "Re: Site visit"),
        ("Date", "Wed, 18 Mar 2026 09:00:00 +0000"), ("Message-ID", message_id("g-html2", "initech.example")),
        ("In-Reply-To", message_id("g-html1")), ("References", message_id("g-html1")),
    ], b"<html><body>Thursday works.</body></html>\r\n", content_type="text/html; charset=utf-8")
    add("INBOX", raw, at(16))
    # Odd dates: none, two-digit year, far future, far past, a time zone name.
    odd = [("none", None), ("2digit", "Thu, 19 Mar 26 11:00:00 +0100"), ("future", "Fri, 1 Jan 2044 00:00:00 +0000"),
           ("past", "Sat, 1 Jan 2000 00:00:00 +0000"), ("tzname", "Fri, 20 Mar 2026 12:00:00 EST")]
    for n, (tag, date) in enumerate(odd):
        headers = [("From", "jane@acme.example"), ("To", OFFICE), ("Subject", f"Odd date {tag}"),
                   ("Message-ID", message_id(f"g-date-{tag}", "acme.example"))]
        if date:
            headers.insert(3, ("Date", date))
        add("INBOX", raw_mail(headers, b"Just so you know.\r\n"), at(17 + n))
    # Cc'd client, a colleague, a newsletter, an auto-reply by Precedence, a message without Message-ID.
    raw = build(sender="alice@example.com", to="bob@example.com", cc=["hank@globex.example"], subject="Globex plan",
                body="Shall we call them?\n", when=at(23), mid=message_id("g-col1"))
    add("INBOX", raw, at(23))
    raw = build(sender="news@letters.example", to=OFFICE, subject="Weekly news", body="News.\n", when=at(24),
                mid=message_id("g-news1", "letters.example"), headers={"List-Unsubscribe": "<mailto:u@letters.example>",
                                                                        "Precedence": "bulk"})
    add("INBOX", raw, at(24))
    raw = build(sender="jane@acme.example", to=OFFICE, subject="Re: Signed lease for Unit 4", body="Away.\n",
                when=at(25), mid=message_id("g-auto2", "acme.example"), headers={"Precedence": "auto_reply"})
    add("INBOX", raw, at(25))
    add("INBOX", raw_mail([("From", "jane@acme.example"), ("To", OFFICE), ("Subject", "No id"),
                           ("Date", "Fri, 27 Mar 2026 09:00:00 +0000")], b"Hello.\r\n"), at(25, 1))
    # The same message in both folders (one stored row, two locations).
    raw, _ = request("hank@globex.example", "Keys", at(26), "g-dup1")
    add("Sent", raw, at(26))
    add("INBOX", raw, at(26, 0.01))
    # A request tagged in its subject; a Thread-Index that is not base64.
    raw, _ = request("jane@acme.example", "[parting] Boiler service", at(27), "g-tag1")
    add("Sent", raw, at(27))
    raw = build(sender="jane@acme.example", to=OFFICE, subject="RE: Boiler", body="ok\n", when=at(28),
                mid=message_id("g-badidx", "acme.example"), headers={"Thread-Index": "!!not base64!!"})
    add("INBOX", raw, at(28))
    raw = build(sender="jane@acme.example", to=OFFICE, subject="RE: Boiler", body="ok\n", when=at(28, 1),
                mid=message_id("g-idx2", "acme.example"),
                headers={"Thread-Index": base64.b64encode(b"\x07" * 22).decode(), "Thread-Topic": "Boiler"})
    add("INBOX", raw, at(28, 1))
    # A stranger answering into acme's thread (triage), as a reply to a known message.
    raw, _ = reply("assistant@elsewhere.example", rep1, "Signed lease for Unit 4", at(29), "g-triage1",
                   references=[req1, rep1])
    add("INBOX", raw, at(29))
    # Everything in the malformed corpus, as the INBOX would receive it.
    for n, path in enumerate(sorted(MALFORMED.glob("*.eml"))):
        add("INBOX", path.read_bytes() or b"\r\n", at(30, n))
    return mail


def snapshot(database: Path) -> dict:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row

    def rows(sql: str, drop: tuple[str, ...] = ()) -> list[dict]:
        return [{k: r[k] for k in r.keys() if k not in drop} for r in db.execute(sql)]

    verdicts = rows("SELECT client_id, verdict, at FROM verdicts ORDER BY client_id")
    for verdict in verdicts:
        verdict["verdict"] = json.loads(verdict["verdict"])
    try:
        return {
            "messages": rows("SELECT * FROM messages ORDER BY message_id"),
            "message_uids": rows("SELECT * FROM message_uids ORDER BY folder, uid", drop=("uidvalidity",)),
            "latest_by_address_subject": rows("SELECT * FROM latest_by_address_subject ORDER BY address, norm_subject"),
            "latest_by_client_subject": rows("SELECT * FROM latest_by_client_subject ORDER BY norm_subject, client_id"),
            "latest_client_by_thread": rows("SELECT * FROM latest_client_by_thread ORDER BY thread_id"),
            "quarantine": rows("SELECT * FROM quarantine ORDER BY folder, uid", drop=("uidvalidity",)),
            "triage": rows("SELECT * FROM triage ORDER BY message_id, reason", drop=("id",)),
            "folders": rows("SELECT * FROM folders ORDER BY name", drop=("uidvalidity",)),
            "delivery_failures": rows("SELECT * FROM delivery_failures ORDER BY bounce_message_id, recipient"),
            "verdicts": verdicts,
        }
    finally:
        db.close()


def test_ingest_stores_the_golden_rows_and_verdicts(dovecot, smtp_sink, tmp_path: Path) -> None:
    for folder, raw, when in mailbox():
        dovecot.append(folder, raw, msg_time=when)
    outgoing = tmp_path / "outgoing"
    outgoing.mkdir()
    config = write_config(tmp_path / "conf", dovecot, smtp_sink, clients=GOLDEN_CLIENTS,
                          extra={"mode": "dry_run", "dry_run": {"folder": str(outgoing)}})
    service = Service(config, clock=ManualClock(NOW), environ={})
    assert asyncio.run(service.run(once=True, install_signals=False)) == 0

    got = snapshot(tmp_path / "conf" / "parting.db")
    with closing(sqlite3.connect(tmp_path / "conf" / "parting.db")) as db:  # ingest writes unchecked
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    if os.environ.get("PARTING_GOLDEN_WRITE"):
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    for table in want:
        assert len(got[table]) == len(want[table]), table
        for mine, golden in zip(got[table], want[table], strict=True):
            assert mine == golden, table
    assert len(want["messages"]) >= 60 and want["quarantine"] and want["triage"] and len(want["verdicts"]) == 4
    assert want["delivery_failures"]  # the bounce of g-req2 names what failed
    assert datetime.fromisoformat(want["verdicts"][0]["at"]).astimezone(UTC) == NOW
