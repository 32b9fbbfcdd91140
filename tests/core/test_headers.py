"""core/headers.py splits a header block exactly as the standard library's compat32 parser does,
or declines (None) and leaves it to that parser: on the malformed corpus, on realistic mail, and
on random blocks built from plain and hostile lines."""

from __future__ import annotations

import email.policy
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.headers import split_header_block
from daemon.core.mail import MalformedMessage, _checked, parse_message

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "malformed"


def standard(head: bytes) -> list[tuple[str, str]]:
    return list(BytesHeaderParser(policy=email.policy.compat32).parsebytes(head).raw_items())


def head_of(raw: bytes) -> bytes | None:
    try:
        return _checked(raw)[0] + b"\n"  # what core/mail.py hands to either reader
    except MalformedMessage:
        return None


def realistic() -> list[bytes]:
    import sys

    sys.path.insert(0, str(CORPUS.parent.parent))
    from mailfactory import bounce, out_of_office, outlook_reply, request

    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return [request("jane@acme.example", "Lease", when, "r1")[0],
            out_of_office("jane@acme.example", "<a@b>", "Lease", when, "o1")[0],
            outlook_reply("bill@initech.example", "TPS", when, "t1", bytes(22))[0],
            bounce("x@y.example", "<a@b>", when, "b1")[0]]


def test_the_corpora_split_as_the_standard_library_splits_them() -> None:
    plain = 0
    for raw in [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))] + realistic():
        head = head_of(raw)
        if head is None:
            continue
        got = split_header_block(head)
        if got is not None:
            plain += 1
            assert got == standard(head), raw[:80]
    assert plain >= 10  # the fast path is taken, not only declined


LINES = [b"Subject: hello", b"Subject:", b"X-A:  two  spaces ", b"  folded", b"\tfolded tab", b"From a@b", b"From: a@b",
         b": no name", b"no colon here", b"Na me: v", b"\xc3\xa9t\xc3\xa9: x", b"To: =?utf-8?q?caf=C3=A9?= <a@b>",
         b"References: <a@b>", b"\x7f: del", b"", b"X:\ttab"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(LINES), min_size=1, max_size=8), st.sampled_from([b"\r\n", b"\n", b"\r"]),
       st.sampled_from([b"\r\n\r\nbody", b"\n\nbody", b"", b"\r\n", b"\n"]))
def test_random_blocks_split_as_the_standard_library_splits_them(lines, newline, end) -> None:
    head = head_of(newline.join(lines) + end)
    if head is None:
        return
    got = split_header_block(head)
    if got is not None:
        assert got == standard(head)


def test_a_message_reads_the_same_whichever_reader_split_it(monkeypatch) -> None:
    import daemon.core.mail as mail

    for raw in realistic():
        fast = parse_message(raw)
        monkeypatch.setattr(mail, "split_header_block", lambda head: None)
        assert parse_message(raw) == fast
        monkeypatch.undo()


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from([b"\r\n", b"\n", b"\r", b"\r\r", b"\r\n\r\n", b"\n\n", b"a", b"B: c", b" ",
                                 b"\x00"]), max_size=30))
def test_the_header_section_ends_where_the_standard_expression_says(pieces: list[bytes]) -> None:
    # _checked's find-based shortcut for plain CRLF mail must give the expression's first match
    # on every mix of line breaks, including the ones it leaves to the expression.
    import re

    from daemon.core.mail import _separator

    data = b"".join(pieces)
    found = re.search(rb"\r?\n\r?\n|\r\r", data)
    assert _separator(data) == ((found.start(), found.end()) if found else (-1, -1))
