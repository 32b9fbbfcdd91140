"""The outbox listing reads a row's Subject without the email parser (daemon/queries/listings.py
subject_of): the same text as the parser's default policy gives, for every kind of subject parting writes."""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default

import pytest

from daemon.core.outgoing import build_message
from daemon.queries.listings import subject_of

SUBJECTS = [
    "Our work together", "Re: " + "long words " * 20, "Café au lait — déjà vu ", "🙂 emoji subject",
    "日本語の件名 " * 8, "Mixed ascii and ünïcödé " * 5, "  spaced   out  ", "a=?utf-8?q?not?=b", "tab\there",
    " é trailing  ", "x" * 200, "Ä" * 100 + " b " + "c" * 90, "[parting #abcd1234] Please review: Acme",
]


@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_subject_the_email_parser_reads(subject: str) -> None:
    raw = build_message(from_addr="office@example.com", from_name="Alice (Example Ltd)", to=["jane@acme.example"],
                        subject=subject, body="Hello\n", message_id="<1@example.com>",
                        date=datetime(2026, 11, 2, 10, tzinfo=UTC), auto_submitted=True)
    assert subject_of(raw) == str(BytesHeaderParser(policy=default).parsebytes(raw).get("Subject", ""))


def test_a_message_without_subject_or_not_ascii_headers() -> None:
    assert subject_of(b"From: a@example.com\r\n\r\nSubject: in the body\r\n") == ""
    raw = "Subject: caf\u00e9 raw\r\n\r\nbody".encode()
    assert subject_of(raw) == str(BytesHeaderParser(policy=default).parsebytes(raw).get("Subject", ""))
