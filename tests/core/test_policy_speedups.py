"""The fast paths of the policy give exactly what the plain definitions give.

`reference_read_facts` below is read_facts as first written (two sorts, every answer looked up
reply by reply): the definition the quick timeline, the end-of-history episode and the bisected
answers are held to, over generated histories full of the awkward cases (two messages at one
moment, a message id stored twice, dates in several zones, unsorted input, mail after `now`).
Also here: the policy-hash cache, the hand-filled __init__ of the hot frozen values, format_time.
"""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core import policy as policy_module
from daemon.core import rules
from daemon.core.model import (
    Client,
    DeliveryFailure,
    Envelope,
    HolidayCalendar,
    Policy,
    Unresponsive,
    WorkingHours,
    parse_duration,
)
from daemon.core.policy import (
    Verdict,
    episode_after_last_reply,
    episode_by_answers,
    evaluate,
    policy_hash,
    read_facts,
    replies_read,
    timeline,
)
from daemon.core.rules import Facts, Request, RuleHit, TrackedRequest, format_time, is_real_reply, is_request
from daemon.core.workhours import Calendar

CALENDAR = Calendar(WorkingHours(
    timezone="Europe/London",
    holidays=HolidayCalendar(country="GB", subdivision="ENG", extra=(date(2026, 12, 24),)),
))
CLIENT = Client("acme", "Acme Ltd", "Jane Doe", ("jane@acme.example",), ("acme.example",), "alice")
BASE = datetime(2026, 10, 19, tzinfo=UTC)  # the weeks run over the autumn clock change and Christmas
ZONES = (UTC, ZoneInfo("Europe/London"), ZoneInfo("America/New_York"))
POLICIES = [
    Policy(),
    Policy(reply_answers_all=False),
    Policy(expects_reply="all", unresponsive=Unresponsive(ignored_messages=2, or_silent_for=None)),
    Policy(expects_reply="tagged", reply_answers_all=False, ignored_after=parse_duration("4 business hours")),
    Policy(ignored_after=parse_duration("2 business days"),
           unresponsive=Unresponsive(within=parse_duration("10 days"), or_silent_for=parse_duration("5 days"))),
]
PROPERTIES = settings(max_examples=300, deadline=None)


# ---- the definition ---------------------------------------------------------------------------


def _order(env: Envelope) -> tuple:
    return (env.at, env.message_id, env.direction, env.thread_id, env.subject, env.from_addr,
            env.auto_reply or "", env.bounce, env.question, env.tagged, env.parting_kind or "",
            env.client_id or "")


def _require_aware(env: Envelope) -> Envelope:
    if env.at.tzinfo is None or env.at.utcoffset() is None:
        raise ValueError(f"message {env.message_id} has a date without a time zone: {env.at.isoformat()}")
    return env


def reference_read_facts(client: Client, history, policy: Policy, calendar: Calendar, now: datetime,
                         paused: bool) -> Facts:
    seen: dict[str, Envelope] = {}
    for env in sorted(history, key=lambda env: _order(_require_aware(env))):
        if env.client_id is not None and env.client_id != client.id:
            raise ValueError(f"message {env.message_id} belongs to client {env.client_id}, not {client.id}")
        if env.at <= now:
            seen.setdefault(env.message_id, env)
    messages = sorted(seen.values(), key=_order)
    requests = [env for env in messages if is_request(env, policy)]
    replies = [env for env in messages if is_real_reply(env)]

    def answer_of(request: Envelope) -> Envelope | None:
        for reply in replies:
            if reply.at > request.at and (policy.reply_answers_all or reply.thread_id == request.thread_id):
                return reply
        return None

    answers = {request.message_id: answer_of(request) for request in requests}
    closing = None
    for reply in reversed(replies):
        earlier = [r for r in requests if r.at < reply.at]
        if all(answers[r.message_id] and answers[r.message_id].at <= reply.at for r in earlier):
            closing = reply
            break
    start = closing.at if closing else None
    closed = tuple(r for r in requests if start and r.at < start and answers[r.message_id] == closing)
    tracked = []
    for request in requests:
        if start is not None and request.at < start:
            continue
        due = calendar.add(request.at, policy.ignored_after)
        answer = answers[request.message_id]
        tracked.append(TrackedRequest(request, due, answer, due <= now and (answer is None or answer.at > due)))
    window = policy.unresponsive.within
    in_window = tuple(r for r in tracked if r.ignored and calendar.add(r.due_at, window) > now)
    oldest_open = next((r for r in tracked if r.open), None)
    silence = policy.unresponsive.or_silent_for
    silent_at = None
    if oldest_open and silence is not None and not silence.is_zero:
        silent_at = calendar.add(oldest_open.envelope.at, silence)

    def since_start(env: Envelope) -> bool:
        return start is None or env.at > start

    return Facts(
        client=client, policy=policy, calendar=calendar, now=now, paused=paused,
        closing_reply=closing, closed_requests=closed, requests=tuple(tracked),
        auto_replies=tuple(e for e in messages if e.direction == "in" and e.auto_reply and not e.bounce
                           and since_start(e)),
        bounces=tuple(e for e in messages if e.direction == "in" and e.bounce and since_start(e)),
        in_window=in_window, silent_at=silent_at,
    )


# ---- generated histories ----------------------------------------------------------------------

INBOUND = ("reply", "reply", "reply", "auto", "bounce", "review")
OUTBOUND = ("plain", "plain", "plain", "auto", "nudge", "review")


def build(row: tuple) -> Envelope:
    number, inbound, hour, minute, zone, thread, flavour, question, tagged, owned = row
    kind = (INBOUND if inbound else OUTBOUND)[flavour]
    return Envelope(
        message_id=f"m{number}",  # drawn from a small range, so an id is now and then stored twice
        client_id="acme" if owned else None,
        thread_id=f"t{thread}",
        direction="in" if inbound else "out",
        at=(BASE + timedelta(hours=hour, minutes=minute)).astimezone(ZONES[zone]),
        subject=f"subject {number}",
        from_addr="jane@acme.example" if inbound else "office@example.com",
        auto_reply="Auto-Submitted: auto-replied" if kind == "auto" else None,
        bounce=kind == "bounce",
        question=question,
        tagged=tagged,
        parting_kind=kind if kind in ("nudge", "review") else None,
    )


# Half of the messages fall on one of a few midnights, so that moments are often shared.
hours = st.one_of(st.integers(0, 12).map(lambda day: day * 4 * 24), st.integers(0, 70 * 24))
rows = st.tuples(st.integers(0, 40), st.booleans(), hours, st.sampled_from([0, 0, 0, 17]), st.integers(0, 2),
                 st.integers(0, 1), st.integers(0, 5), st.booleans(), st.booleans(), st.booleans())
histories = st.lists(rows, max_size=40).map(lambda drawn: [build(row) for row in drawn])
moments = st.integers(0, 80 * 24 * 60).map(lambda minutes: BASE + timedelta(minutes=minutes))


@PROPERTIES
@given(histories, st.sampled_from(POLICIES), moments, st.booleans(), st.booleans())
def test_read_facts_gives_what_the_definition_gives(history, policy, now, as_tuple, reverse) -> None:
    given_history = tuple(reversed(history)) if reverse else (tuple(history) if as_tuple else history)
    assert read_facts(CLIENT, given_history, policy, CALENDAR, now, False) == \
        reference_read_facts(CLIENT, history, policy, CALENDAR, now, False)


@PROPERTIES
@given(histories, st.sampled_from([p for p in POLICIES if p.reply_answers_all]), moments)
def test_the_end_of_history_episode_is_the_episode_by_answers(history, policy, now) -> None:
    messages, times = timeline(CLIENT, history, now)
    assert episode_after_last_reply(messages, times, policy) == episode_by_answers(messages, times, policy)


@PROPERTIES
@given(histories, moments)
def test_the_quick_timeline_agrees_with_the_checked_one(history, now) -> None:
    quick = policy_module._quick_timeline(CLIENT, history, now)
    checked = policy_module._checked_timeline(CLIENT, history, now)
    if quick is not None:
        assert quick == checked
    times = [env.at for env in history]
    if len(set(env.message_id for env in history)) == len(history) and len(set(times)) == len(times):
        assert quick is not None, "a history without ties or twice-stored ids takes the quick path"


def test_two_messages_at_one_moment_are_ranked_by_the_whole_order() -> None:
    moment = BASE + timedelta(days=1)
    request = Envelope("b-ask", "acme", "t1", "out", moment, "Question?", "office@example.com", question=True)
    answer = Envelope("a-reply", "acme", "t1", "in", moment.astimezone(ZONES[2]), "Re: Question?",
                      "jane@acme.example")
    assert policy_module._quick_timeline(CLIENT, [request, answer], moment) is None
    messages, _times = timeline(CLIENT, [request, answer], moment)
    assert messages == [answer, request]
    facts = read_facts(CLIENT, [request, answer], Policy(), CALENDAR, moment + timedelta(days=1), False)
    # Sent at the very moment of the reply, the request is not answered by it: it opens the episode.
    assert facts.closing_reply == answer and [r.envelope for r in facts.open] == [request]


def test_what_shares_a_moment_with_a_reply_is_not_after_it() -> None:
    day = BASE + timedelta(days=1)

    def env(mid: str, direction: str, moment: datetime, **more) -> Envelope:
        return Envelope(mid, "acme", "t1", direction, moment, mid, "x@example.com", **more)

    first_reply = env("r1", "in", day)
    asked_then = env("q1", "out", day, question=True)  # sent at the moment of the first reply
    closing = env("r2", "in", day + timedelta(days=1))
    away = env("a1", "in", day + timedelta(days=1), auto_reply="Auto-Submitted: auto-replied")
    asked_with = env("q2", "out", day + timedelta(days=1), question=True)  # ranked before r2 at its moment
    history = [first_reply, asked_then, closing, away, asked_with]
    for policy in (Policy(), Policy(reply_answers_all=False)):
        facts = read_facts(CLIENT, history, policy, CALENDAR, day + timedelta(days=2), False)
        assert facts == reference_read_facts(CLIENT, history, policy, CALENDAR, day + timedelta(days=2), False)
        assert facts.closing_reply == closing
        assert facts.closed_requests == (asked_then,), "the reply at its very moment did not answer it"
        assert facts.auto_replies == (), "an automatic reply at the closing reply's moment is not since it"
        assert [r.envelope for r in facts.open] == [asked_with], "nor is a request at that moment answered"


def test_a_message_stored_twice_counts_once_in_its_first_copy() -> None:
    first = Envelope("m1", "acme", "t1", "out", BASE, "Question?", "office@example.com", question=True)
    again = replace(first, at=BASE + timedelta(days=2), question=False)
    later = replace(first, at=BASE + timedelta(days=30))  # not yet sent at `now`: shadows nothing
    now = BASE + timedelta(days=3)
    assert timeline(CLIENT, [again, first], now)[0] == [first]
    assert timeline(CLIENT, [first, again, later], now)[0] == [first]
    assert timeline(CLIENT, [later, again], now)[0] == [again]


@pytest.mark.parametrize("shape", ["alone", "among aware dates", "first of many"])
def test_a_date_without_a_zone_is_refused_by_name_on_every_path(shape: str) -> None:
    naive = Envelope("m-naive", "acme", "t1", "out", datetime(2026, 10, 20, 10), "Hello", "office@example.com")
    aware = [Envelope(f"m{n}", "acme", "t1", "out", BASE + timedelta(days=n), "Hello", "office@example.com")
             for n in range(3)]
    history = {"alone": [naive], "among aware dates": [*aware[:2], naive, aware[2]],
               "first of many": [naive, *aware]}[shape]
    with pytest.raises(ValueError, match="m-naive has a date without a time zone"):
        read_facts(CLIENT, history, Policy(), CALENDAR, BASE + timedelta(days=9), False)


def test_another_clients_message_is_refused_even_after_now() -> None:
    mine = [Envelope(f"m{n}", "acme", "t1", "out", BASE + timedelta(days=n), "Hello", "office@example.com")
            for n in range(3)]
    stranger = replace(mine[0], message_id="x1", client_id="globex", at=BASE + timedelta(days=99))
    with pytest.raises(ValueError, match="x1 belongs to client globex"):
        read_facts(CLIENT, [*mine, stranger], Policy(), CALENDAR, BASE + timedelta(days=9), False)


# ---- policy_hash ------------------------------------------------------------------------------


def test_the_cached_hash_is_the_hash_of_that_very_policy() -> None:
    stricter = replace(Policy(), ignored_after=parse_duration("2 business days"))
    assert policy_hash(stricter) != policy_hash(Policy())
    assert policy_hash(stricter) == policy_hash(copy.deepcopy(stricter))
    # Equal yet written differently: 3 and 3.0 make different JSON, so an equality-keyed cache
    # would hand the second policy the first one's hash.
    whole = Policy(unresponsive=Unresponsive(ignored_messages=3))
    decimal = Policy(unresponsive=Unresponsive(ignored_messages=3.0))  # type: ignore[arg-type]
    assert whole == decimal
    assert policy_hash(whole) != policy_hash(decimal)


def test_throwaway_policies_never_inherit_a_hash() -> None:
    # Each policy is dropped at once, so its id is soon given to the next one.
    hashes = [policy_hash(Policy(request_tag=f"[tag {n}]")) for n in range(300)]
    assert len(set(hashes)) == 300
    first = Policy(request_tag="[tag 0]")
    assert policy_hash(first) == hashes[0]


# ---- the hand-filled frozen values ------------------------------------------------------------


MOMENT = BASE + timedelta(hours=3)
ENVELOPE = Envelope("m1", "acme", "t1", "out", BASE, "Question?", "office@example.com", question=True)
HOT_VALUES = [
    ENVELOPE,
    RuleHit("request-open", ("m1",), "detail", MOMENT, "{0}", (MOMENT,)),
    Request("m1", "Question?", BASE, MOMENT, False, "t1"),
    TrackedRequest(ENVELOPE, MOMENT, None, False),
    read_facts(CLIENT, [ENVELOPE], Policy(), CALENDAR, MOMENT, False),
    evaluate(CLIENT, [ENVELOPE], Policy(), CALENDAR, MOMENT),
]


@pytest.mark.parametrize("value", HOT_VALUES, ids=lambda value: type(value).__name__)
def test_a_hand_filled_value_holds_every_field_and_stays_frozen(value) -> None:
    names = [item.name for item in fields(value)]
    assert [name for name in vars(value) if name in names] == names
    rebuilt = type(value)(**{item.name: getattr(value, item.name) for item in fields(value) if item.init})
    assert rebuilt == value and hash(rebuilt) == hash(value)
    assert vars(replace(value)) == vars(value)
    with pytest.raises(FrozenInstanceError):
        setattr(value, names[0], None)


def test_a_rule_hit_keeps_its_defaults() -> None:
    hit = RuleHit("paused", (), "evaluation is paused for this client")
    assert (hit.at, hit.template, hit.times) == (None, "", ())
    assert isinstance(HOT_VALUES[-1], Verdict), "evaluate's verdict is among the values checked above"


def test_a_hit_worded_later_is_the_hit_worded_at_once() -> None:
    zone = ZONES[2]
    template = "our request 'Q {{1}}' of {0} went unanswered; ignored since {1}"
    times = (BASE, MOMENT)
    eager = RuleHit("request-ignored", ("m1",), template.format(*(format_time(t, zone) for t in times)), MOMENT,
                    template, times)
    later = RuleHit.worded_later("request-ignored", ("m1",), template, times, MOMENT, zone)
    copied = copy.deepcopy(RuleHit.worded_later("request-ignored", ("m1",), template, times, MOMENT, zone))
    assert "detail" not in vars(later), "nothing is written until the detail is read"
    assert later == eager and hash(later) == hash(eager) and repr(later) == repr(eager)
    assert later.detail == "our request 'Q {1}' of Sun 18 Oct 2026 20:00 went unanswered; ignored since " \
                           "Sun 18 Oct 2026 23:00"
    assert copied == eager and replace(later) == eager and later.to_dict() == eager.to_dict()
    restored = pickle.loads(pickle.dumps(RuleHit.worded_later("request-ignored", ("m1",), template, times, None,
                                                              zone)))
    assert restored.detail == eager.detail
    with pytest.raises(AttributeError, match="no attribute 'detial'"):
        later.detial  # noqa: B018 - a misspelt name still fails
    with pytest.raises(AttributeError, match="no attribute 'detail'"):
        RuleHit.__new__(RuleHit).detail  # noqa: B018 - a hit without its zone has nothing to write


@PROPERTIES
@given(histories, st.sampled_from(POLICIES), moments, st.sampled_from(ZONES))
def test_verdicts_word_their_hits_as_the_rules_write_them(history, policy, now, zone) -> None:
    calendar = Calendar(CALENDAR.working_hours, str(zone))
    for hit in evaluate(CLIENT, history, policy, calendar, now).reasons:
        assert hit.detail == hit.render(calendar.zone) == hit.template.format(
            *(reference_format_time(moment, calendar.zone) for moment in hit.times))


# ---- format_time ------------------------------------------------------------------------------


def reference_format_time(moment: datetime, zone) -> str:
    local = moment.astimezone(zone)
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    return f"{days[local.weekday()]} {local.day} {months[local.month - 1]} {local.year} {local:%H:%M}"


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 3 * 366 * 24 * 60), st.sampled_from(ZONES + (ZoneInfo("Australia/Lord_Howe"),)))
def test_format_time_writes_what_the_plain_format_writes(minutes, zone) -> None:
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes, seconds=minutes % 60)
    assert format_time(moment, zone) == reference_format_time(moment, zone)


def test_format_time_forgets_old_days_and_stays_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rules, "_DAY_WORDS", {})
    monkeypatch.setattr(rules, "_DAY_WORDS_KEPT", 3)
    moments = [BASE + timedelta(days=n, hours=n) for n in range(10)]
    for moment in moments * 2:
        assert format_time(moment, ZONES[1]) == reference_format_time(moment, ZONES[1])
        assert len(rules._DAY_WORDS) <= 3


# ---- how far back a verdict reads (replies_read) ----------------------------------------------


def _with_failures(history: list[Envelope]) -> list[Envelope]:
    """Each bounce reports a failure of an earlier-numbered message (often before the cut)."""
    return [replace(env, delivery_failures=(DeliveryFailure(f"m{int(env.message_id[1:]) // 2}", "jane@acme.example",
                                                            "5.1.1", "no such user"),)) if env.bounce else env
            for env in history]


@settings(max_examples=500, deadline=None)
@given(histories, st.sampled_from(POLICIES), moments, st.lists(st.booleans(), min_size=40, max_size=40))
def test_a_verdict_reads_nothing_before_the_latest_replies_it_names(history, policy, now, extra) -> None:
    history = _with_failures(list({env.message_id: env for env in history}.values()))  # ids are keys in the store
    mine = [replace(env, client_id="acme") for env in history]
    count = replies_read(policy)
    replies = sorted((env.at for env in mine if is_real_reply(env) and env.at <= now), reverse=True)
    if count is None or len(replies) < count:
        return  # the whole history is read
    since = replies[count - 1]
    # What the store keeps: everything from the cut on, every bounce reporting failures, and any
    # older messages besides (recorded answers and assigned mail are kept whatever their date).
    kept = [env for n, env in enumerate(mine) if env.at >= since or env.delivery_failures or extra[n % 40]]
    assert evaluate(CLIENT, kept, policy, CALENDAR, now) == evaluate(CLIENT, mine, policy, CALENDAR, now)
