"""core/mail.py and core/mailbody.py: parsing, bodies, auto-replies, bounces, requests, the malformed corpus."""

from __future__ import annotations

import email
import email.policy
import hashlib
import importlib.util
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.core.mail import (
    AUTO_REPLY_SUBJECTS,
    HEADER_FIELDS,
    MalformedMessage,
    asks_something,
    bounce_recipients,
    detect_auto_reply,
    is_hard_bounce,
    message_time,
    parse_message,
    request_header,
)
from daemon.core.model import ParsedMessage

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def msg(*header_lines: str, body: str | None = None) -> bytes:
    head = "\r\n".join(header_lines) + "\r\n\r\n"
    return (head + (body or "")).encode("utf-8")


BASE = ("From: Jane Doe <jane@acme.example>", "To: office@example.com", "Message-ID: <m1@acme.example>")


def assert_sane(parsed: ParsedMessage) -> None:
    """What every parse must give, however broken the input: clean, storable plain values."""
    texts = [parsed.message_id, parsed.from_addr, parsed.from_name, parsed.subject, *parsed.to, *parsed.cc,
             *parsed.reply_to, *parsed.in_reply_to, *parsed.references, *parsed.authentication_results,
             parsed.thread_index or "", parsed.thread_topic or "", parsed.parting_kind or "", parsed.text or ""]
    for text in texts:
        text.encode("utf-8")  # no lone surrogates: every value can be stored as UTF-8
        assert "\x00" not in text
    for line in (parsed.subject, parsed.from_name, parsed.thread_topic or "", parsed.parting_kind or ""):
        assert "\r" not in line and "\n" not in line
    assert parsed.message_id and not any(c.isspace() for c in parsed.message_id)
    assert "<" not in parsed.message_id and ">" not in parsed.message_id
    for addr in (parsed.from_addr, *parsed.to, *parsed.cc, *parsed.reply_to):
        assert addr == "" or (addr == addr.lower() and addr.count("@") == 1 and " " not in addr)
    assert parsed.date is None or parsed.date.utcoffset().total_seconds() == 0
    assert len(parsed.content_hash) == 64


# ------------------------------------------------------------------------------------------
# Plain parsing.


def test_whole_message_fields() -> None:
    raw = msg(
        'From: "Doe, Jane" <Jane.Doe+Invoices@ACME.example>',
        "To: office@example.com, Bob <BOB@example.com>",
        "Cc: undisclosed-recipients:;, carol@acme.example",
        "Reply-To: replies@acme.example",
        "Subject: =?utf-8?q?Re=3A_Caf=C3=A9?=\r\n  =?utf-8?q?_order?=",
        "Date: Mon, 02 Mar 2026 11:30:00 +0100",
        "Message-ID:\r\n  <abc.123@mail.acme.example>",
        "In-Reply-To: <req-1@example.com>",
        "References: <root@example.com>\r\n\t<req-1@example.com> <root@example.com>",
        "Thread-Index: AQHYxyz1 Rh+9/lkS",
        "Thread-Topic: Caf\u00e9 order",
        "Authentication-Results: mx.example.com;\r\n dmarc=pass header.from=acme.example",
        "Authentication-Results: other.example; spf=fail",
        "X-Parting-Kind: review",
        "Content-Type: text/plain; charset=utf-8",
        body="Hello,\r\ncould you send it?\r\n",
    )
    parsed = parse_message(raw, size=4242)
    assert parsed.from_addr == "jane.doe+invoices@acme.example"
    assert parsed.from_name == "Doe, Jane"
    assert parsed.to == ("office@example.com", "bob@example.com")
    assert parsed.cc == ("carol@acme.example",)
    assert parsed.reply_to == ("replies@acme.example",)
    assert parsed.subject == "Re: Café order"
    assert parsed.date == datetime(2026, 3, 2, 10, 30, tzinfo=UTC)
    assert parsed.message_id == "abc.123@mail.acme.example"
    assert parsed.in_reply_to == ("req-1@example.com",)
    assert parsed.references == ("root@example.com", "req-1@example.com")
    assert parsed.thread_index == "AQHYxyz1Rh+9/lkS"
    assert parsed.thread_topic == "Café order"
    assert parsed.authentication_results == (
        "mx.example.com; dmarc=pass header.from=acme.example",
        "other.example; spf=fail",
    )
    assert parsed.parting_kind == "review"
    assert parsed.auto_reply is None and parsed.bounce is False
    assert parsed.text == "Hello,\ncould you send it?\n"
    assert parsed.new_text is None
    assert parsed.size == 4242
    assert_sane(parsed)


def test_header_block_alone_has_no_text_and_size_defaults_to_length() -> None:
    raw = msg(*BASE, "Subject: hi")
    parsed = parse_message(raw)
    assert parsed.text is None
    assert parsed.size == len(raw)
    assert parsed.subject == "hi"


def test_header_fields_are_enough_for_a_headers_only_parse() -> None:
    """What the IMAP adapter fetches with HEADER.FIELDS must give the same reading as the whole message."""
    whole = msg(
        *BASE, "Cc: carol@acme.example", "Reply-To: r@acme.example", "Subject: Automatic reply: Invoice",
        "Date: Tue, 03 Mar 2026 08:00:00 -0500", "In-Reply-To: <a@x>", "References: <r@x> <a@x>",
        "Thread-Index: AQHYxyz1Rh+9/lkSQkOeHQ6jJ1X0Kw==", "Thread-Topic: Invoice", "Auto-Submitted: auto-replied",
        "X-Auto-Response-Suppress: All", "Precedence: bulk", "List-Id: <l.acme.example>",
        "Return-Path: <>", "Authentication-Results: mx.example.com; dkim=pass", "X-Parting-Kind: nudge",
        "X-Parting-Request: yes", "Content-Type: multipart/report; report-type=delivery-status; boundary=B",
        "X-Unrelated: dropped by the fetch", body="--B\r\nContent-Type: text/plain\r\n\r\nx\r\n--B--\r\n",
    )
    message = email.message_from_bytes(whole, policy=email.policy.compat32)
    wanted = {name.lower() for name in HEADER_FIELDS}
    fetched = "".join(f"{k}: {v}\r\n" for k, v in message.items() if k.lower() in wanted) + "\r\n"
    full, headers_only = parse_message(whole), parse_message(fetched.encode())
    for name in ParsedMessage.__dataclass_fields__:
        if name not in ("content_hash", "size", "text"):
            assert getattr(headers_only, name) == getattr(full, name), name
    assert request_header(fetched.encode()) is True


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Message-ID: <a.b@c.example>", "a.b@c.example"),
        ("Message-ID:   < spaced@c.example >  ", "spaced@c.example"),
        ("Message-ID: bare@c.example", "bare@c.example"),
        ("Message-ID: <[...]>", "[...]"),
        ("Message-ID: <first@x> <second@x>", "first@x"),
        ("Message-ID: not an id at all", None),
        ("Message-ID: <>", None),
        ("Message-ID:", None),
        ("X-No-Id: here", None),
    ],
)
def test_message_id(header: str, expected: str | None) -> None:
    raw = msg("From: jane@acme.example", header)
    parsed = parse_message(raw)
    if expected is None:
        assert parsed.message_id == f"synthetic-{hashlib.sha256(raw).hexdigest()[:32]}@parting"
    else:
        assert parsed.message_id == expected


def test_synthetic_ids_are_stable_and_distinct() -> None:
    one, two = msg("From: a@x.example", "Subject: one"), msg("From: a@x.example", "Subject: two")
    assert parse_message(one).message_id == parse_message(one).message_id
    assert parse_message(one).message_id != parse_message(two).message_id
    # two messages whose fetched header blocks are equal differ in size: they must not merge
    assert parse_message(one, size=900).message_id == parse_message(one, size=900).message_id
    assert parse_message(one, size=900).message_id != parse_message(one, size=901).message_id
    assert parse_message(one, size=900).content_hash == parse_message(one).content_hash


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 02 Mar 2026 10:00:00 +0000", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("2 Mar 2026 12:00:00 +0200", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("Mon, 2 Mar 2026 10:00:00 -0000", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("Mon,  2 Mar 2026 05:00:00 EST", datetime(2026, 3, 2, 10, 0, tzinfo=UTC)),
        ("Mon, 1 Jan 99999 00:00:00 +0000", None),
        ("yesterday", None),
        ("Mon, 31 Feb 2026 10:00:00 +0000", None),
        ("", None),
    ],
)
def test_date(value: str, expected: datetime | None) -> None:
    assert parse_message(msg(*BASE, f"Date: {value}")).date == expected


def test_addresses_skip_invalid_and_deduplicate() -> None:
    raw = msg(
        "From: <@>", "To: a@b@c, @nodomain, nolocal@, ok@Acme.example, OK@acme.example",
        "To: team: x@acme.example, y@acme.example;", "Cc: \"unterminated <c@acme.example>", 'Reply-To: "',
    )
    parsed = parse_message(raw)
    assert parsed.from_addr == "" and parsed.from_name == ""
    assert parsed.to == ("ok@acme.example", "x@acme.example", "y@acme.example")
    assert parsed.reply_to == ()
    assert_sane(parsed)


def test_subject_never_carries_line_breaks_even_when_encoded() -> None:
    parsed = parse_message(msg(*BASE, "Subject: =?utf-8?q?Hi=0D=0ABcc:_x@evil.example?=  \t there"))
    assert parsed.subject == "Hi Bcc: x@evil.example there"


def test_eight_bit_headers_read_as_utf8_or_windows_1252() -> None:
    raw = (b"From: J\xc3\xb6rg <joerg@acme.example>\r\nTo: Ren\xe9 <rene@acme.example>\r\n"
           b"Subject: Gr\xc3\xbc\xc3\x9fe \xe0 bient\xf4t\r\n\r\n")
    parsed = parse_message(raw)
    assert (parsed.from_name, parsed.to, parsed.subject) == ("Jörg", ("rene@acme.example",), "Grüße à bientôt")


def test_nul_bytes_are_dropped() -> None:
    parsed = parse_message(b"From: ja\x00ne@acme.example\r\nSubject: a\x00b\r\n\r\nte\x00xt\r\n")
    assert (parsed.from_addr, parsed.subject, parsed.text) == ("jane@acme.example", "ab", "text\n")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message"),
        (b"\x00\x00", "empty message"),
        (b"\r\n", "no header fields"),  # what IMAP returns when none of the fetched fields exist
        (b"just some words\r\nand more\r\n", "no header fields"),
        (b"\r\nFrom: after a blank line@x\r\n", "no header fields"),
        (b"Subject: " + b"x" * (65 * 1024) + b"\r\n\r\n", "header line longer than 64 KiB"),
        (b"".join(b"X-H%06d: v\r\n" % i for i in range(30000)) + b"\r\n", "header section larger than 256 KiB"),
    ],
)
def test_unusable_messages_raise_malformed_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        parse_message(raw)
    assert caught.value.reason == reason


# ------------------------------------------------------------------------------------------
# Body text.


def test_first_text_plain_wins_over_html_and_attachments() -> None:
    body = (
        "--B\r\nContent-Type: text/plain; name=a.txt\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\n"
        "attached\r\n"
        "--B\r\nContent-Type: multipart/alternative; boundary=C\r\n\r\n"
        "--C\r\nContent-Type: text/html\r\n\r\n<p>html version</p>\r\n"
        "--C\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        "caf=E9 plain\r\n--C--\r\n--B--\r\n"
    )
    parsed = parse_message(msg(*BASE, "Content-Type: multipart/mixed; boundary=B", body=body))
    assert parsed.text == "café plain"


def test_html_only_message_is_converted() -> None:
    body = "<html><head><style>p {color: red}</style></head><body><p>Could you send<br>the file?</p></body></html>"
    parsed = parse_message(msg(*BASE, "Content-Type: text/html; charset=utf-8", body=body))
    assert parsed.text == "Could you send\nthe file?"


def test_attached_messages_are_not_read_as_our_text() -> None:
    body = "--B\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.example\r\n\r\nsomeone else's words\r\n--B--\r\n"
    parsed = parse_message(msg(*BASE, "Content-Type: multipart/mixed; boundary=B", body=body))
    assert parsed.text is None


# ------------------------------------------------------------------------------------------
# Auto-replies.

AUTO_HEADERS = [
    ("Auto-Submitted: auto-replied", "Auto-Submitted"),
    ("Auto-Submitted: auto-generated; owner-email=x@y", "Auto-Submitted"),
    ("Auto-Submitted: AUTO-NOTIFIED", "Auto-Submitted"),
    ("X-Autoreply: yes", "X-Autoreply"),
    ("X-Autorespond: Vacation", "X-Autorespond"),
    ("X-Auto-Response-Suppress: All", "X-Auto-Response-Suppress"),
    ("X-Auto-Response-Suppress: DR, OOF", "X-Auto-Response-Suppress"),
    ("X-Auto-Response-Suppress: AutoReply", "X-Auto-Response-Suppress"),
    ("Precedence: bulk", "Precedence: bulk"),
    ("Precedence: JUNK", "Precedence: junk"),
    ("Precedence: list", "Precedence: list"),
    ("Precedence: auto_reply", "Precedence: auto_reply"),
    ("List-Id: Announcements <news.acme.example>", "List-Id"),
    ("List-Unsubscribe: <mailto:leave@acme.example>", "List-Unsubscribe"),
    ("Return-Path: <>", "Return-Path"),
    ("Return-Path: < >", "Return-Path"),
    ("Content-Type: multipart/report; report-type=disposition-notification; boundary=x", "multipart/report"),
]


@pytest.mark.parametrize(("header", "named"), AUTO_HEADERS)
def test_auto_reply_headers(header: str, named: str) -> None:
    reason = detect_auto_reply(msg(*BASE, header, "Subject: Re: Invoice"))
    assert reason is not None and named in reason
    assert parse_message(msg(*BASE, header)).auto_reply == reason


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Invoice 42", "OUT OF OFFICE", "Out of the office until Monday", "Automatic reply: Invoice",
        "Autoreply: Invoice", "Auto-Reply: Invoice", "[Auto Reply] Invoice", "Abwesenheitsnotiz: Rechnung",
        "Automatische Antwort: Rechnung", "Réponse automatique : Facture", "Reponse automatique: Facture",
        "Absence du bureau", "Respuesta automática: Factura", "Fuera de la oficina", "Afwezig: factuur",
        "Automatisch antwoord: factuur", "Frånvaro: faktura", "Autosvar: faktura", "Automatiskt svar: faktura",
        "Fravær: faktura", "Fraværende", "Automatisk svar: faktura", "Poissa: lasku", "Automaattinen vastaus: lasku",
    ],
)
def test_auto_reply_subjects_in_many_languages(subject: str) -> None:
    reason = detect_auto_reply(msg(*BASE, f"Subject: {subject}"))
    assert reason is not None and reason.startswith("Subject: ")
    assert reason.removeprefix("Subject: ") in AUTO_REPLY_SUBJECTS


def test_encoded_auto_reply_subject_is_decoded_before_matching() -> None:
    assert detect_auto_reply(msg(*BASE, "Subject: =?utf-8?q?R=C3=A9ponse_automatique_:_Facture?=")) is not None


@pytest.mark.parametrize(
    "headers",
    [
        ("Auto-Submitted: no", "Subject: Invoice"),
        ("Auto-Submitted: No (a person wrote this)",),
        ("X-Autoreply: no",),
        ("X-Auto-Response-Suppress: DR, RN",),
        ("Precedence: first-class",),
        ("Return-Path: <jane@acme.example>",),
        ("Subject: Re: our out of office rota",),
        ("Subject: Absentee list for the audit",),
        ("Subject: Invoice 42",),
    ],
)
def test_person_written_mail_is_not_an_auto_reply(headers: tuple[str, ...]) -> None:
    assert detect_auto_reply(msg(*BASE, *headers)) is None


def test_detect_auto_reply_accepts_a_parsed_email_message() -> None:
    message = email.message_from_bytes(msg(*BASE, "Auto-Submitted: auto-replied"), policy=email.policy.default)
    assert detect_auto_reply(message) == "Auto-Submitted: auto-replied"


# ------------------------------------------------------------------------------------------
# Bounces.

DSN = """Return-Path: <>
From: MAILER-DAEMON@mail.example.com (Mail Delivery System)
To: office@example.com
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="8A2B53C0E1.1772445600/mail.example.com"
Message-Id: <20260302100000.8A2B53C0E1@mail.example.com>
Date: Mon,  2 Mar 2026 10:00:00 +0000 (GMT)

This is a MIME-encapsulated message.

--8A2B53C0E1.1772445600/mail.example.com
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.example.com.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<jane@acme.example>: host mx.acme.example[192.0.2.10] said: 550 5.1.1
    <jane@acme.example>: Recipient address rejected: User unknown

--8A2B53C0E1.1772445600/mail.example.com
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.example.com
X-Postfix-Queue-ID: 8A2B53C0E1
X-Postfix-Sender: rfc822; office@example.com
Arrival-Date: Mon,  2 Mar 2026 09:59:58 +0000 (GMT)

Final-Recipient: rfc822; Jane@Acme.example
Original-Recipient: rfc822;jane@acme.example
Action: {action}
Status: {status}
Remote-MTA: dns; mx.acme.example
Diagnostic-Code: smtp; 550 5.1.1 <jane@acme.example>: Recipient address
    rejected: User unknown

Final-Recipient: rfc822; ok@acme.example
Action: delivered
Status: 2.0.0

--8A2B53C0E1.1772445600/mail.example.com
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: office@example.com
To: jane@acme.example
Subject: Documents for the March filing
Message-ID: <req-1@example.com>

--8A2B53C0E1.1772445600/mail.example.com--
"""


def dsn(action: str = "failed", status: str = "5.1.1") -> bytes:
    return DSN.format(action=action, status=status).replace("\n", "\r\n").encode()


def test_a_hard_bounce_is_recognised_and_tied_to_its_recipient() -> None:
    raw = dsn()
    parsed = parse_message(raw)
    assert parsed.bounce is True and parsed.auto_reply is not None
    assert parsed.from_addr == "mailer-daemon@mail.example.com"
    assert bounce_recipients(raw) == ("jane@acme.example",)
    assert is_hard_bounce(raw) is True
    assert "could not" in (parsed.text or "")


def test_a_delay_notice_is_a_bounce_but_not_a_hard_one() -> None:
    raw = dsn(action="delayed", status="4.4.1")
    assert parse_message(raw).bounce is True
    assert is_hard_bounce(raw) is False
    assert bounce_recipients(raw) == ("jane@acme.example",)


def test_status_5_without_action_is_hard() -> None:
    assert is_hard_bounce(dsn(action="", status="5.2.2")) is True


def test_header_block_of_a_dsn_is_enough_to_see_the_bounce() -> None:
    head = dsn().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    assert parse_message(head).bounce is True
    assert bounce_recipients(head) == () and is_hard_bounce(head) is False


@pytest.mark.parametrize(
    ("sender", "subject", "bounce"),
    [
        ("postmaster@acme.example", "Undeliverable: Documents", True),
        ("MAILER-DAEMON@mx.example.com", "failure notice", True),
        ("Mail Delivery Subsystem <mailer-daemon@googlemail.com>", "Delivery Status Notification (Failure)", True),
        ("postmaster@mx.example.de", "Unzustellbar: Rechnung", True),
        ("postmaster@acme.example", "Question about our DNS", False),
        ("jane@acme.example", "Undeliverable: Documents", False),
    ],
)
def test_bounce_by_sender_and_subject(sender: str, subject: str, bounce: bool) -> None:
    assert parse_message(msg(f"From: {sender}", f"Subject: {subject}")).bounce is bounce


def test_exim_failed_recipients_header_names_the_recipient() -> None:
    raw = msg("From: Mail Delivery System <Mailer-Daemon@mx.example.com>", "Subject: Mail delivery failed",
              "X-Failed-Recipients: jane@acme.example, bad@", body="A message could not be delivered.\r\n")
    assert parse_message(raw).bounce is True
    assert bounce_recipients(raw) == ("jane@acme.example",)


def test_ordinary_mail_has_no_bounce_recipients() -> None:
    raw = msg(*BASE, "Subject: hello", body="hello\r\n")
    assert bounce_recipients(raw) == () and is_hard_bounce(raw) is False


@pytest.mark.parametrize("raw", [b"", b"no header fields here", b"Subject: " + b"x" * 70000 + b"\r\n\r\n"])
def test_bounce_helpers_read_unusable_mail_as_nothing(raw: bytes) -> None:
    # ingest calls these on bodies whose parse may have failed; they must not raise
    assert bounce_recipients(raw) == () and is_hard_bounce(raw) is False and request_header(raw) is False


def test_request_header() -> None:
    assert request_header(msg(*BASE, "X-Parting-Request: Yes")) is True
    assert request_header(msg(*BASE, "X-Parting-Request: no")) is False
    assert request_header(msg(*BASE)) is False


# ------------------------------------------------------------------------------------------
# Does new text ask for something?


@pytest.mark.parametrize(
    ("text", "asks"),
    [
        ("Is the report ready?", True),
        ("Please send the signed contract by Friday.", True),
        ("Could you have a look at the attached draft.", True),
        ("Let me know when it's done.", True),
        ("PLEASE CONFIRM receipt.", True),
        ("We need the bank statements for March.", True),
        ("Still awaiting your reply on the invoice.", True),
        ("Bitte senden Sie uns die Unterlagen.", True),
        ("Könnten Sie das prüfen.", True),
        ("Merci de nous transmettre le relevé.", True),
        ("Pourriez-vous confirmer.", True),
        ("Por favor envíe los documentos.", True),
        ("Quedo a la espera de su respuesta.", True),
        ("Kunt u de factuur sturen.", True),
        ("¿Cuándo llega", True),
        ("Thanks, all received.", False),
        ("See https://portal.example.com/doc?id=42&x=1 for the file.", False),
        ("Find it at www.example.com/a?b=c", False),
        ("Thank you, have a good weekend.", False),
        ("The scan cannot be read.", False),
        ("Vielen Dank für die Unterlagen.", False),
        ("", False),
    ],
)
def test_asks_something(text: str, asks: bool) -> None:
    assert asks_something(text) is asks


# ------------------------------------------------------------------------------------------
# The malformed corpus: each file parses to sane values or fails with a reason, quickly.


def load_generator():
    spec = importlib.util.spec_from_file_location("make_malformed", CORPUS / "make_malformed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MALFORMED = {
    "empty.eml": "empty message",
    "only_nul_bytes.eml": "empty message",
    "only_body.eml": "no header fields",
    "binary_garbage.eml": "no header fields",
    "huge_header_line.eml": "header line longer than 64 KiB",
    "long_folded_header.eml": "header field longer than 64 KiB",
    "header_section_too_large.eml": "header section larger than 256 KiB",
}
EXPECTED = {
    "header_only.eml": dict(message_id="header-only@acme.example", subject="just headers", text=None),
    "broken_rfc2047.eml": dict(from_addr="jane@acme.example", text="body\n"),
    "encoded_newline_subject.eml": dict(subject="Hello Bcc: evil@attacker.example"),
    "missing_boundary.eml": dict(subject="no boundary", text=None),
    "nul_bytes.eml": dict(message_id="nul@acme.example", from_name="Jane Doe", subject="nul bytes",
                          text="text with  inside\n"),
    "many_headers.eml": dict(message_id="many@acme.example", subject="many headers", text="body\n"),
    "to_open_quote.eml": dict(message_id="quote@acme.example", from_addr="jane@acme.example", to=()),
    "message_id_brackets.eml": dict(message_id="[...]", from_addr="jane@acme.example"),
    "pathological_quotes.eml": dict(from_addr="jane@acme.example", to=()),
    "pathological_dots.eml": dict(from_addr="", cc=()),
    "many_pathological_values.eml": dict(from_addr="jane@acme.example", to=("ok@acme.example",)),
    "bad_charsets.eml": dict(subject="abcdef", text="café text\n"),
    "non_text_codec_charset.eml": dict(text="uryyb\n"),
    "eight_bit_headers.eml": dict(from_name="Jörg Müller", to=("rene@acme.example",), text="Körper\n"),
    "truncated.eml": dict(message_id="truncated@acme.example", text="Hello wor"),
    "truncated_in_header.eml": dict(from_addr="jane@acme.example", subject="cut he"),
    "header_without_colon.eml": dict(message_id="nocolon@acme.example", subject=""),
    "duplicate_headers.eml": dict(from_addr="first@acme.example", to=("a@acme.example", "b@acme.example"),
                                  subject="first subject", message_id="dup-1@acme.example",
                                  date=datetime(2026, 3, 2, 10, tzinfo=UTC)),
    "deeply_nested.eml": dict(message_id="deep@acme.example", text=None),
    "nested_beyond_walk_depth.eml": dict(message_id="depth30@acme.example", text=None),
    "message_rfc822_chain.eml": dict(message_id="chain@acme.example", text=None),
    "parts_300.eml": dict(text="part 0"),
    "invalid_base64.eml": dict(message_id="b64@acme.example"),
    "invalid_quoted_printable.eml": dict(text="café =ZZ broken soft"),
    "unknown_transfer_encoding.eml": dict(text="plain words\n"),
    "part_header_semicolons.eml": dict(text="after"),
    "date_year_99999.eml": dict(date=None, from_addr="jane@acme.example"),
    "date_garbage.eml": dict(date=None),
    "references_garbage.eml": dict(in_reply_to=("bare-id@acme.example",),
                                   references=("a@acme.example", "b@acme.example")),
    "bare_cr_line_endings.eml": dict(message_id="cr@acme.example", subject="cr only"),
    "lf_line_endings.eml": dict(message_id="lf@acme.example", subject="lf only", text="body\n"),
    "mbox_from_line.eml": dict(message_id="mbox@acme.example", from_addr="jane@acme.example", text="body\n"),
    "invalid_addresses.eml": dict(from_addr="", to=("ok@acme.example",), reply_to=()),
    "message_id_garbage.eml": dict(from_addr="jane@acme.example"),
    "html_unclosed_markup.eml": dict(message_id="html@acme.example"),
}
SYNTHETIC_ID = {"message_id_garbage.eml", "date_garbage.eml", "pathological_quotes.eml", "truncated_in_header.eml",
                "many_pathological_values.eml"}


def test_corpus_is_what_the_generator_writes() -> None:
    generated = load_generator().cases()
    on_disk = {p.name: p.read_bytes() for p in (CORPUS / "malformed").glob("*.eml")}
    assert sorted(generated) == sorted(on_disk)
    for name, data in generated.items():
        assert on_disk[name] == data, f"{name}: rerun tests/corpus/make_malformed.py"
        assert len(data) < 2_000_000
    assert len(on_disk) >= 20
    assert set(on_disk) == set(MALFORMED) | set(EXPECTED), "every corpus file has an expectation"


@pytest.mark.parametrize("name", sorted(p.name for p in (CORPUS / "malformed").glob("*.eml")))
def test_corpus_message(name: str) -> None:
    raw = (CORPUS / "malformed" / name).read_bytes()
    try:
        parsed = parse_message(raw)
    except MalformedMessage as error:
        assert MALFORMED.get(name) == error.reason
    else:
        assert name not in MALFORMED, f"expected MalformedMessage({MALFORMED.get(name)!r})"
        assert_sane(parsed)
        for field, value in EXPECTED.get(name, {}).items():
            assert getattr(parsed, field) == value, field
        if name in SYNTHETIC_ID:
            assert parsed.message_id == f"synthetic-{hashlib.sha256(raw).hexdigest()[:32]}@parting"
        if name == "html_unclosed_markup.eml":
            assert parsed.text is not None and parsed.text.startswith("Could you reply\n")


# ------------------------------------------------------------------------------------------
# Properties.


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_parse_or_raise_malformed(raw: bytes) -> None:
    try:
        parsed = parse_message(raw)
    except MalformedMessage as error:
        assert error.reason
    else:
        assert_sane(parsed)


header_names = st.sampled_from([*HEADER_FIELDS, "Content-Transfer-Encoding", "X-Junk", "From "])
header_values = st.lists(
    st.one_of(
        st.sampled_from(list('"<>()[]@.,;:\\=?_ \t\r\n\x00') + ["=?utf-8?q?", "=?utf-8?b?", "?=", "\r\n ", "é"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=100,
).map("".join)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(header_names, header_values), max_size=25),
    st.one_of(st.none(), st.binary(max_size=1024), st.text(max_size=500).map(str.encode)),
)
def test_mail_like_input_parses_or_raises_malformed(fields: list[tuple[str, str]], body: bytes | None) -> None:
    raw = "".join(f"{name}: {value}\r\n" for name, value in fields).encode("utf-8")
    if body is not None:
        raw += b"\r\n" + body
    try:
        parsed = parse_message(raw)
        detect_auto_reply(raw)
        bounce_recipients(raw)
        is_hard_bounce(raw)
    except MalformedMessage as error:
        assert error.reason
    else:
        assert_sane(parsed)


def test_a_reply_through_a_list_alias_is_a_person_not_bulk_mail() -> None:
    from daemon.core.mail import parse_message

    base = (b"From: jane@acme.example\r\nTo: office@example.com\r\nSubject: Re: Signed form?\r\n"
            b"List-Id: <team.acme.example>\r\nPrecedence: list\r\nMessage-ID: <r1@acme.example>\r\n")
    reply = parse_message(base + b"In-Reply-To: <q1@example.com>\r\n\r\nHere it is.\r\n")
    assert reply.auto_reply is None
    newsletter = parse_message(base + b"\r\nOur monthly news.\r\n")
    assert newsletter.auto_reply is not None


def test_message_text_reads_what_parse_message_reads() -> None:
    from daemon.core.mail import message_text
    multipart = (b"From: a@b.example\r\nMessage-ID: <m@b>\r\nMIME-Version: 1.0\r\n"
                 b'Content-Type: multipart/alternative; boundary="xyz"\r\n\r\n'
                 b"--xyz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
                 b"Could you sign the form?=0D=0A=E2=80=94 Alice\r\n--xyz\r\nContent-Type: text/html\r\n\r\n<p>x</p>\r\n--xyz--\r\n")
    for raw in (multipart, b"From: a@b.example\r\n\r\nHello\r\n", b"From: a@b.example\r\n\r\n  \r\n"):
        assert message_text(raw) == parse_message(raw).text
    with pytest.raises(MalformedMessage):
        message_text(b"")


# ---- which date to trust (message_time) --------------------------------------------------------

_SERVER = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("date, direction, expected", [
    (_SERVER - timedelta(days=2), "in", _SERVER - timedelta(days=2)),  # agrees with the server: the sender's Date
    (_SERVER - timedelta(days=8), "in", _SERVER),  # backdated a week: the server's clock wins
    (_SERVER - timedelta(days=8), "out", _SERVER - timedelta(days=8)),  # our own Date: trusted when in the past
    (_SERVER + timedelta(days=2), "out", _SERVER),  # in the future of the server's receipt: never
    (_SERVER + timedelta(hours=12), "in", _SERVER + timedelta(hours=12)),  # clock skew within a day
    (None, "in", _SERVER),
])
def test_a_date_header_is_trusted_only_within_its_bounds_of_the_servers_clock(date, direction, expected) -> None:
    assert message_time(date, _SERVER, direction) == expected


def test_without_a_server_date_the_header_is_all_there_is() -> None:
    assert message_time(_SERVER, None, "in") == _SERVER
    assert message_time(None, None, "in") == datetime(1970, 1, 1, tzinfo=UTC)


def _read_fresh_and_remembered(raw: bytes) -> None:
    """parse_message with the memo of address values, cold and warm, reads as without it."""
    from unittest import mock

    from daemon.core import mail

    def outcome() -> object:
        try:
            return parse_message(raw)
        except MalformedMessage as error:
            return error.reason

    with mock.patch.object(mail, "_value_addresses", mail._value_addresses.__wrapped__):
        expected = outcome()
    mail._value_addresses.cache_clear()
    assert outcome() == expected  # every value read once, then remembered
    assert outcome() == expected  # every value remembered


def test_remembered_address_values_read_as_a_first_reading_does() -> None:
    # The corpus holds repeated and over-long address fields: values the budget lets the
    # structured parser see, and the same values once it is spent.
    paths = sorted(CORPUS.glob("**/*.eml"))
    assert len(paths) > 20
    for path in paths:
        _read_fresh_and_remembered(path.read_bytes())


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["From", "To", "Cc", "Reply-To"]), header_values), min_size=1, max_size=12))
def test_remembered_address_values_read_as_a_first_reading_does_for_any_fields(fields: list[tuple[str, str]]) -> None:
    # Each field also repeated, so that a value is remembered within one message too.
    _read_fresh_and_remembered("".join(f"{name}: {value}\r\n" for name, value in fields * 2).encode("utf-8"))
