"""adapters/imap/fetchreader.py reads FETCH answers exactly as imapclient's parser reads them, or
declines and leaves them to it: on crafted answers of the two shapes (header fields; whole
messages) and of many others, and on a real Dovecot's answers (the same headers, dates, sizes and
messages with the fast reader as with imapclient.fetch)."""

from __future__ import annotations

from datetime import UTC, datetime

import imapclient
import pytest
from imapclient.response_parser import parse_fetch_response
from servers import DovecotServer

from daemon.adapters.imap import fetchreader
from daemon.adapters.imap.connection import DEFAULT_HEADER_FIELDS, ImapConnection, header_fields_item
from daemon.core.model import ImapSettings

SECTION = b"BODY[HEADER.FIELDS (MESSAGE-ID FROM SUBJECT)]"


def answer(seq: int, uid: int, date: bytes = b"07-Dec-2026 05:33:24 +0000", size: int = 51,
           literal: bytes = b"From: a@b\r\nSubject: hi\r\n\r\n", section: bytes = SECTION) -> list:
    head = b'%d (UID %d INTERNALDATE "%s" RFC822.SIZE %d %s {%d}' % (seq, uid, date, size, section, len(literal))
    return [(head, literal), b")"]


def whole(seq: int, uid: int, size: int = 26, literal: bytes = b"From: a@b\r\n\r\nhello body\r\n",
          section: bytes = b"BODY[]<0>") -> list:
    return [(b"%d (UID %d RFC822.SIZE %d %s {%d}" % (seq, uid, size, section, len(literal)), literal), b")"]


def imapclients(data: list) -> dict:
    return dict(parse_fetch_response(data, False, True))


def utc(value: dict) -> dict:
    """INTERNALDATE in UTC (imapclient's FixedOffset and datetime.timezone compare equal anyway)."""
    return {k: (v if not isinstance(v, datetime) else (v, v.utcoffset())) for k, v in value.items()}


FAST = [
    answer(1, 1),
    answer(1, 1) + answer(2, 7, date=b" 7-Jan-2026 23:59:59 -0130", size=0, literal=b""),
    answer(3, 9, date=b"29-Feb-2024 00:00:00 +1400"),
    answer(4, 10, date=b"01-Mar-2026 10:00:00 -0000"),  # zone unknown: UTC from both
    answer(5, 11, literal=b"From: a@b\r\nX: \x00\xff binary\r\n\r\n"),
    whole(1, 1),
    whole(1, 1) + whole(2, 5, size=0, literal=b"") + whole(3, 8, literal=b"x\r\n(\x00\xff) {3}\r\n)"),
    whole(4, 12, section=b"BODY[]"),
    whole(4, 12, section=b"BODY[]<12>"),
    whole(6, 13, size=99_000_000),  # cut by the partial fetch: the size is the message's
    answer(1, 1) + whole(2, 2),
]
SLOW = [
    [(b'1 (UID 1 RFC822.SIZE 51 INTERNALDATE "07-Dec-2026 05:33:24 +0000" ' + SECTION + b" {4}", b"x\r\n\r"), b")"],
    [(b'1 (UID 1 INTERNALDATE "07-Dec-2026 05:33:24 +0000" RFC822.SIZE 51 FLAGS (\\Seen) ' + SECTION + b" {4}",
      b"x\r\n\r"), b")"],
    [b'1 (UID 1 INTERNALDATE "07-Dec-2026 05:33:24 +0000" RFC822.SIZE 51 ' + SECTION + b' "")'],
    [b'1 (UID 1 INTERNALDATE "07-Dec-2026 05:33:24 +0000" RFC822.SIZE 51 ' + SECTION + b" NIL)"],
    answer(1, 1) + [b"2 (FLAGS (\\Seen))"],
    answer(1, 1) + answer(2, 1),
    answer(1, 1, date=b"31-Feb-2026 05:33:24 +0000"),
    answer(1, 1, date=b"07-Foo-2026 05:33:24 +0000"),
    answer(1, 1, section=b'BODY[HEADER.FIELDS ("FROM")]'),
    [(b'1 (UID 1 INTERNALDATE "07-Dec-2026 05:33:24 +0000" RFC822.SIZE 51 ' + SECTION + b" {9}", b"short"), b")"],
    [None],
    [],
    [(b"1 (RFC822.SIZE 26 UID 1 BODY[]<0> {3}", b"x\r\n"), b")"],
    [(b"1 (UID 1 BODY[]<0> {3} RFC822.SIZE 26", b"x\r\n"), b")"],
    [(b"1 (UID 1 RFC822.SIZE 26 FLAGS (\\Seen) BODY[]<0> {3}", b"x\r\n"), b")"],
    [b"1 (UID 1 RFC822.SIZE 26 BODY[]<0> NIL)"],
    [b'1 (UID 1 RFC822.SIZE 26 BODY[]<0> "x")'],
    [(b"1 (UID 1 RFC822.SIZE 26 BODY[TEXT]<0> {3}", b"x\r\n"), b")"],
    [(b"1 (UID 1 RFC822.SIZE 26 BODY[]<0> {9}", b"short"), b")"],
    whole(1, 1) + whole(2, 1),
    whole(1, 1) + answer(2, 1),
    whole(1, 1) + [b"2 (FLAGS (\\Seen))"],
]


@pytest.mark.parametrize("data", FAST)
def test_answers_of_the_shape_read_as_imapclient_reads_them(data: list) -> None:
    fast = fetchreader.read_answer(data)
    assert fast is not None
    want = imapclients(data)
    assert {uid: utc(v) for uid, v in fast.items()} == {uid: utc(v) for uid, v in want.items()}


@pytest.mark.parametrize("data", SLOW)
def test_other_answers_are_left_to_imapclient(data: list) -> None:
    assert fetchreader.read_answer(data) is None


def settings_for(server: DovecotServer) -> ImapSettings:
    return ImapSettings(host=server.host, port=server.port, security="none", username=server.user,
                        connect_timeout=5.0, read_timeout=10.0)


@pytest.mark.integration
def test_a_real_servers_headers_read_the_same_both_ways(dovecot: DovecotServer, monkeypatch) -> None:
    raws = [b"From: a@b.example\r\nSubject: one\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n",
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\nReferences: <a@b>\r\n <c@d>\r\n\r\n",
            b"X-Nothing-Fetched: here\r\n\r\nonly a body\r\n"]
    for raw in raws:
        dovecot.append("INBOX", raw)
    items = [header_fields_item(DEFAULT_HEADER_FIELDS), "INTERNALDATE", "RFC822.SIZE"]
    with ImapConnection(settings_for(dovecot), dovecot.password) as connection:
        connection.select("INBOX")
        client = connection._client
        assert isinstance(client, imapclient.IMAPClient)
        fast = fetchreader.fetch(client, [1, 2, 3, 99], items)
        slow = client.fetch([1, 2, 3, 99], items)
        assert {uid: utc(v) for uid, v in fast.items()} == {uid: utc(v) for uid, v in slow.items()}
        assert sorted(fast) == [1, 2, 3]
        read = connection.fetch_headers([1, 2, 3])
        monkeypatch.setattr(fetchreader, "read_answer", lambda data: None)  # imapclient's parser only
        assert connection.fetch_headers([1, 2, 3]) == read
    assert [h.header.startswith(b"From: a@b.example") for h in read] == [True, False, False]
    assert all(h.internaldate.tzinfo == UTC for h in read)


@pytest.mark.integration
def test_a_real_servers_messages_read_the_same_both_ways(dovecot: DovecotServer, monkeypatch) -> None:
    """fetch_messages (the bodies a backfill reads) goes through the narrow reader, and gets what
    imapclient's parser gets, a message cut at max_bytes included."""
    raws = [b"From: a@b.example\r\nSubject: one\r\nMessage-ID: <1@b>\r\n\r\nbody (with) {parens}\r\n",
            b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\n" + "caf\u00e9 \u2014 ".encode() * 50 + b"\r\n",
            b"X-Empty: body\r\n\r\n"]
    for raw in raws:
        dovecot.append("INBOX", raw)
    with ImapConnection(settings_for(dovecot), dovecot.password) as connection:
        connection.select("INBOX")
        client = connection._client
        assert isinstance(client, imapclient.IMAPClient)
        items = ["BODY.PEEK[]<0.10000000>", "RFC822.SIZE"]
        fast = fetchreader.fetch(client, [1, 2, 3, 99], items)
        assert fast == client.fetch([1, 2, 3, 99], items) and sorted(fast) == [1, 2, 3]
        # The narrow reader alone reads what fetch_messages asks: imapclient's parser is never called.
        monkeypatch.setattr(fetchreader, "parse_fetch_response", None)
        monkeypatch.setattr(imapclient.imapclient, "parse_fetch_response", None)
        sizes = {1: 80, 2: 600, 3: 20, 99: 10}  # one FETCH command for the four
        read = connection.fetch_messages([1, 2, 3, 99], sizes=sizes)
        cut = connection.fetch_messages([2], max_bytes=60)
        monkeypatch.setattr(fetchreader, "read_answer", lambda data: None)
        monkeypatch.setattr(fetchreader, "parse_fetch_response", parse_fetch_response)
        monkeypatch.setattr(imapclient.imapclient, "parse_fetch_response", parse_fetch_response)
        assert connection.fetch_messages([1, 2, 3, 99], sizes=sizes) == read
        assert connection.fetch_messages([2], max_bytes=60) == cut
    assert [read[uid] for uid in (1, 2, 3)] == raws
    assert cut[2] == raws[1][:raws[1][:60].rfind(b"\n") + 1]
