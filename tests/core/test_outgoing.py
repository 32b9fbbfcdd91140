"""Outgoing messages: header injection refused, exact round-trips, deterministic ids, threading."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.parser import BytesParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.outgoing import (
    MAX_REFERENCES,
    HeaderInjection,
    InvalidAddress,
    build_message,
    check_header_value,
    make_message_id,
    thread_headers,
)

WHEN = datetime(2026, 3, 3, 10, 12, 5, tzinfo=UTC)
RELEASE_ID = make_message_id("release", "draft:17:v2", "example.com")


def parse(raw: bytes):
    return BytesParser(policy=policy.default).parsebytes(raw)


def message(**overrides) -> bytes:
    fields = dict(
        from_addr="office@example.com",
        from_name="Alice Smith",
        to=[("Jane Doe", "jane@acme.example")],
        subject="Our work together",
        body="Dear Jane,\n\nThank you.\n",
        message_id=RELEASE_ID,
        date=WHEN,
        auto_submitted=False,
        kind="release",
    )
    fields.update(overrides)
    return build_message(**fields)


# -- check_header_value -----------------------------------------------------------------------

REFUSED = [
    ("CR", "Hello\rBcc: x@evil.example"),
    ("LF", "Hello\nBcc: x@evil.example"),
    ("CRLF", "Hello\r\nBcc: x@evil.example"),
    ("NUL", "Hello\x00"),
    ("vertical tab", "Hello\x0bthere"),
    ("escape", "Hello\x1b[31m"),
    ("DEL", "Hello\x7f"),
    ("NEL", "Hello\x85Bcc: x"),
    ("line separator", "Hello\u2028Bcc: x"),
    ("paragraph separator", "Hello\u2029Bcc: x"),
    ("Q word to LF", "=?UTF-8?Q?=0A?="),
    ("Q word hiding a header", "Hi =?utf-8?q?there=0D=0ABcc:_x@evil.example?="),
    ("Q word to CR", "=?UTF-8?Q?a=0Db?="),
    ("B word to LF", "=?UTF-8?B?aGkKQmNjOiB4?="),  # "hi\nBcc: x"
    ("B word to CR", "=?utf-8?b?DQ==?="),
    ("B word without padding", "=?utf-8?b?aGkKQmNjOiB4QA?="),
    ("latin-1 Q word to LF", "=?iso-8859-1?q?x=0Ay?="),
    ("unknown charset to LF", "=?x-nonsense?q?x=0Ay?="),
    ("language suffix", "=?utf-8*en?q?x=0Ay?="),
    ("Q word to U+2028", "=?utf-8?q?=E2=80=A8?="),
]


@pytest.mark.parametrize("label,value", REFUSED, ids=[label for label, _ in REFUSED])
def test_unsafe_header_values_are_refused_naming_the_header(label: str, value: str) -> None:
    with pytest.raises(HeaderInjection, match="Subject"):
        check_header_value("Subject", value)


ACCEPTED = [
    "Our work together",
    "Grüße aus München — café, naïve, 東京",
    "tab\tinside is fine",
    "=?UTF-8?Q?caf=C3=A9?= encoded but harmless",
    "=?utf-8?b?w6k=?=",
    "Price: 100 = ?",
    "word " * 400,  # long subjects are folded by the email package, not refused
    "",
]


@pytest.mark.parametrize("value", ACCEPTED)
def test_safe_header_values_pass_unchanged(value: str) -> None:
    assert check_header_value("Subject", value) == value


def test_cve_2024_6923_payload_does_not_reach_the_wire() -> None:
    with pytest.raises(HeaderInjection):
        message(subject="=?UTF-8?Q?hi=0ABcc:_x@evil.example?=")


# -- build_message ----------------------------------------------------------------------------


def test_round_trip_keeps_headers_and_body_exact() -> None:
    body = "Dear Jane,\n\nThank you for the work — and the café.\n\nAlice Smith\n"
    raw = message(
        body=body,
        subject="Our work together: Grüße",
        cc=["bob@example.com"],
        reply_to=[("Alice Smith", "alice@example.com")],
        extra_headers={"X-Parting-Draft": "17"},
    )
    parsed = parse(raw)
    assert parsed["From"] == "Alice Smith <office@example.com>"
    assert parsed["To"] == "Jane Doe <jane@acme.example>"
    assert parsed["Cc"] == "bob@example.com"
    assert parsed["Reply-To"] == "Alice Smith <alice@example.com>"
    assert parsed["Subject"] == "Our work together: Grüße"
    assert parsed["Message-ID"] == RELEASE_ID
    assert parsed["Date"] == "Tue, 03 Mar 2026 10:12:05 +0000"
    assert parsed["X-Parting-Kind"] == "release"
    assert parsed["X-Parting-Draft"] == "17"
    assert parsed["Auto-Submitted"] is None
    assert parsed["Bcc"] is None
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.get_content().replace("\r\n", "\n") == body


def test_wire_form_is_crlf_with_short_lines() -> None:
    raw = message(body="x" * 5000 + "\n", subject="word " * 400)
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert parse(raw).get_content().replace("\r\n", "\n") == "x" * 5000 + "\n"


def test_ascii_body_goes_as_7bit() -> None:
    parsed = parse(message(body="Plain text only.\n"))
    assert parsed["Content-Transfer-Encoding"] == "7bit"


def test_auto_submitted_marks_review_mail_only_when_asked() -> None:
    review = parse(message(kind="review", auto_submitted=True))
    assert review["Auto-Submitted"] == "auto-generated"
    assert review["X-Parting-Kind"] == "review"
    assert parse(message(kind="nudge"))["Auto-Submitted"] is None


def test_threading_headers_are_written() -> None:
    parsed = parse(message(in_reply_to="<last@acme.example>",
                           references=["root@example.com", "<last@acme.example>"]))
    assert parsed["In-Reply-To"] == "<last@acme.example>"
    assert parsed["References"].split() == ["<root@example.com>", "<last@acme.example>"]


def test_date_keeps_its_offset() -> None:
    paris = timezone(timedelta(hours=1))
    assert parse(message(date=WHEN.astimezone(paris)))["Date"] == "Tue, 03 Mar 2026 11:12:05 +0100"


@pytest.mark.parametrize("field,value", [
    ("from_name", "Acme\r\nBcc: x@evil.example"),
    ("from_name", "Acme =?utf-8?q?=0ABcc:_x@evil.example?="),
    ("to", [("Jane\nBcc: x@evil.example", "jane@acme.example")]),
    ("subject", "Hello\r\nBcc: x@evil.example"),
    ("subject", "Hello\u2028Bcc: x@evil.example"),
    ("extra_headers", {"X-Note": "a\r\nBcc: x@evil.example"}),
    ("extra_headers", {"X-Bad\r\nBcc": "x"}),
    ("extra_headers", {"Bcc": "x@evil.example"}),
    ("extra_headers", {"subject": "a second subject"}),
    ("in_reply_to", "<a@b>\r\nBcc: x@evil.example"),
    ("references", ["<a@b> <c@d>"]),
    ("message_id", "<no at sign>"),
])
def test_injection_is_refused_and_nothing_is_returned(field: str, value) -> None:
    with pytest.raises(HeaderInjection):
        message(**{field: value})


@pytest.mark.parametrize("address", [
    "jane", "jane@@acme.example", "jane@acme.example\r\nBcc: x", "jane doe@acme.example",
    "<jane@acme.example>", "jané@acme.example", "jane@acme.example,x@evil.example", "",
])
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises((InvalidAddress, HeaderInjection)):
        message(to=[address])


def test_a_message_needs_a_recipient_and_an_aware_date() -> None:
    with pytest.raises(InvalidAddress):
        message(to=[])
    with pytest.raises(ValueError, match="timezone"):
        message(date=datetime(2026, 3, 3, 10, 0))
    with pytest.raises(TypeError):
        message(to="jane@acme.example")


def test_a_nul_in_the_body_is_refused() -> None:
    with pytest.raises(ValueError, match="NUL"):
        message(body="a\x00b")


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=300))
def test_any_printable_subject_round_trips(subject: str) -> None:
    parsed = parse(message(subject=subject))
    # The email package drops leading/trailing folding whitespace; the words survive exactly.
    assert parsed["Subject"].split() == subject.split()


@given(st.text(st.characters(blacklist_characters="\x00\r", blacklist_categories=("Cs",)),
               max_size=500))
def test_any_body_round_trips(body: str) -> None:
    raw = message(body=body)
    expected = body if body.endswith("\n") else body + "\n"
    assert parse(raw).get_content().replace("\r\n", "\n") == expected
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


# -- make_message_id --------------------------------------------------------------------------


def test_message_ids_are_deterministic_and_distinct_per_decision() -> None:
    first = make_message_id("release", "draft:17:v2", "example.com")
    assert first == make_message_id("release", "draft:17:v2", "example.com")
    assert first.startswith("<parting.release.") and first.endswith("@example.com>")
    assert len(first.split(".")[2].split("@")[0]) == 24
    assert first != make_message_id("release", "draft:17:v3", "example.com")
    assert first != make_message_id("nudge", "draft:17:v2", "example.com")


@pytest.mark.parametrize("kind,domain", [("Release", "example.com"), ("a b", "example.com"),
                                         ("release", "exa mple.com"), ("release", "x>\r\n")])
def test_message_id_parts_are_validated(kind: str, domain: str) -> None:
    with pytest.raises(ValueError):
        make_message_id(kind, "key", domain)


# -- thread_headers ---------------------------------------------------------------------------


def test_thread_headers_reply_under_the_newest_message() -> None:
    in_reply_to, references = thread_headers([
        ("old@acme.example", []),
        ("<last@example.com>", ["<root@example.com>", "mid@acme.example"]),
    ])
    assert in_reply_to == "<last@example.com>"
    assert references == ("<root@example.com>", "<mid@acme.example>", "<last@example.com>")


def test_thread_headers_trim_keeping_the_root() -> None:
    chain = [f"<m{i}@example.com>" for i in range(40)]
    _, references = thread_headers([("<new@example.com>", chain)])
    assert len(references) == MAX_REFERENCES
    assert references[0] == "<m0@example.com>"
    assert references[-2:] == ("<m39@example.com>", "<new@example.com>")


def test_thread_headers_skip_malformed_ids_and_repeats() -> None:
    in_reply_to, references = thread_headers([
        ("<p@example.com>", ["<a@b>", "not an id", "<a@b>", "<x\r\n@evil>", "<p@example.com>"]),
    ])
    assert in_reply_to == "<p@example.com>"
    assert references == ("<a@b>", "<p@example.com>")


def test_no_previous_messages_means_no_threading() -> None:
    assert thread_headers([]) == (None, ())


def test_thread_headers_feed_build_message() -> None:
    in_reply_to, references = thread_headers([("<last@acme.example>", ["<root@example.com>"])])
    parsed = parse(message(in_reply_to=in_reply_to, references=references))
    assert parsed["In-Reply-To"] == "<last@acme.example>"
    assert parsed["References"].split() == ["<root@example.com>", "<last@acme.example>"]


@pytest.mark.parametrize("length", [60, 200, 900])
def test_identifiers_are_folded_between_ids_and_never_encoded_words(length: int) -> None:
    long_id = "<" + "a" * length + "@x.example>"
    chain = [f"<ref{n}.{'b' * 40}@x.example>" for n in range(12)] + [long_id]
    raw = build_message(from_addr="office@example.com", from_name="Example Ltd", to=["jane@acme.example"],
                        subject="Re: Signed form 3?", body="Dear Jane\n", message_id="<m1@example.com>",
                        date=datetime(2026, 11, 2, 10, 0, tzinfo=UTC), auto_submitted=False,
                        in_reply_to=long_id, references=chain)
    head = raw.split(b"\r\n\r\n")[0]
    assert b"=?" not in head
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert str(parsed["In-Reply-To"]) == long_id
    assert str(parsed["References"]).split() == chain
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))


def test_an_id_too_long_for_any_line_is_dropped_not_encoded() -> None:
    huge = "<" + "x" * 3000 + "@x.example>"
    raw = build_message(from_addr="office@example.com", from_name="Example Ltd", to=["jane@acme.example"],
                        subject="s", body="b\n", message_id="<m1@example.com>",
                        date=datetime(2026, 11, 2, 10, 0, tzinfo=UTC), auto_submitted=False,
                        in_reply_to=huge, references=["<r1@x.example>", huge])
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert parsed["In-Reply-To"] is None and str(parsed["References"]) == "<r1@x.example>"
    assert thread_headers([(huge, ["<r1@x.example>"])]) == (None, ("<r1@x.example>",))
