"""Malformed mail in a live mailbox: the quarantine corpus (tests/corpus/malformed) and messages
Hypothesis makes up (random header bytes, nested multiparts, bad charsets and transfer
encodings; some shaped as staff replies carrying a token, so the body path and the reply judge
see them too) are APPENDed to INBOX while the daemon watches it.

The daemon stays up, and every message the server accepted is accounted for: stored, or
quarantined with a reason; none lost, none stuck unjudged. Each message is also parsed here,
in-process, with the core's parse_message, watching the work it hands the costly parsers: the
bounded-work guarantees of core/mail.py and core/mailbody.py hold for every message (values given
to email.policy.default within MAX_STRUCTURED_VALUE and STRUCTURED_BUDGET, MIME walks within
MAX_PARTS, part header values within MAX_PART_HEADER). Those counts do not depend on the
machine's speed; the slowest parse in seconds is only reported (DESIGN: speed is measured in
bench/, never asserted).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy as email_policy
from pathlib import Path
from unittest import mock

import mailfactory as mf
import pytest
from faultkit import DaemonProcess, wait_until
from harness import utc, write_config
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from daemon.core import mail, mailbody
from daemon.core.mail import MAX_STRUCTURED_VALUE, STRUCTURED_BUDGET, MalformedMessage, bounce_recipients, parse_message
from daemon.core.mailbody import MAX_PART_HEADER, MAX_PARTS

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "malformed"
GENERATED = 200
START = utc(2026, 11, 2, 10, 0)

# ---------------------------------------------------------------------------------- messages

NAMES = ["From", "To", "Cc", "Reply-To", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
         "Content-Type", "Content-Transfer-Encoding", "MIME-Version", "Auto-Submitted", "Precedence", "List-Id",
         "Authentication-Results", "Thread-Index", "X-Parting-Kind", "X-Junk", "Received"]
NASTY = [b"=?utf-8?q?broken", b"=?x-unknown?b?////?=", b"=?utf-8?b?w6k=?= =?utf-8?q?=0A?=", b"<<<>>>",
         b'"unclosed <a@b', b"a@b@c", b"\xff\xfe\x00", b"(((nested (comments)", b"\r\n\tfolded", b"=?", b"?="]

header_bytes = st.one_of(
    st.binary(max_size=120),  # anything at all, line breaks and NULs included
    st.text(max_size=80).map(lambda text: text.encode("utf-8", "replace")),
    st.lists(st.sampled_from(NASTY), min_size=1, max_size=6).map(b"".join),
    st.from_regex(rb"[a-z]{1,8}@[a-z]{1,8}\.example", fullmatch=True),
)
charsets = st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "utf-16", "", "rot13", "us-ascii\x00"])
encodings = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "garbage", ""])


@st.composite
def leaf_part(draw) -> bytes:
    kind = draw(st.sampled_from(["text/plain", "text/html", "application/octet-stream", "message/rfc822",
                                 "text/plain; format=flowed", "multipart/mixed"]))  # a multipart without parts
    head = f"Content-Type: {kind}; charset=\"{draw(charsets)}\"\r\nContent-Transfer-Encoding: {draw(encodings)}\r\n"
    return head.encode() + b"\r\n" + draw(st.binary(max_size=200))


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw) -> bytes:
        boundary = draw(st.sampled_from([b"b1", b"", b"=_x", b"a" * 75, b"sp ace", b"--"]))
        parts = draw(st.lists(children, max_size=4))
        closed = draw(st.booleans())
        body = b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts)
        subtype = draw(st.sampled_from([b"mixed", b"alternative", b"report; report-type=delivery-status"]))
        return (b"Content-Type: multipart/" + subtype + b'; boundary="' + boundary + b'"\r\n\r\n' + body
                + (b"--" + boundary + b"--\r\n" if closed else b""))
    return build()


bodies = st.recursive(leaf_part(), multipart, max_leaves=10)
ROLES = {  # who the message claims to be from and to: a client, a staff reply with a token, ourselves
    "client": [(b"From", b"Jane Doe <jane@acme.example>"), (b"To", b"office@example.com")],
    "staff reply": [(b"From", b"alice@example.com"),
                    (b"To", b"office+r-abcdefgh12345678-abcdefghijklmnopqrstuvwxyz@example.com"),
                    (b"Subject", b"Re: [parting #abcdefgh] Release"), (b"In-Reply-To", b"<review@example.com>")],
    "ours": [(b"From", b"office@example.com"), (b"To", b"jane@acme.example")],
    "anyone": [],
}


@st.composite
def messages(draw) -> bytes:
    fields = list(ROLES[draw(st.sampled_from(sorted(ROLES)))])
    fields += draw(st.lists(st.tuples(st.sampled_from(NAMES).map(str.encode), header_bytes), max_size=12))
    head = b"".join(name + b": " + value + b"\r\n" for name, value in draw(st.permutations(fields)))
    body = draw(bodies)
    # the body's own part header moves into the message header, as a mail client would write it
    part_head, _, part_body = body.partition(b"\r\n\r\n")
    return head + part_head + b"\r\n\r\n" + part_body


def generated_messages() -> list[bytes]:
    found: list[bytes] = []

    @settings(max_examples=GENERATED, derandomize=True, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(messages())
    def collect(raw: bytes) -> None:
        found.append(raw)

    collect()
    return found


@dataclass
class Work:
    """What one message's parse handed to the parsers whose cost grows faster than their input."""

    structured: list[int] = field(default_factory=list)  # lengths of values given to email.policy.default
    walks: list[int] = field(default_factory=list)  # parts each MIME walk looked at
    part_headers: list[int] = field(default_factory=list)  # lengths of MIME part header values (compat32)
    seconds: float = 0.0  # reported, never asserted

    def beyond_bounds(self) -> list[str]:
        found = [f"a {n}-character value given to email.policy.default" for n in self.structured
                 if n > MAX_STRUCTURED_VALUE]
        if sum(self.structured) > STRUCTURED_BUDGET:
            found.append(f"{sum(self.structured)} characters given to email.policy.default in one message")
        found += [f"a MIME walk over {n} parts" for n in self.walks if n > MAX_PARTS]
        found += [f"a {n}-character MIME part header value" for n in self.part_headers if n > MAX_PART_HEADER]
        return found


@contextmanager
def watching_work() -> Iterator[list[Work]]:
    """Count, per parse, the work given to email.policy.default, the MIME walk and compat32's part
    header parsing: the three places where hostile mail could make the parse run away."""
    works: list[Work] = []
    real_walk = mailbody.walk_parts
    real_part_header = mailbody._BoundedPolicy.header_source_parse

    class CountingPolicy:
        def header_fetch_parse(self, name: str, value: str) -> object:
            works[-1].structured.append(len(value))
            return email_policy.default.header_fetch_parse(name, value)

    def counting_walk(part):
        works[-1].walks.append(0)
        count = works[-1].walks
        for index, found in enumerate(real_walk(part)):
            count[-1] = index + 1
            yield found

    def counting_part_header(policy, sourcelines):
        name, value = real_part_header(policy, sourcelines)
        works[-1].part_headers.append(len(value))
        return name, value

    # Without the memo of address values (the work of values never read before, as hostile mail
    # can make every one): the bounds must hold for that.
    with (mock.patch.object(mail, "_DEFAULT", CountingPolicy()),
          mock.patch.object(mail, "_value_addresses", mail._value_addresses.__wrapped__),
          mock.patch.object(mailbody, "walk_parts", counting_walk),
          mock.patch.object(mailbody._BoundedPolicy, "header_source_parse", counting_part_header)):
        yield works


def parse(raw: bytes, works: list[Work]) -> Work:
    """The core's reading of one message, as the daemon's ingest reads it (and a bounce's report)."""
    works.append(Work())
    started = time.perf_counter()
    try:
        parsed = parse_message(raw, size=len(raw))
        if parsed.bounce:
            bounce_recipients(raw)
    except MalformedMessage as problem:
        assert problem.reason
    works[-1].seconds = time.perf_counter() - started
    return works[-1]


# ---------------------------------------------------------------------------------- the test


def test_malformed_mail_in_a_live_mailbox_is_stored_or_quarantined_and_never_lost(tmp_path, dovecot, smtp_sink,
                                                                                   record):
    corpus = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    made = generated_messages()
    tried = corpus + made
    with watching_work() as works:
        for raw in tried:
            parse(raw, works)
    beyond = {n: problems for n, work in enumerate(works) if (problems := work.beyond_bounds())}
    assert not beyond, beyond
    # the watch saw real work: the corpus drives each bound to its limit
    assert max(n for work in works for n in work.walks) == MAX_PARTS
    assert max(n for work in works for n in work.part_headers) == MAX_PART_HEADER
    assert max(sum(work.structured) for work in works) > STRUCTURED_BUDGET - MAX_STRUCTURED_VALUE
    slowest = max(work.seconds for work in works)

    daemon = DaemonProcess(write_config(tmp_path / "parting", dovecot, smtp_sink), tmp_path, START)
    daemon.start()
    try:
        wait_until(lambda: "ready:" in daemon.log_text(), "the daemon ready", daemon)
        appended, refused = append_each(dovecot, tried)
        wait_until(lambda: len(accounted(daemon)) >= len(appended), "every appended message stored or quarantined",
                   daemon, timeout=90)
        assert daemon.alive(), daemon.tail()
        raw, _ = mf.reply("jane@acme.example", "<q@example.com>", "After the storm", START, "after-storm")
        last = mf.deliver(dovecot, "INBOX", raw)
        wait_until(lambda: last in accounted(daemon), "an ordinary message after the malformed ones", daemon)
        wait_until(lambda: not unjudged(daemon), "every staff-shaped reply judged", daemon)
        daemon.stop()
    finally:
        daemon.kill()

    read = accounted(daemon)
    lost = sorted(set(appended) - read)
    quarantined = dict(daemon.query("SELECT reason, count(*) FROM quarantine GROUP BY reason"))
    stored = daemon.scalar("SELECT count(*) FROM message_uids WHERE folder = 'INBOX'") - 1
    judged = daemon.query("SELECT outcome, count(*) FROM processed_replies GROUP BY outcome")
    accepted = sum(n for outcome, n in judged if outcome.startswith("accepted"))
    record("malformed", f"corpus {len(corpus)} + Hypothesis {len(made)}", len(tried), losses=len(lost),
           forgeries_accepted=accepted,
           notes=f"{len(appended)} appended ({len(refused)} refused by Dovecot), {stored} stored, "
                 f"{sum(quarantined.values())} quarantined, {sum(n for _, n in judged)} replies judged; "
                 f"slowest parse {slowest * 1000:.0f} ms")
    assert not lost, f"UIDs neither stored nor quarantined: {lost}"
    assert stored + sum(quarantined.values()) == len(appended)
    assert all(reason for reason in quarantined), "every quarantined message has its reason"
    assert accepted == 0, judged
    assert len(made) == GENERATED


def append_each(dovecot, raws: list[bytes]) -> tuple[list[int], list[str]]:
    """APPEND one by one; what the server refuses never reaches the daemon, so it is only counted."""
    uids, refused = [], []
    for raw in raws:
        try:
            uids.append(dovecot.append("INBOX", raw, msg_time=START))
        except Exception as problem:  # noqa: BLE001 - Dovecot's verdict on a message, recorded
            refused.append(str(problem)[:80])
    return uids, refused


def accounted(daemon: DaemonProcess) -> set[int]:
    return {uid for (uid,) in daemon.query(
        "SELECT uid FROM message_uids WHERE folder = 'INBOX' UNION SELECT uid FROM quarantine WHERE folder = 'INBOX'")}


def unjudged(daemon: DaemonProcess) -> list[tuple]:
    return daemon.query("SELECT message_id FROM messages WHERE from_staff = 1 AND body_text IS NOT NULL"
                        " AND message_id NOT IN (SELECT message_id FROM processed_replies)")
