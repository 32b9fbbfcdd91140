"""The recent histories the read-side commands judge give the verdicts of the whole history.

`parting status`, `explain` and `simulate` read each client's history only from its second latest
real reply dated by `now` on (core/policy.py `replies_read`; the whole of it for a policy that
answers by thread), plus every bounce reporting failures, recorded answers and assigned messages
(store/histories.py). Here generated stores full of the awkward cases (moments shared by several
messages, times with and without microseconds, mail after `now`, bounces reporting failures of
old requests, recorded answers and owner changes, assigned messages, a stored message whose id is
a recorded entry's) are judged both ways, under every kind of policy, and must agree verdict for
verdict, in the status row and in the messages `explain` lists.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.adapters.store import MessageRow, Store
from daemon.core.model import Client, DeliveryFailure, Envelope, HolidayCalendar, Policy, Unresponsive, WorkingHours
from daemon.core.model import parse_duration as duration
from daemon.core.policy import Verdict, evaluate, replies_read
from daemon.core.workhours import Calendar
from daemon.queries.status import _status_row

CALENDAR = Calendar(WorkingHours(timezone="Europe/London",
                                 holidays=HolidayCalendar(country="GB", subdivision="ENG", extra=(date(2026, 12, 24),))))
CLIENTS = (Client("acme", "Acme Ltd", "Jane Doe", ("jane@acme.example",), ("acme.example",), "alice"),
           Client("globex", "Globex", "Hank Scorpio", ("hank@globex.example", "ops@globex.example"), (), "bob"))
BASE = datetime(2026, 10, 19, tzinfo=UTC)  # over the autumn clock change and Christmas
POLICIES = (
    Policy(),
    Policy(reply_answers_all=False),
    Policy(expects_reply="all", unresponsive=Unresponsive(ignored_messages=2, or_silent_for=None)),
    Policy(expects_reply="tagged", ignored_after=duration("4 business hours")),
    Policy(ignored_after=duration("2 business days"),
           unresponsive=Unresponsive(within=duration("10 days"), or_silent_for=duration("5 days"))),
)
NO_PEOPLE: Any = SimpleNamespace(people=())  # all _status_row reads of the settings
INBOUND = ("reply", "reply", "reply", "auto", "bounce", "review")
OUTBOUND = ("plain", "plain", "plain", "auto", "nudge", "review")

# Half of the moments fall on a few midnights, so that several messages often share one.
hours = st.one_of(st.integers(0, 10).map(lambda day: day * 5 * 24), st.integers(0, 60 * 24))
moment = st.tuples(hours, st.sampled_from([0, 0, 17]), st.sampled_from([0, 0, 0, 250_000])).map(
    lambda t: BASE + timedelta(hours=t[0], minutes=t[1], microseconds=t[2]))
# (owner: 0 acme, 1 globex, 2 nobody, inbound, when, thread, flavour, question, tagged)
rows = st.tuples(st.integers(0, 2), st.booleans(), moment, st.integers(0, 2), st.integers(0, 5), st.booleans(),
                 st.booleans())
# (bounce index, reported message index, recipient index)
failures = st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(0, 2))
# (client, kind, when)
records = st.tuples(st.integers(0, 1), st.sampled_from(["answered", "answered", "owner_changed"]), moment)
assignments = st.tuples(st.integers(0, 99), st.integers(0, 1))
worlds = st.fixed_dictionaries({
    "rows": st.lists(rows, min_size=1, max_size=50), "failures": st.lists(failures, max_size=4),
    "records": st.lists(records, max_size=3), "assignments": st.lists(assignments, max_size=3),
    "collide": st.booleans()})


def _row(number: int, drawn: tuple, collide: bool) -> MessageRow:
    owner, inbound, at, thread, flavour, question, tagged = drawn
    kind = (INBOUND if inbound else OUTBOUND)[flavour]
    client = CLIENTS[owner].id if owner < 2 else None
    # A stored message may carry the id a recorded entry stands under in the history.
    message_id = "recorded-1@parting" if collide and number == 0 else f"m{number}@example.com"
    return MessageRow(
        message_id=message_id, client_id=client, thread_id=f"t{thread}", direction="in" if inbound else "out",
        at=at, subject=f"subject {number}", from_addr="jane@acme.example" if inbound else "office@example.com",
        auto_reply="Auto-Submitted: auto-replied" if kind == "auto" else None, bounce=kind == "bounce",
        question=question, tagged=tagged, parting_kind=kind if kind in ("nudge", "review") else None)


def _store(world: dict) -> Store:
    store = Store.open(":memory:")
    messages = [_row(number, drawn, world["collide"]) for number, drawn in enumerate(world["rows"])]
    store.add_messages([(row, "INBOX", 1, number + 1) for number, row in enumerate(messages)])
    bounces = [row for row in messages if row.bounce] or messages
    for bounce_index, reported, recipient in world["failures"]:
        bounce = bounces[bounce_index % len(bounces)]
        address = ("jane@acme.example", "hank@globex.example", "ops@globex.example")[recipient]
        store.add_delivery_failures(bounce.message_id, bounce.client_id, bounce.at, (DeliveryFailure(
            messages[reported % len(messages)].message_id, address, "5.1.1", "no such user"),))
    for client, kind, at in world["records"]:
        store.add_recorded(CLIENTS[client].id, kind, how="phone" if kind == "answered" else "alice -> bob",
                           note="called back", by="alice", at=at, recorded_at=at, via="command line")
    unowned = [row for row in messages if row.client_id is None]
    for index, client in world["assignments"]:
        if unowned:
            store.assign_message(unowned[index % len(unowned)].message_id, CLIENTS[client].id, "alice", BASE)
    return store


def _judged(history: list[Envelope], client: Client, policy: Policy, now: datetime) -> Verdict:
    return evaluate(client, history, policy, CALENDAR, now)


def _named(verdict: Verdict, history: list[Envelope]) -> list[str]:
    """The messages `parting explain` lists: those the verdict names that are in the history."""
    ids = {env.message_id for env in history}
    named = [*(mid for hit in verdict.reasons for mid in hit.message_ids),
             *(request.message_id for request in verdict.open_requests)]
    return [mid for mid in dict.fromkeys(named) if mid in ids]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds, st.sampled_from(POLICIES), moment)
def test_the_recent_history_gives_the_verdict_of_the_whole_history(world, policy, now) -> None:
    store = _store(world)
    try:
        whole = {client.id: store.envelopes(client.id) for client in CLIENTS}  # what the daemon judges
        recent = store.recent_histories({client.id: replies_read(policy) for client in CLIENTS}, now)
        sent = store.last_sent([client.id for client in CLIENTS], now)
        stored_failures = {client.id: store.delivery_failures(client.id) for client in CLIENTS}
    finally:
        store.close()
    for client in CLIENTS:
        full, part = whole.get(client.id, []), recent.get(client.id, [])
        # Each bounce of the whole history carries the stored failures it reports, in their order.
        assert all(env.delivery_failures == tuple(row.failure for row in stored_failures[client.id]
                                                  if row.bounce_message_id == env.message_id)
                   for env in full if env.recorded is None)
        assert {env.message_id for env in part} <= {env.message_id for env in full}
        # ... and each as the whole history has it, a bounce with the same failures in the same order.
        assert [env for env in part if env not in full] == []
        assert not Counter(env.message_id for env in part) - Counter(env.message_id for env in full)  # none twice
        expected = _judged(full, client, policy, now)
        verdict = _judged(part, client, policy, now)
        assert verdict == expected
        assert _named(verdict, part) == _named(expected, full)
        assert _status_row(NO_PEOPLE, client, verdict, part, sent.get(client.id), now) == \
            _status_row(NO_PEOPLE, client, expected, full, None, now)


def row(number: int, direction: str, at: datetime, **more) -> MessageRow:
    """Message m<number> of acme's one thread."""
    return MessageRow(message_id=f"m{number}", client_id="acme", thread_id="t1", direction=direction,  # type: ignore[arg-type]
                      at=at, subject=f"s{number}", from_addr="x@example.com", **more)


def test_only_the_messages_from_the_second_latest_real_reply_are_read() -> None:
    store = Store.open(":memory:")
    day = timedelta(days=1)

    history = [
        row(1, "out", BASE, question=True), row(2, "in", BASE + day), row(3, "out", BASE + 2 * day, question=True),
        row(4, "in", BASE + 3 * day),  # the second latest real reply: the history starts here
        row(5, "in", BASE + 4 * day, auto_reply="Auto-Submitted: auto-replied"),
        row(6, "out", BASE + 5 * day, question=True), row(7, "in", BASE + 6 * day),
        row(8, "in", BASE + 7 * day, bounce=True), row(9, "out", BASE + 8 * day, question=True),
        row(10, "in", BASE + 30 * day),  # after `now`: not a reply yet
    ]
    store.add_messages([(r, "INBOX", 1, n) for n, r in enumerate(history)])
    now = BASE + 10 * day
    recent = store.recent_histories({"acme": 2, "globex": 2}, now)
    assert [env.message_id for env in recent["acme"]] == ["m4", "m5", "m6", "m7", "m8", "m9", "m10"]
    assert "globex" not in recent, "a client without mail has no history"
    assert [env.message_id for env in store.recent_histories({"acme": None}, now)["acme"]] == \
        [f"m{n}" for n in range(1, 11)]
    assert len(store.recent_histories({"acme": 2}, BASE + 2 * day)["acme"]) == 10, "fewer than two replies yet"
    assert store.last_sent(["acme", "globex"], now) == {"acme": BASE + 8 * day}
    store.close()


def test_a_bounce_reporting_failures_is_read_once_at_the_window_s_edge_and_before_it() -> None:
    # Bounces reporting failures are kept whatever their date: one before the start is added to
    # the window, one at the very time the window starts is in it already (never twice).
    store = Store.open(":memory:")
    day = timedelta(days=1)

    start = BASE + 3 * day
    history = [row(1, "out", BASE, question=True), row(2, "in", BASE + day, bounce=True),
               row(3, "in", start - timedelta(microseconds=1), bounce=True), row(4, "in", start),
               row(5, "in", start, bounce=True), row(6, "in", BASE + 5 * day)]
    store.add_messages([(r, "INBOX", 1, n) for n, r in enumerate(history)])
    for bounce in ("m2", "m3", "m5"):
        store.add_delivery_failures(bounce, "acme", BASE, (DeliveryFailure("m1", f"{bounce}@example.com", "5.1.1",
                                                                          "no such user"),))
    recent = store.recent_histories({"acme": 2}, BASE + 9 * day)["acme"]
    assert sorted(env.message_id for env in recent) == ["m2", "m3", "m4", "m5", "m6"]
    assert {env.message_id: [f.recipient for f in env.delivery_failures] for env in recent if env.bounce} == {
        "m2": ["m2@example.com"], "m3": ["m3@example.com"], "m5": ["m5@example.com"]}
    store.close()
