"""core/threads.py: subjects, Thread-Index, client matching, direction, threading and triage."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.model import Client, ParsedMessage, Person
from daemon.core.threads import (
    Classification,
    ThreadAssignment,
    ThreadLookup,
    assign_thread,
    classify,
    match_client,
    new_thread_id,
    normalize_address,
    normalize_subject,
    thread_index_root,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OURS = ("office@example.com", "billing@example.com")
STAFF = (Person("alice", "Alice Smith", "alice@example.com"), Person("bob", "Bob Jones", "Bob@Example.com"))
ACME = Client("acme", "Acme Ltd", "Jane Doe", ("jane@acme.example",), ("acme.example",), "alice")
GLOBEX = Client("globex", "Globex", "Hank", ("hank@gmail.example",), ("globex.example",), "bob")
GLOBEX_EU = Client("globex-eu", "Globex EU", "Eva", (), ("eu.globex.example",), "bob")
CLIENTS = (ACME, GLOBEX)


def parsed(**fields) -> ParsedMessage:
    defaults = dict(
        message_id="m@x", from_addr="jane@acme.example", from_name="", to=("office@example.com",), cc=(),
        reply_to=(), subject="Documents for March", date=T0, in_reply_to=(), references=(), thread_index=None,
        thread_topic=None, auto_reply=None, bounce=False, authentication_results=(), parting_kind=None,
        content_hash="0" * 64, size=100,
    )
    return ParsedMessage(**{**defaults, **fields})


def classified(msg: ParsedMessage) -> Classification:
    return classify(msg, our_addresses=OURS, staff=STAFF, clients=CLIENTS)


# ------------------------------------------------------------------------------------------
# Subjects and Thread-Index.


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Documents for March", "documents for march"),
        ("Re: Documents for March", "documents for march"),
        ("RE: RE: Documents for March", "documents for march"),
        ("re:Documents", "documents"),
        ("Re[2]: Documents", "documents"),
        ("RE^3: Documents", "documents"),
        ("Re (2): Documents", "documents"),
        ("Re : Documents", "documents"),
        ("TR : RE : Documents", "documents"),
        ("AW: Documents", "documents"),
        ("AW: WG: Documents", "documents"),
        ("Antw: Documents", "documents"),
        ("Antwort: Documents", "documents"),
        ("SV: Documents", "documents"),
        ("VS: Documents", "documents"),
        ("Fwd: Documents", "documents"),
        ("FW: Re: Fwd: Documents", "documents"),
        ("RV: Documents", "documents"),
        ("Ref: Documents", "documents"),
        ("Réf. : Documents", "réf. : documents"),
        ("Réf: Documents", "documents"),
        ("Odp: Documents", "documents"),
        ("回复: Documents", "documents"),
        ("ΑΠ: Documents", "documents"),
        ("[EXTERNAL] Re: Documents", "documents"),
        ("Re: [EXTERNAL] RE: [Acme #123] Documents", "documents"),
        ("[Acme #123]   Documents   for\tMarch", "documents for march"),
        ("Re:   ", ""),
        ("", ""),
        ("Report: Q3", "report: q3"),
        ("Reply needed: Q3", "reply needed: q3"),
        ("Fwdx: Documents", "fwdx: documents"),
        ("Straße", "strasse"),
        ("Documents [draft]", "documents [draft]"),
    ],
)
def test_normalize_subject(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_normalize_subject_strips_a_hostile_number_of_prefixes() -> None:
    assert normalize_subject("Re:" * 20000 + " [x]" * 5000 + " Documents") == "documents"


@given(st.text(max_size=80))
def test_normalize_subject_is_idempotent(subject: str) -> None:
    once = normalize_subject(subject)
    assert normalize_subject(once) == once


ROOT_BYTES = bytes(range(1, 23))  # 22 bytes: reserved, FILETIME, GUID
ROOT_INDEX = base64.b64encode(ROOT_BYTES).decode()
REPLY_INDEX = base64.b64encode(ROOT_BYTES + b"\x00\x01\x02\x03\x04").decode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ROOT_INDEX, ROOT_BYTES.hex()),
        (REPLY_INDEX, ROOT_BYTES.hex()),
        (REPLY_INDEX[:20] + "\r\n " + REPLY_INDEX[20:], ROOT_BYTES.hex()),
        (ROOT_INDEX.rstrip("="), ROOT_BYTES.hex()),
        (base64.b64encode(b"short").decode(), None),
        ("not base64 at all!", None),
        ("", None),
        (None, None),
    ],
)
def test_thread_index_root(value: str | None, expected: str | None) -> None:
    assert thread_index_root(value) == expected


# ------------------------------------------------------------------------------------------
# Clients.


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("jane+x@acme.example", "jane@acme.example"),
        ("Jane.Doe+Invoices+2026@ACME.Example", "jane.doe@acme.example"),
        ("<jane@acme.example>", "jane@acme.example"),
        ("  JANE@acme.example ", "jane@acme.example"),
        ("+only@acme.example", "+only@acme.example"),
        ("no-at-sign", "no-at-sign"),
    ],
)
def test_normalize_address(addr: str, expected: str) -> None:
    assert normalize_address(addr) == expected


@pytest.mark.parametrize(
    ("addr", "client"),
    [
        ("jane@acme.example", "acme"),
        ("Jane+billing@ACME.example", "acme"),
        ("bob@acme.example", "acme"),  # a second address at the client's domain
        ("bob@eu.acme.example", "acme"),  # subdomain of a listed domain
        ("hank@gmail.example", "globex"),  # a listed address at a domain nobody owns
        ("other@gmail.example", None),
        ("x@notacme.example", None),  # a suffix that is not a subdomain
        ("x@acme.example.evil", None),
        ("", None),
    ],
)
def test_match_client(addr: str, client: str | None) -> None:
    found = match_client(addr, CLIENTS)
    assert (found.id if found else None) == client


def test_match_client_prefers_listed_address_then_most_specific_domain() -> None:
    listed_elsewhere = Client("solo", "Solo", "Sam", ("sam@eu.globex.example",), (), "alice")
    clients = (GLOBEX, GLOBEX_EU, listed_elsewhere)
    assert match_client("sam@eu.globex.example", clients).id == "solo"
    assert match_client("eva@eu.globex.example", clients).id == "globex-eu"
    assert match_client("x@lab.eu.globex.example", clients).id == "globex-eu"
    assert match_client("x@globex.example", clients).id == "globex"


# ------------------------------------------------------------------------------------------
# Direction.


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # a client writes to us
        (dict(from_addr="jane@acme.example"), Classification("in", "acme", None, ("jane@acme.example",), False)),
        # a second address of the client, via the domain, with its colleague in Cc and a Reply-To
        (dict(from_addr="bob@acme.example", cc=("carol@acme.example", "alice@example.com"),
              reply_to=("team@acme.example",)),
         Classification("in", "acme", None, ("bob@acme.example", "carol@acme.example", "team@acme.example"), False)),
        # our mailbox writes to the client (plus-address of ours counts as ours)
        (dict(from_addr="office+review@example.com", to=("Jane@acme.example",)),
         Classification("out", "acme", None, ("jane@acme.example",), True)),
        # staff write to the client from their own address: outbound, written by staff
        (dict(from_addr="bob@example.com", to=("jane@acme.example",), cc=("office@example.com",)),
         Classification("out", "acme", "bob", ("jane@acme.example",), True)),
        # staff reply to our mailbox only (a review reply): inbound, from staff, no client
        (dict(from_addr="alice@example.com", to=("office+tok123@example.com",)),
         Classification("in", None, "alice", (), True)),
        # outbound: the client is that of the first recipient that has one, To before Cc
        (dict(from_addr="office@example.com", to=("lawyer@law.example",),
              cc=("hank@gmail.example", "jane@acme.example")),
         Classification("out", "globex", None,
                        ("lawyer@law.example", "hank@gmail.example", "jane@acme.example"), True)),
        # outbound to nobody we know
        (dict(from_addr="office@example.com", to=("someone@else.example",)),
         Classification("out", None, None, ("someone@else.example",), True)),
        # a stranger writes in
        (dict(from_addr="jo@elsewhere.example"), Classification("in", None, None, ("jo@elsewhere.example",), False)),
        # no usable sender at all
        (dict(from_addr=""), Classification("in", None, None, (), False)),
    ],
)
def test_classify(fields: dict, expected: Classification) -> None:
    assert classified(parsed(**fields)) == expected


# ------------------------------------------------------------------------------------------
# Threading, against an in-memory store.


@dataclass
class Stored:
    message_id: str
    thread_id: str
    client_id: str | None
    subject: str
    participants: frozenset[str]
    index_root: str | None
    at: datetime


class FakeLookup:
    """Answers like the store: from the messages recorded so far."""

    def __init__(self) -> None:
        self.messages: list[Stored] = []
        self.id_queries: list[list[str]] = []
        self.subject_queries: list[tuple] = []

    def record(self, msg: ParsedMessage) -> tuple[Classification, ThreadAssignment]:
        classification = classified(msg)
        assignment = assign_thread(msg, classification, self)
        client_id = classification.client_id or self.client_of_thread(assignment.thread_id)
        self.messages.append(Stored(msg.message_id, assignment.thread_id, client_id, normalize_subject(msg.subject),
                                    frozenset(classification.counterparts), thread_index_root(msg.thread_index),
                                    msg.date or T0))
        return classification, assignment

    def thread_of_message_ids(self, ids: Sequence[str]) -> str | None:
        self.id_queries.append(list(ids))
        for wanted in ids:
            for stored in self.messages:
                if stored.message_id == wanted:
                    return stored.thread_id
        return None

    def thread_of_index_root(self, root: str) -> str | None:
        return next((s.thread_id for s in self.messages if s.index_root == root), None)

    def thread_of_subject(self, normalized_subject, client_id, counterparts, since) -> str | None:
        self.subject_queries.append((normalized_subject, client_id, tuple(counterparts), since))
        for stored in reversed(self.messages):
            if stored.subject == normalized_subject and stored.at >= since and stored.participants & set(counterparts):
                return stored.thread_id
        return None

    def client_of_thread(self, thread_id: str) -> str | None:
        return next((s.client_id for s in self.messages if s.thread_id == thread_id and s.client_id), None)


def test_fake_lookup_satisfies_the_protocol() -> None:
    lookup: ThreadLookup = FakeLookup()  # a type checker holds this line to the protocol
    assert lookup.thread_of_message_ids([]) is None


REQUEST = parsed(message_id="req-1@example.com", from_addr="office@example.com", to=("jane@acme.example",),
                 subject="Documents for March", date=T0)


def store_with_request() -> tuple[FakeLookup, str]:
    lookup = FakeLookup()
    _, assignment = lookup.record(REQUEST)
    assert assignment == ThreadAssignment(new_thread_id("req-1@example.com"), "new")
    return lookup, assignment.thread_id


def test_reply_from_a_second_address_at_the_clients_domain() -> None:
    lookup, thread = store_with_request()
    reply = parsed(message_id="r1@acme.example", from_addr="bob@acme.example", subject="Re: Documents for March",
                   in_reply_to=("req-1@example.com",), references=("req-1@example.com",), date=T0 + timedelta(days=1))
    classification, assignment = lookup.record(reply)
    assert classification.client_id == "acme" and classification.direction == "in"
    assert assignment == ThreadAssignment(thread, "references", None)


def test_reply_with_changed_subject_but_correct_references() -> None:
    lookup, thread = store_with_request()
    reply = parsed(message_id="r2@acme.example", subject="Something else entirely",
                   references=("older@x", "req-1@example.com"), date=T0 + timedelta(days=2))
    assert lookup.record(reply)[1] == ThreadAssignment(thread, "references", None)
    assert lookup.id_queries[-1] == ["req-1@example.com", "older@x"]  # newest reference first


def test_outlook_reply_with_thread_index_and_no_in_reply_to() -> None:
    lookup = FakeLookup()
    first = replace(REQUEST, thread_index=ROOT_INDEX, subject="Quarterly figures")
    _, started = lookup.record(first)
    reply = parsed(message_id="outlook-1@acme.example", subject="AW: Figures, as promised",
                   thread_index=REPLY_INDEX, date=T0 + timedelta(hours=3))
    assert lookup.record(reply)[1] == ThreadAssignment(started.thread_id, "thread-index", None)


def test_reply_without_any_ids_threads_by_subject_within_the_window_only() -> None:
    lookup, thread = store_with_request()
    late = T0 + timedelta(days=45)
    in_window = parsed(message_id="s1@acme.example", subject="RE: [EXTERNAL] documents for  march",
                       date=T0 + timedelta(days=5))
    assert lookup.record(in_window)[1] == ThreadAssignment(thread, "subject", None)
    since = T0 - timedelta(days=25)
    assert lookup.subject_queries[-1] == ("documents for march", "acme", ("jane@acme.example",), since)
    too_late = parsed(message_id="s2@acme.example", subject="Re: Documents for March", date=late)
    assert lookup.record(too_late)[1].how == "new"


def test_same_subject_from_other_people_is_a_new_thread() -> None:
    lookup, _ = store_with_request()
    other = parsed(message_id="o1@globex.example", from_addr="hank@gmail.example", subject="Re: Documents for March")
    assert lookup.record(other)[1] == ThreadAssignment(new_thread_id("o1@globex.example"), "new")


def test_subject_matching_uses_now_hint_when_the_date_is_missing() -> None:
    lookup, thread = store_with_request()
    undated = parsed(message_id="u1@acme.example", subject="Re: Documents for March", date=None)
    assert assign_thread(undated, classified(undated), lookup).how == "new"
    hinted = assign_thread(undated, classified(undated), lookup, now_hint=T0 + timedelta(days=1))
    assert hinted == ThreadAssignment(thread, "subject", None)


def test_new_threads_are_named_after_their_root_and_stable() -> None:
    lookup = FakeLookup()
    late_a = parsed(message_id="a@acme.example", references=("unknown-root@x", "unknown-mid@x"), subject="")
    late_b = parsed(message_id="b@acme.example", in_reply_to=("unknown-root@x",), subject="")
    first, second = lookup.record(late_a)[1], assign_thread(late_b, classified(late_b), FakeLookup())
    assert first == second == ThreadAssignment("t-" + hashlib.sha256(b"unknown-root@x").hexdigest()[:16], "new")
    assert assign_thread(late_a, classified(late_a), FakeLookup()) == first


def test_unknown_sender_in_a_clients_thread_goes_to_triage() -> None:
    lookup, thread = store_with_request()
    stranger = parsed(message_id="jo-1@elsewhere.example", from_addr="jo@elsewhere.example",
                      subject="Re: Documents for March", references=("req-1@example.com",))
    assert lookup.record(stranger)[1] == ThreadAssignment(
        thread, "references", "unknown sender jo@elsewhere.example in a thread of client acme"
    )


@pytest.mark.parametrize(
    "fields",
    [
        dict(from_addr="jane@acme.example"),  # the client itself
        dict(from_addr="alice@example.com", to=("office@example.com",)),  # staff, e.g. a review reply
        dict(from_addr="jo@elsewhere.example", auto_reply="Auto-Submitted: auto-replied"),  # a machine
        dict(from_addr="mailer-daemon@mx.example.com", bounce=True),
    ],
)
def test_known_people_and_machines_are_not_triaged(fields: dict) -> None:
    lookup, thread = store_with_request()
    msg = parsed(message_id="x-1@x", references=("req-1@example.com",), **fields)
    assert lookup.record(msg)[1] == ThreadAssignment(thread, "references", None)


def test_unknown_sender_in_a_thread_without_client_is_not_triaged() -> None:
    lookup = FakeLookup()
    _, started = lookup.record(replace(REQUEST, to=("someone@else.example",)))
    stranger = parsed(message_id="jo-2@x", from_addr="jo@elsewhere.example", references=("req-1@example.com",))
    assert lookup.record(stranger)[1] == ThreadAssignment(started.thread_id, "references", None)


def test_unknown_sender_starting_a_new_thread_is_not_triaged() -> None:
    stranger = parsed(message_id="jo-3@x", from_addr="jo@elsewhere.example", subject="Hello")
    assert FakeLookup().record(stranger)[1].triage_reason is None


# -- the client directory answers as the plain scan of every client did -----------------------


def scan_for_client(addr: str, clients: Sequence[Client]) -> Client | None:
    """match_client before the directory: every client's addresses, then every listed domain."""
    wanted = normalize_address(addr)
    if "@" not in wanted:
        return None
    for client in clients:
        if any(normalize_address(a) == wanted for a in client.addresses):
            return client
    domain = wanted.rpartition("@")[2]
    best = None
    for client in clients:
        for listed in client.domains:
            listed = listed.strip().lower().lstrip(".")
            if listed and (domain == listed or domain.endswith("." + listed)):
                if best is None or len(listed) > best[0]:
                    best = (len(listed), client)
    return best[1] if best else None


_LABELS = st.sampled_from(["acme", "eu", "mail", "example", "com", "co", "uk", "x"])
_DOMAINS = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_LOCALS = st.sampled_from(["jane", "Jane", "bob", "jane+invoices", "+x", "info"])
_ADDRESSES = st.builds(lambda local, domain: f"{local}@{domain}", _LOCALS, _DOMAINS)


@given(
    st.lists(st.tuples(st.lists(_ADDRESSES, max_size=2), st.lists(
        st.one_of(_DOMAINS, _DOMAINS.map(lambda d: f" .{d.upper()} "), st.just("")), max_size=3)),
        min_size=1, max_size=6),
    st.lists(st.one_of(_ADDRESSES, _ADDRESSES.map(lambda a: f" <{a.upper()}> "), st.just("no-at-sign")),
             min_size=1, max_size=10),
)
def test_client_directory_matches_as_the_scan_did(listed, asked) -> None:
    clients = tuple(Client(id=f"c{n}", name=f"C{n}", contact="x", addresses=tuple(addrs), domains=tuple(domains),
                           owner="alice") for n, (addrs, domains) in enumerate(listed))
    for addr in asked:
        assert match_client(addr, clients) is scan_for_client(addr, clients), addr
        assert match_client(addr, list(clients)) is scan_for_client(addr, clients), addr


def test_the_directory_follows_a_new_tuple_of_clients() -> None:
    first = (Client(id="a", name="A", contact="x", addresses=("jane@acme.example",), domains=(), owner="o"),)
    second = (Client(id="b", name="B", contact="x", addresses=("jane@acme.example",), domains=(), owner="o"),)
    assert match_client("jane@acme.example", first).id == "a"
    assert match_client("jane@acme.example", second).id == "b"  # a reload's clients, not the cached ones


@given(st.text(alphabet="Re:AW[]() xé\tFwd^2", max_size=40) | st.text(max_size=400))
def test_a_kept_subject_reads_as_one_worked_out_afresh(subject: str) -> None:
    from daemon.core.threads import _normalize_subject

    assert normalize_subject(subject) == normalize_subject(subject) == _normalize_subject(subject)


def test_a_long_subject_is_not_kept() -> None:
    from daemon.core.threads import _normalized

    _normalized.cache_clear()  # (a pure function's cache: clearing it changes no answer)
    normalize_subject("Re: " + "x" * 5000)
    normalize_subject("Re: short and kept")
    assert _normalized.cache_info().currsize == 1
