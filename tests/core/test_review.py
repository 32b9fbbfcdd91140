"""Review by reply: tokens, plus-addresses, judging a reply, the two-person rule, the state machine."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core import review
from daemon.core.mail import parse_message
from daemon.core.review import (
    Command,
    Endorsement,
    ReplyFacts,
    Step,
    TokenClaims,
    TokenRecord,
    apply_command,
    issue_token,
    judge_reply,
    next_step,
    reply_facts,
    sendable,
    split_token,
    subject_names_other_review,
    subject_tag,
    token_address,
    token_from_addresses,
    token_id_from_bytes,
    verify_token,
)

UTC = UTC
KEY = b"k" * 32
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
OURS = "mx.example.com"
REVIEW_ID = "review.17.2.alice@parting.example.com"
CLAIMS = TokenClaims(
    token_id=token_id_from_bytes(b"parting-01"), subject_kind="draft", subject_id=17, version=2,
    text_sha256="a" * 64, person="alice", role="owner", expires_at=datetime(2026, 11, 5, 10, tzinfo=UTC),
)
# The token in the corpus messages (tests/corpus/replies/*.eml): a token already sent out must
# keep verifying after an upgrade, so the canonical form of the claims must not drift.
TOKEN = "obqxe5djnzts2mbr-tpru5vaqmfwdcz6scy4iivxbbd"
PASSING = ("mx.example.com; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",)
CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "replies"


def facts(**changes: object) -> ReplyFacts:
    base = ReplyFacts(
        from_addr="alice@example.com", to_addrs=(f"office+r-{TOKEN}@example.com",),
        in_reply_to=(REVIEW_ID,), references=(REVIEW_ID,),
        subject="Re: [parting #obqxe5dj] Release email to Acme Ltd, version 2",
        auto_reply=None, authentication_results=PASSING, new_text="Approve", token=TOKEN,
        header_counts=(("From", 1), ("To", 1), ("Date", 1)), date=NOW - timedelta(minutes=30),
    )
    return dataclasses.replace(base, **changes)


def record(**changes: object) -> TokenRecord:
    issued = NOW - timedelta(hours=1)
    return dataclasses.replace(TokenRecord(CLAIMS, "alice@example.com", REVIEW_ID, None, issued_at=issued), **changes)


def judge(reply: ReplyFacts, token: TokenRecord | None, **changes: object) -> review.Judgement:
    options: dict = dict(key=KEY, now=NOW, authserv_id=OURS, require_authentication=True,
                         current_version=2, draft_state="owner_review")
    options.update(changes)
    return judge_reply(reply, token, **options)


# -- tokens --------------------------------------------------------------------------------------


def test_token_round_trip_and_known_value() -> None:
    token = issue_token(KEY, CLAIMS)
    assert token == TOKEN
    assert split_token(token) == (CLAIMS.token_id, token.split("-")[1])
    assert verify_token(KEY, token, CLAIMS, NOW).ok


def test_token_fits_a_local_part_and_survives_case_folding() -> None:
    longest = dataclasses.replace(CLAIMS, token_id="a" * 24)
    for claims in (CLAIMS, longest):
        token = issue_token(KEY, claims)
        assert token == token.lower() and token.replace("-", "").isalnum()
        assert len(token) <= 51
        assert len(token_address("office@example.com", token).split("@")[0]) <= 64
    assert len(TOKEN) <= 48
    assert verify_token(KEY, TOKEN.upper(), CLAIMS, NOW).ok


def test_tampered_mac_is_forged() -> None:
    last = TOKEN[-1]
    tampered = TOKEN[:-1] + ("a" if last != "a" else "b")
    check = verify_token(KEY, tampered, CLAIMS, NOW)
    assert (check.ok, check.code) == (False, "forged_token")


def test_token_of_another_key_is_forged() -> None:
    assert verify_token(b"x" * 32, TOKEN, CLAIMS, NOW).code == "forged_token"


@pytest.mark.parametrize("change", [
    {"version": 3}, {"text_sha256": "b" * 64}, {"person": "bob"}, {"role": "reviewer"},
    {"subject_id": 18}, {"subject_kind": "deadline"}, {"expires_at": datetime(2026, 11, 6, 10, tzinfo=UTC)},
    {"token_id": "obqxe5djnzts2mbs"},
])
def test_changed_claims_do_not_verify(change: dict) -> None:
    check = verify_token(KEY, TOKEN, dataclasses.replace(CLAIMS, **change), NOW)
    assert (check.ok, check.code) == (False, "forged_token")


def test_expired_token_is_refused_from_the_expiry_instant() -> None:
    assert verify_token(KEY, TOKEN, CLAIMS, CLAIMS.expires_at - timedelta(seconds=1)).ok
    check = verify_token(KEY, TOKEN, CLAIMS, CLAIMS.expires_at)
    assert (check.ok, check.code) == (False, "expired")


def test_used_token_is_a_replay() -> None:
    check = verify_token(KEY, TOKEN, CLAIMS, NOW, used_at=NOW - timedelta(hours=1))
    assert (check.ok, check.code) == (False, "replayed")


def test_the_mac_is_compared_with_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = review.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(review.hmac, "compare_digest", spy)
    assert verify_token(KEY, TOKEN, CLAIMS, NOW).ok
    assert calls == [(TOKEN.split("-")[1], TOKEN.split("-")[1])]


@pytest.mark.parametrize("token", [
    "", "obqxe5djnzts2mbr", "obqxe5djnzts2mbr-", "obqxe5djnzts2mbr-tpru5vaqmfwdcz6scy4iivxbb",
    "obqxe5djnzts2mbr-tpru5vaqmfwdcz6scy4iivxbbd1", "obqx_5djnzts2mbr-tpru5vaqmfwdcz6scy4iivxbbd",
    "short-tpru5vaqmfwdcz6scy4iivxbbd", "obqxe5djnzts2mbr-tpru5vaqmfwdcz6scy4iivxbb0",
])
def test_malformed_tokens(token: str) -> None:
    assert split_token(token) is None
    assert verify_token(KEY, token, CLAIMS, NOW).code == "forged_token"


def test_deadline_claims_without_version_round_trip() -> None:
    claims = dataclasses.replace(CLAIMS, subject_kind="deadline", version=None, text_sha256=None, role="deadline")
    assert verify_token(KEY, issue_token(KEY, claims), claims, NOW).ok


def test_issue_token_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="token id"):
        issue_token(KEY, dataclasses.replace(CLAIMS, token_id="Has-Dash"))
    with pytest.raises(ValueError, match="16 bytes"):
        issue_token(b"short", CLAIMS)
    with pytest.raises(ValueError, match="timezone-aware"):
        issue_token(KEY, dataclasses.replace(CLAIMS, expires_at=datetime(2026, 11, 5, 10)))
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_token(KEY, TOKEN, CLAIMS, datetime(2026, 11, 2, 12))


def test_token_id_from_random_bytes() -> None:
    token_id = token_id_from_bytes(bytes(range(10)))
    assert len(token_id) == 16 and token_id == token_id.lower()
    with pytest.raises(ValueError):
        token_id_from_bytes(b"abc")


@given(st.builds(
    TokenClaims, token_id=st.from_regex(r"[a-z0-9]{8,24}", fullmatch=True),
    subject_kind=st.sampled_from(["draft", "deadline"]), subject_id=st.integers(0, 2**40),
    version=st.none() | st.integers(0, 10**6),
    text_sha256=st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    person=st.text(), role=st.sampled_from(["owner", "reviewer", "deadline"]),
    expires_at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                            timezones=st.just(UTC)),
))
def test_any_claims_round_trip_and_bind_their_fields(claims: TokenClaims) -> None:
    token = issue_token(KEY, claims)
    before = claims.expires_at - timedelta(seconds=1)
    assert verify_token(KEY, token, claims, before).ok
    assert not verify_token(KEY, token, dataclasses.replace(claims, person=claims.person + "x"), before).ok


# -- addresses and subject tags ------------------------------------------------------------------


def test_token_address_and_back() -> None:
    address = token_address("Office@Example.com", TOKEN)
    assert address == f"office+r-{TOKEN}@example.com"
    found = token_from_addresses(["bob@example.com", f"Parting <{address.upper()}>"], "office@example.com")
    assert found == TOKEN


def _token_by_parseaddr(addresses: list[str], our_address: str) -> str | None:
    """token_from_addresses as it was before its shortcut: every address read by parseaddr."""
    from email.utils import parseaddr

    local, _, domain = our_address.strip().lower().rpartition("@")
    prefix = f"{local}+r-"
    for raw in addresses:
        their_local, at, their_domain = (parseaddr(raw)[1] or raw).strip().lower().rpartition("@")
        if at and their_domain == domain and their_local.startswith(prefix):
            token = their_local[len(prefix):]
            if review.split_token(token) is not None:
                return token
    return None


_NOISE = st.sampled_from(["", "", "", " ", "\t", "\r\n", ".", "(c)", '"', "\\", "<", ">", "Bob", ",", ":", ";", "[",
                          "]", "\u03a3", "\xe9", "\x0b", "@", "+"])
# Our token address in pieces, with noise between them: blanks, comments, quotes, routes...
_NOISY_ADDRESS = st.lists(_NOISE, min_size=7, max_size=7).map(
    lambda noise: "".join(n + piece for n, piece in zip(noise, ["office", "+r-", TOKEN[:9], TOKEN[9:], "@",
                                                                 "Example.com", ""], strict=True)))


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.one_of(_NOISY_ADDRESS, st.lists(_NOISE, max_size=6).map("".join)), max_size=3))
def test_the_token_is_found_as_parseaddr_reads_each_address(addresses: list[str]) -> None:
    # The shortcut skips parseaddr for plain ASCII addresses that cannot hold our prefix: it must
    # never change the answer, whatever blanks, comments, quotes or routes an address carries.
    assert token_from_addresses(addresses, "Office@Example.com") == _token_by_parseaddr(addresses, "Office@Example.com")


@pytest.mark.parametrize("addresses", [
    [], ["office@example.com"], [f"office+r-{TOKEN}@other.example"], [f"office+x-{TOKEN}@example.com"],
    ["office+r-not-a-token@example.com"], [f"someone+r-{TOKEN}@example.com"],
])
def test_no_token_in_other_addresses(addresses: list[str]) -> None:
    assert token_from_addresses(addresses, "office@example.com") is None


def test_token_address_refuses_what_would_not_work() -> None:
    with pytest.raises(ValueError):
        token_address("office@example.com", "not a token")
    with pytest.raises(ValueError, match="64"):
        token_address("a-very-long-mailbox-name-for-the-office@example.com", TOKEN)


def test_subject_tag() -> None:
    assert subject_tag(CLAIMS.token_id) == "[parting #obqxe5dj]"
    assert not subject_names_other_review("Re: [PARTING #OBQXE5DJ] x", CLAIMS.token_id)
    assert not subject_names_other_review("Re: release email", CLAIMS.token_id)
    assert subject_names_other_review("Re: [parting #aaaaaaaa] x", CLAIMS.token_id)


# -- judging a reply -----------------------------------------------------------------------------


def test_every_refusal_in_order_then_acceptance() -> None:
    """Start with a reply that fails every check; fixing one at a time reveals the next."""
    reply = facts(token=None, in_reply_to=("other@x",), references=(), from_addr="mallory@example.com",
                  auto_reply="Auto-Submitted: auto-replied", authentication_results=(),
                  new_text="I do not approve", header_counts=(("To", 2), ("In-Reply-To", 2)),
                  date=NOW - timedelta(days=3))
    token: TokenRecord | None = None
    options = dict(now=CLAIMS.expires_at + timedelta(hours=1), current_version=3, draft_state="sent")
    # (the refusal expected now, the fix that gets past it)
    steps: list[tuple[str, dict]] = [
        ("no_token", {"reply": {"token": TOKEN[:-1] + "a"}}),
        ("repeated_header", {"reply": {"header_counts": (("To", 1), ("In-Reply-To", 1))}}),
        ("unknown_token", {"token": record(used_at=NOW)}),
        ("forged_token", {"reply": {"token": TOKEN}}),
        ("replayed", {"token": record()}),
        ("expired", {"options": {"now": NOW}}),
        ("older_than_token", {"reply": {"date": NOW - timedelta(hours=1, minutes=4)}}),
        ("superseded", {"options": {"current_version": 2}}),
        ("not_in_review", {"options": {"draft_state": "second_review"}}),
        ("not_a_reply", {"reply": {"references": (f"<{REVIEW_ID}>",)}}),
        ("wrong_sender", {"reply": {"from_addr": "Alice <ALICE@example.com>"}}),
        ("auto_reply", {"reply": {"auto_reply": None}}),
        ("not_authenticated", {"reply": {"authentication_results": PASSING}}),
        ("unknown_command", {"reply": {"new_text": "Approved."}}),
    ]
    for code, fix in steps:
        judgement = judge(reply, token, **options)
        assert (judgement.accepted, judgement.code) == (False, code), judgement.reason
        reply = dataclasses.replace(reply, **fix.get("reply", {}))
        token = fix.get("token", token)
        options.update(fix.get("options", {}))
    judgement = judge(reply, token, **options)
    assert (judgement.accepted, judgement.code, judgement.command) == (True, "accepted", Command("approve"))
    assert [code for code, _ in steps] == list(review.REFUSALS)


def test_accepted_reply_is_safe_to_answer() -> None:
    judgement = judge(facts(), record())
    assert (judgement.accepted, judgement.safe_to_answer, judgement.authentication_skipped) == (True, True, False)
    assert judgement.reason == "APPROVE from alice for version 2; authenticated by dmarc=pass"


def test_authentication_opt_out_accepts_but_says_so_and_never_answers() -> None:
    judgement = judge(facts(authentication_results=()), record(), require_authentication=False)
    assert judgement.accepted and judgement.authentication_skipped
    assert not judgement.safe_to_answer
    assert "authentication skipped" in judgement.reason


def test_forged_header_below_a_failing_one_does_not_authenticate() -> None:
    headers = ("mx.example.com; dmarc=fail header.from=example.com", *PASSING)
    judgement = judge(facts(authentication_results=headers), record())
    assert (judgement.code, judgement.safe_to_answer) == ("not_authenticated", False)
    assert judgement.reason == "the sender is not authenticated: dmarc=fail"


@pytest.mark.parametrize(("reply", "token", "options", "code", "safe"), [
    (facts(token=None), None, {}, "no_token", False),
    (facts(), None, {}, "unknown_token", False),
    (facts(), record(claims=dataclasses.replace(CLAIMS, version=3)), {"current_version": 3},
     "forged_token", False),
    (facts(), record(used_at=NOW), {}, "replayed", True),
    (facts(), record(), {"now": CLAIMS.expires_at}, "expired", True),
    (facts(), record(), {"current_version": 3}, "superseded", True),
    (facts(from_addr="bob@example.com"), record(), {}, "wrong_sender", False),
    (facts(auto_reply="X-Autoreply: yes"), record(), {}, "auto_reply", False),
    (facts(authentication_results=("mx.example.com; dkim=pass header.d=evil.example",)), record(), {},
     "not_authenticated", False),
    (facts(new_text="Genehmigt"), record(), {}, "unknown_command", True),
])
def test_safe_to_answer_only_an_authenticated_named_person(
    reply: ReplyFacts, token: TokenRecord | None, options: dict, code: str, safe: bool
) -> None:
    judgement = judge(reply, token, **options)
    assert (judgement.code, judgement.safe_to_answer) == (code, safe)


def test_unknown_command_carries_the_help_for_the_answer() -> None:
    judgement = judge(facts(new_text="Genehmigt"), record())
    assert judgement.command is not None and judgement.command.kind == "unknown"
    assert "English" in judgement.reason and "APPROVE" in judgement.reason


def test_the_changed_text_supersedes_the_token() -> None:
    assert judge(facts(), record(), current_text_sha256="b" * 64).code == "superseded"
    assert judge(facts(), record(), current_text_sha256="A" * 64).accepted


def test_a_subject_naming_another_review_is_not_a_reply_to_this_one() -> None:
    judgement = judge(facts(subject="Re: [parting #zzzzzzzz] release"), record())
    assert judgement.code == "not_a_reply"


def test_a_subject_without_a_tag_and_an_id_among_references_is_fine() -> None:
    reply = facts(subject="Re: your decision", in_reply_to=(), references=("<a@x> <" + REVIEW_ID + "> <b@y>",))
    assert judge(reply, record()).accepted


def test_a_token_without_a_review_message_id_never_matches() -> None:
    assert judge(facts(), record(review_message_id=None)).code == "not_a_reply"


def test_a_reject_still_counts_while_the_draft_waits_to_be_sent() -> None:
    judgement = judge(facts(new_text="REJECT she paid"), record(), draft_state="sendable")
    assert judgement.accepted and judgement.command == Command("reject", reason="she paid")


def test_deadline_token_takes_done_while_open() -> None:
    claims = dataclasses.replace(CLAIMS, subject_kind="deadline", version=None, text_sha256=None, role="deadline")
    token = issue_token(KEY, claims)
    reply = facts(token=token, new_text="DONE called her", subject="Re: call Jane")
    accepted = judge(reply, record(claims=claims), current_version=None, draft_state="open")
    assert accepted.accepted and accepted.command == Command("done", reason="called her")
    closed = judge(reply, record(claims=claims), current_version=None, draft_state="done")
    assert closed.code == "not_in_review"


def _facts_from_message(path: Path) -> ReplyFacts:
    """As production reads it: core/mail.parse_message, then review.reply_facts."""
    parsed = parse_message(path.read_bytes())
    return reply_facts(
        from_addr=parsed.from_addr, to_addrs=parsed.to, cc_addrs=parsed.cc, in_reply_to=parsed.in_reply_to,
        references=parsed.references, subject=parsed.subject, auto_reply=parsed.auto_reply,
        authentication_results=parsed.authentication_results, text=parsed.text,
        our_address="office@example.com", header_counts=parsed.header_counts, date=parsed.date,
    )


@pytest.mark.parametrize(("name", "expected"), [
    ("gmail_multipart.eml",
     Command("reject", reason="the client paid all invoices today \u2013 let\u2019s keep them")),
    ("outlook_html_only.eml", Command("approve")),
])
def test_whole_corpus_messages_are_accepted(name: str, expected: Command) -> None:
    judgement = judge(_facts_from_message(CORPUS / name), record(issued_at=datetime(2026, 11, 2, 10, tzinfo=UTC)))
    assert judgement.accepted, judgement.reason
    assert judgement.command == expected
    assert judgement.authentication is not None and judgement.authentication.method == "dmarc"


# -- the two-person rule -------------------------------------------------------------------------

A_WROTE, A_OK = Endorsement("alice", "owner", "wrote"), Endorsement("alice", "owner", "approved")
B_WROTE, B_OK = Endorsement("bob", "reviewer", "wrote"), Endorsement("bob", "reviewer", "approved")
C_OK = Endorsement("carol", "reviewer", "approved")


@pytest.mark.parametrize(("endorsements", "writer", "required", "missing"), [
    ([], "parting", 1, "the owner alice has not endorsed version 2; 1 more endorsement of version 2 from"
                       " someone other than the owner alice; someone other than its writer parting must"
                       " endorse version 2"),
    ([A_OK], "parting", 1, "1 more endorsement of version 2 from someone other than the owner alice"),
    ([A_OK, B_OK], "parting", 1, ""),
    ([B_WROTE, A_OK], "bob", 1, ""),
    ([A_WROTE, B_OK], "alice", 1, ""),
    ([A_WROTE], "alice", 1, "1 more endorsement of version 2 from someone other than the owner alice"),
    ([A_WROTE, A_OK], "alice", 1, "1 more endorsement"),
    ([A_OK, B_OK], "parting", 2, "1 more endorsement of version 2"),
    ([A_OK, B_OK, C_OK], "parting", 2, ""),
    ([B_OK, C_OK], "parting", 1, "the owner alice has not endorsed version 2"),
    ([B_WROTE, C_OK], "bob", 1, "the owner alice has not endorsed version 2"),
    ([B_WROTE], "bob", 1, "the owner alice has not endorsed version 2"),
])
def test_sendable(endorsements: list[Endorsement], writer: str, required: int, missing: str) -> None:
    result = sendable(endorsements, owner="alice", writer=writer, approvals_required=required, version=2)
    assert result.ok is (missing == "")
    assert missing in result.missing if missing else result.missing == ""


def test_sendable_refuses_to_waive_the_second_person() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        sendable([A_OK], owner="alice", writer="parting", approvals_required=0)


@given(st.sets(st.builds(Endorsement, st.sampled_from(["alice", "bob", "carol", "dave"]),
                         st.sampled_from(["owner", "reviewer"]), st.sampled_from(["wrote", "approved"]))),
       st.sampled_from(["alice", "bob", "parting"]), st.integers(1, 3))
def test_nobody_sends_their_own_words_unread_and_nothing_leaves_without_the_owner(
    endorsements: set[Endorsement], writer: str, required: int
) -> None:
    people = {e.person for e in endorsements}
    if sendable(endorsements, owner="alice", writer=writer, approvals_required=required).ok:
        assert "alice" in people
        assert len(people - {"alice"}) >= required
        assert people - {writer}


# -- the state machine ---------------------------------------------------------------------------

TEAM = dict(owner="alice", reviewers=("bob", "carol"), approvals_required=1)


@pytest.mark.parametrize(("state", "writer", "endorsements", "asked", "team", "expected"), [
    ("owner_review", "parting", [], (), {}, Step("owner_review", ("alice",))),
    ("owner_review", "parting", [], ("alice",), {}, Step("owner_review", ())),
    ("owner_review", "parting", [A_OK], ("alice",), {}, Step("second_review", ("bob",))),
    ("second_review", "parting", [A_OK], ("alice",), {"approvals_required": 2},
     Step("second_review", ("bob", "carol"))),
    ("second_review", "parting", [A_OK], ("alice", "bob"), {}, Step("second_review", ())),
    ("second_review", "parting", [A_OK], (), {"reviewers": ("alice", "carol")}, Step("second_review", ("carol",))),
    ("owner_review", "bob", [B_WROTE], (), {}, Step("owner_review", ("alice",))),
    ("owner_review", "alice", [A_WROTE], (), {}, Step("second_review", ("bob",))),
    ("second_review", "parting", [A_OK, B_OK], (), {}, Step("sendable")),
    ("held", "parting", [A_OK, B_OK], (), {}, Step("held")),
    ("rejected", "parting", [], (), {}, Step("rejected")),
    ("sent", "parting", [A_OK, B_OK], (), {}, Step("sent")),
])
def test_next_step(state: str, writer: str, endorsements: list, asked: tuple, team: dict, expected: Step) -> None:
    step = next_step(state, writer, endorsements, **{**TEAM, **team}, asked=asked)
    assert (step.state, step.ask) == (expected.state, expected.ask)


def test_next_step_says_when_no_reviewer_is_left() -> None:
    step = next_step("second_review", "parting", [A_OK], owner="alice", reviewers=("alice",), approvals_required=1)
    assert step.state == "second_review" and step.ask == ()
    assert "no further reviewer other than the owner alice" in step.missing


def _apply(command: Command, person: str, role: str, state: str, writer: str, endorsements: list, **kw: object):
    return apply_command(command, person=person, role=role, state=state, writer=writer,
                         endorsements=endorsements, **{**TEAM, **kw})


def test_the_whole_review_walk() -> None:
    # Version 1 written by parting: the owner adopts it, the reviewer edits, the owner approves.
    first = _apply(Command("approve"), "alice", "owner", "owner_review", "parting", [], asked=("alice",))
    assert (first.step.state, first.step.ask, first.endorsement) == ("second_review", ("bob",), A_OK)
    edit = _apply(Command("edit", text="Dear Jane, ..."), "bob", "reviewer", "second_review", "parting", [A_OK])
    assert (edit.step.state, edit.step.ask, edit.endorsement, edit.new_text) == (
        "owner_review", ("alice",), B_WROTE, "Dear Jane, ...")
    last = _apply(Command("approve"), "alice", "owner", "owner_review", "bob", [B_WROTE], asked=("alice",))
    assert (last.step.state, last.endorsement) == ("sendable", A_OK)


@pytest.mark.parametrize(("command", "person", "role", "state", "writer", "endorsements", "expected"), [
    (Command("approve"), "bob", "reviewer", "second_review", "parting", [A_OK], "sendable"),
    (Command("approve"), "carol", "reviewer", "sendable", "parting", [A_OK, B_OK], "sendable"),
    (Command("edit", text="x"), "alice", "owner", "owner_review", "parting", [], "second_review"),
    (Command("reject", reason="no"), "carol", "reviewer", "sendable", "parting", [A_OK, B_OK], "rejected"),
    (Command("reject"), "alice", "owner", "second_review", "parting", [A_OK], "rejected"),
    (Command("hold", days=3), "bob", "reviewer", "second_review", "parting", [A_OK], "held"),
    (Command("approve"), "bob", "reviewer", "held", "parting", [A_OK], "held"),
    (Command("edit", text="y"), "bob", "reviewer", "held", "parting", [A_OK], "owner_review"),
    (Command("approve"), "bob", "reviewer", "rejected", "parting", [A_OK], "rejected"),
    (Command("edit", text="z"), "bob", "reviewer", "sent", "parting", [A_OK, B_OK], "sent"),
])
def test_transitions(command: Command, person: str, role: str, state: str, writer: str,
                     endorsements: list, expected: str) -> None:
    outcome = _apply(command, person, role, state, writer, endorsements)
    assert outcome.step.state == expected
    if state in ("rejected", "sent"):
        assert outcome.endorsement is None and outcome.new_text is None
    if command.kind == "hold" and expected == "held":
        assert outcome.hold_days == 3


def test_only_review_commands_make_transitions() -> None:
    with pytest.raises(ValueError):
        _apply(Command("done"), "alice", "owner", "owner_review", "parting", [])
    with pytest.raises(ValueError):
        _apply(Command("unknown", problem="?"), "alice", "owner", "owner_review", "parting", [])
