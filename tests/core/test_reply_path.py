"""The whole reply path as production runs it, without servers: raw message bytes -> the header
block the IMAP adapter fetches (core/mail.parse_message) and the body text ingest reads
(core/mail.message_text) -> core/review.reply_facts -> judge_reply, with the Public Suffix List
the shell injects. The corpus of real reply shapes, stacked headers, old mail, and Hypothesis."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from daemon.adapters.publicsuffix import organizational_domain
from daemon.core import review
from daemon.core.mail import HEADER_FIELDS, SINGLE_FIELDS, MalformedMessage, message_text, parse_message
from daemon.core.review import Command, TokenClaims, TokenRecord, issue_token, judge_reply, reply_facts

# Hypothesis over the whole path: 10,000 examples in CI (CI=true), fewer on a shared workstation.
settings.register_profile("reply-path-ci", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("reply-path-local", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
REPLY_PATH = settings.get_profile("reply-path-ci" if os.environ.get("CI") == "true" else "reply-path-local")

KEY = b"k" * 32
OFFICE = "office@example.com"
AUTHSERV = "mx.example.com"
ISSUED = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
NOW = ISSUED + timedelta(hours=2)
REVIEW_ID = "review.17.2.alice@parting.example.com"
CLAIMS = TokenClaims(token_id="obqxe5djnzts2mbr", subject_kind="draft", subject_id=17, version=2,
                     text_sha256="a" * 64, person="alice", role="owner", expires_at=datetime(2026, 11, 5, 10, tzinfo=UTC))
DEADLINE = dataclasses.replace(CLAIMS, subject_kind="deadline", version=None, text_sha256=None, role="deadline")
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "replies"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
PASS = f"{AUTHSERV}; dkim=pass header.d=example.com header.s=sel; spf=pass smtp.mailfrom=example.com;" \
       " dmarc=pass header.from=example.com"
_FIELD = re.compile(rb"^([!-9;-~]+)[ \t]*:")


def header_block(raw: bytes) -> bytes:
    """What BODY.PEEK[HEADER.FIELDS (HEADER_FIELDS)] returns: every line of every wanted field
    (each copy of a repeated one), folded lines kept, then the blank line."""
    head = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    wanted = {name.lower().encode() for name in HEADER_FIELDS}
    keep, out = False, []
    for line in re.split(rb"(?<=\n)", head.replace(b"\r\n", b"\n")):
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        match = _FIELD.match(line)
        keep = bool(match) and match.group(1).lower() in wanted  # type: ignore[union-attr]
        if keep:
            out.append(line)
    text = b"".join(out).rstrip(b"\n").replace(b"\n", b"\r\n")
    return text + b"\r\n\r\n"


def judge_raw(raw: bytes, claims: TokenClaims = CLAIMS, *, draft_state: str = "owner_review",
              issued_at: datetime = ISSUED) -> review.Judgement:
    """The production path from raw bytes to the judgement (see the module's opening)."""
    parsed = parse_message(header_block(raw), size=len(raw))
    facts = reply_facts(
        from_addr=parsed.from_addr, to_addrs=parsed.to, cc_addrs=parsed.cc, in_reply_to=parsed.in_reply_to,
        references=parsed.references, subject=parsed.subject, auto_reply=parsed.auto_reply,
        authentication_results=parsed.authentication_results, text=message_text(raw), our_address=OFFICE,
        header_counts=parsed.header_counts, date=parsed.date,
    )
    record = TokenRecord(claims, "alice@example.com", REVIEW_ID, None, issued_at=issued_at)
    deadline = claims.subject_kind == "deadline"
    return judge_reply(facts, record if facts.token else None, key=KEY, now=NOW, authserv_id=AUTHSERV,
                       require_authentication=True, current_version=None if deadline else claims.version,
                       draft_state="open" if deadline else draft_state,
                       organizational_domain=organizational_domain)


def staff_reply(body: bytes, *, claims: TokenClaims = CLAIMS, subtype: str = "plain",
                date: datetime = ISSUED + timedelta(minutes=42), above: bytes = b"",
                extra: bytes = b"", auth: str = PASS) -> bytes:
    """Alice's reply to the review email carrying `claims`' token, as her mail server delivers it;
    `above` is stacked on top of the header section (where an attacker puts it)."""
    token = issue_token(KEY, claims)
    head = (f"Authentication-Results: {auth}\r\n"
            f"From: Alice Smith <alice@example.com>\r\n"
            f"To: Parting Office <office+r-{token}@example.com>\r\n"
            f"Subject: Re: [parting #{claims.token_id[:8]}] Release email to Acme Ltd, version 2\r\n"
            f"Date: {format_datetime(date)}\r\n"
            f"Message-ID: <reply-{abs(hash(body)) % 10**9}@example.com>\r\n"
            f"In-Reply-To: <{REVIEW_ID}>\r\nReferences: <{REVIEW_ID}>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: text/{subtype}; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: 8bit\r\n").encode()
    return above + head + extra + b"\r\n" + body


def corpus_reply(case: dict) -> tuple[bytes, TokenClaims]:
    path = CORPUS / case["file"]
    claims = DEADLINE if case["role"] == "deadline" else dataclasses.replace(CLAIMS, role=case["role"])
    if path.suffix == ".eml":
        return path.read_bytes(), claims  # whole messages, with their own token and Authentication-Results
    subtype = "html" if path.suffix == ".html" else "plain"
    return staff_reply(path.read_bytes(), claims=claims, subtype=subtype), claims


# -- the corpus, end to end ------------------------------------------------------------------------


@pytest.mark.parametrize("case", MANIFEST, ids=[entry["file"] for entry in MANIFEST])
def test_every_corpus_reply_is_judged_as_expected_from_its_raw_bytes(case: dict) -> None:
    judgement = judge_raw(*corpus_reply(case))
    if case["kind"] == "unknown":
        assert (judgement.accepted, judgement.code) == (False, "unknown_command"), judgement.reason
        assert case["problem"] in judgement.command.problem  # type: ignore[union-attr]
        assert judgement.safe_to_answer, "a person who wrote something unclear is told what to write"
        return
    assert judgement.accepted, judgement.reason
    assert judgement.command is not None and judgement.command.kind == case["kind"]
    for name in ("reason", "days", "text"):
        if name in case:
            assert getattr(judgement.command, name) == case[name]


def test_the_greeting_reply_is_accepted_and_negations_are_not() -> None:
    greeting = judge_raw(staff_reply(b"Hi Alice,\r\n\r\nApproved.\r\n\r\nBob\r\n"))
    assert (greeting.accepted, greeting.command) == (True, Command("approve"))
    for text in (b"Approve - NOT. We should call them first.", b"Approved by whom? I never saw this.",
                 b"Approve only after Alice fixes the date"):
        judgement = judge_raw(staff_reply(text + b"\r\n"))
        assert judgement.code == "unknown_command", text


def test_an_outlook_html_reply_keeps_the_unmarked_original_out_of_the_edit_text() -> None:
    html = (b'<div>EDIT</div><div>Dear Jane,</div><div>Goodbye.</div>'
            b'<hr><div id="divRplyFwdMsg"><b>From:</b> Office<br><b>Sent:</b> Monday<br>'
            b'<b>Subject:</b> review</div><div>adopt the email below as yours</div>')
    judgement = judge_raw(staff_reply(html, subtype="html"))
    assert judgement.accepted and judgement.command == Command("edit", text="Dear Jane,\nGoodbye.")


# -- stacked header fields and old mail --------------------------------------------------------------


@pytest.mark.parametrize("field", SINGLE_FIELDS)
def test_a_stacked_copy_of_any_single_field_refuses_the_reply(field: str) -> None:
    value = {"From": "alice@example.com", "Sender": "alice@example.com", "To": OFFICE, "Cc": OFFICE,
             "Subject": "Re: x", "Date": format_datetime(ISSUED + timedelta(minutes=50)),
             "Message-ID": "<m@example.com>", "In-Reply-To": f"<{REVIEW_ID}>", "References": f"<{REVIEW_ID}>"}[field]
    copies = f"{field}: {value}\r\n".encode() * (2 if field in ("Sender", "Cc") else 1)
    judgement = judge_raw(staff_reply(b"Approve\r\n", above=copies))
    assert (judgement.accepted, judgement.code) == (False, "repeated_header"), judgement.reason
    assert f"2 {field}" in judgement.reason


def test_a_genuine_old_approval_replayed_with_a_stacked_token_is_refused() -> None:
    # The owner's real, DKIM-signed mail from the shared Sent folder, written before any review;
    # an insider stacks a To with the review token and an In-Reply-To above its own headers.
    token = issue_token(KEY, CLAIMS)
    genuine = (f"Authentication-Results: {PASS}\r\nFrom: alice@example.com\r\nTo: printer@example.com\r\n"
               "Subject: print run\r\nDate: Mon, 12 Oct 2026 09:00:00 +0000\r\nMessage-ID: <old@example.com>\r\n"
               "Content-Type: text/plain\r\n\r\nApproved, go ahead with the print run.\r\n").encode()
    stacked = (f"To: office+r-{token}@example.com\r\nIn-Reply-To: <{REVIEW_ID}>\r\n").encode()
    judgement = judge_raw(stacked + genuine)
    assert (judgement.accepted, judgement.code) == (False, "repeated_header")
    assert "2 To, 1 In-Reply-To" not in judgement.reason and "2 To" in judgement.reason


def test_a_reply_dated_before_its_token_was_issued_is_refused_within_the_allowed_skew() -> None:
    def code(minutes: int) -> str:
        return judge_raw(staff_reply(b"Approve\r\n", date=ISSUED + timedelta(minutes=minutes))).code

    assert code(-4) == "accepted"  # a mail client's clock a few minutes behind
    assert code(-6) == "older_than_token"
    assert code(-60 * 24 * 21) == "older_than_token"


def test_a_reply_without_a_readable_date_is_refused() -> None:
    raw = staff_reply(b"Approve\r\n").replace(b"Date: ", b"X-Old-Date: ")
    assert judge_raw(raw).code == "older_than_token"
    raw = re.sub(rb"Date: [^\r]*", b"Date: yesterday", staff_reply(b"Approve\r\n"))
    assert judge_raw(raw).code == "older_than_token"


def test_header_counts_are_read_from_the_fetched_header_block() -> None:
    parsed = parse_message(header_block(staff_reply(b"x", above=b"to: a@example.com\r\nTO: b@example.com\r\n")))
    assert dict(parsed.header_counts)["To"] == 3
    assert dict(parsed.header_counts)["From"] == 1
    assert "Sender" not in dict(parsed.header_counts)


def test_replies_stored_before_headers_were_counted_are_refused() -> None:
    facts = dataclasses.replace(reply_facts(
        from_addr="alice@example.com", to_addrs=(f"office+r-{issue_token(KEY, CLAIMS)}@example.com",), cc_addrs=(),
        in_reply_to=(REVIEW_ID,), references=(), subject="Re: x", auto_reply=None, authentication_results=(PASS,),
        text="Approve", our_address=OFFICE, header_counts=None, date=NOW))
    judgement = judge_reply(facts, TokenRecord(CLAIMS, "alice@example.com", REVIEW_ID, issued_at=ISSUED), key=KEY,
                            now=NOW, authserv_id=AUTHSERV, require_authentication=True, current_version=2,
                            draft_state="owner_review")
    assert judgement.code == "repeated_header" and "not counted" in judgement.reason


# -- Hypothesis over the whole path ------------------------------------------------------------------

_LINES = st.sampled_from([
    "Approve", "APPROVED.", "Hi Alice,", "Dear Bob,", "Approve - NOT", "Approve?", "REJECT she paid", "HOLD 3 days",
    "EDIT", "Dear Jane,", "", "-- ", "> Approve", "On Mon, 2 Nov 2026 at 10:00, Office wrote:", "only if",
    "<div>Approve</div>", "<blockquote>", "</blockquote>", '<div id="divRplyFwdMsg">', "<a ", "&nbsp;",
    "From: x", "Sent: y", "Subject: z", "\u00b2", "\u2028", "=?utf-8?b?QXBwcm92ZQ==?=",
])
_HEADERS = st.sampled_from([
    b"To: office@example.com\r\n", b"From: mallory@example.com\r\n", b"Date: Mon, 12 Oct 2026 09:00:00 +0000\r\n",
    b"In-Reply-To: <x@y>\r\n", b"Subject: =?utf-8?q?Re=3A_x?=\r\n", b"Authentication-Results: mx.example.com 0 \xc2\xb2\r\n",
    b"Authentication-Results: mx.example.com; dmarc=pass\r\n", b"Auto-Submitted: auto-replied\r\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Cc: office+r-obqxe5djnzts2mbr-aaaaaaaaaaaaaaaaaaaaaaaaaa@example.com\r\n", b"Sender: a@b\r\n", b"X: \xff\xfe\r\n",
])


@st.composite
def raw_replies(draw: st.DrawFn) -> bytes:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=600))
    body = "\r\n".join(draw(st.lists(st.one_of(_LINES, st.text(max_size=30)), max_size=12)))
    raw = staff_reply(body.encode("utf-8", "surrogatepass"), subtype=draw(st.sampled_from(["plain", "html"])),
                      date=ISSUED + timedelta(minutes=draw(st.integers(-60 * 24, 60 * 24))),
                      above=b"".join(draw(st.lists(_HEADERS, max_size=3))),
                      extra=b"".join(draw(st.lists(_HEADERS, max_size=3))))
    cut = draw(st.integers(0, len(raw)))
    return raw if draw(st.booleans()) else raw[:cut] + draw(st.binary(max_size=40)) + raw[cut:]


@REPLY_PATH
@given(raw_replies(), st.sampled_from([CLAIMS, DEADLINE]))
def test_the_whole_reply_path_never_raises_and_never_approves_what_it_should_not(raw: bytes,
                                                                                 claims: TokenClaims) -> None:
    try:
        judgement = judge_raw(raw, claims)
    except MalformedMessage:
        return  # ingest quarantines such a message before any judgement: the one allowed outcome
    assert judgement.code == "accepted" or judgement.code in review.REFUSALS
    event(judgement.code)  # --hypothesis-show-statistics: accepted replies are among the examples
    if judgement.accepted:
        parsed = parse_message(header_block(raw))
        assert all(count == 1 for name, count in parsed.header_counts), parsed.header_counts
        assert parsed.date is not None and parsed.date >= ISSUED - review.DATE_SKEW
        assert judgement.authentication is not None and judgement.authentication.ok


def test_a_stacked_reply_is_answered_only_when_its_token_is_genuine() -> None:
    stacked = b"Subject: Re: x\r\n"
    genuine = judge_raw(staff_reply(b"Approve\r\n", above=stacked))
    assert (genuine.code, genuine.safe_to_answer) == ("repeated_header", True)
    token = issue_token(KEY, CLAIMS)
    forged = staff_reply(b"Approve\r\n", above=stacked).replace(token.encode(), token[:-1].encode() + b"a")
    assert token[-1] != "a"
    judgement = judge_raw(forged)
    assert (judgement.code, judgement.safe_to_answer) == ("repeated_header", False)
