"""Properties of the policy over generated histories (0-30 messages over about 60 days)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.model import Client, Envelope, HolidayCalendar, Policy, Unresponsive, WorkingHours
from daemon.core.policy import STATE_RANK, Verdict, compare, evaluate
from daemon.core.workhours import Calendar

CALENDAR = Calendar(WorkingHours(
    timezone="Europe/London",
    holidays=HolidayCalendar(country="GB", subdivision="ENG", extra=(date(2026, 12, 24),)),
))
CLIENT = Client("acme", "Acme Ltd", "Jane Doe", ("jane@acme.example",), ("acme.example",), "alice")
# The default policy: 3 business days to answer, 3 ignored within 30 days or 21 days silent.
POLICY = Policy()
BASE = datetime(2026, 11, 2, tzinfo=UTC)  # 60 days from here run through Christmas and New Year
SPAN = 60 * 24 * 60  # minutes
PROPERTIES = settings(max_examples=200, deadline=None)

INBOUND = ("reply", "reply", "auto", "bounce")
OUTBOUND = ("plain", "plain", "plain", "auto", "nudge", "review")


def build(index: int, inbound: bool, minute: int, thread: int, question: bool, tagged: bool, flavour: int) -> Envelope:
    kind = (INBOUND if inbound else OUTBOUND)[flavour % (len(INBOUND) if inbound else len(OUTBOUND))]
    return Envelope(
        message_id=f"m{index}",
        client_id="acme",
        thread_id=f"t{thread}",
        direction="in" if inbound else "out",
        at=BASE + timedelta(minutes=minute),
        subject=f"subject {index}",
        from_addr="jane@acme.example" if inbound else "office@example.com",
        auto_reply="Auto-Submitted: auto-replied" if kind == "auto" else None,
        bounce=kind == "bounce",
        question=question,
        tagged=tagged,
        parting_kind=kind if kind in ("nudge", "review") else None,
    )


rows = st.tuples(st.booleans(), st.integers(0, SPAN), st.integers(0, 2), st.booleans(), st.booleans(),
                 st.integers(0, 11))
histories = st.lists(rows, max_size=30).map(
    lambda drawn: tuple(build(index, *row) for index, row in enumerate(drawn))
)
# Minutes after the last message (or after BASE for an empty history).
later = st.integers(0, 40 * 24 * 60)


def last_moment(history: tuple[Envelope, ...]) -> datetime:
    return max((env.at for env in history), default=BASE)


def judge(history: tuple[Envelope, ...], now: datetime, policy: Policy = POLICY) -> Verdict:
    return evaluate(CLIENT, history, policy, CALENDAR, now)


@PROPERTIES
@given(histories, later, later)
def test_a_real_reply_after_everything_makes_the_client_active(history, gap, wait) -> None:
    answer = Envelope("answer", "acme", "t9", "in", last_moment(history) + timedelta(minutes=gap + 1),
                      "Re: all of it", "jane@acme.example")
    verdict = judge((*history, answer), answer.at + timedelta(minutes=wait))
    assert verdict.state == "active"
    assert verdict.episode == "ep-answer"
    assert verdict.ignored_count == 0 and verdict.ladder == ()


noise = st.lists(st.tuples(st.booleans(), st.integers(0, SPAN + 40 * 24 * 60), st.integers(0, 2)), min_size=1,
                 max_size=5)


@PROPERTIES
@given(histories, noise, st.integers(0, SPAN + 40 * 24 * 60))
def test_auto_replies_and_bounces_never_make_the_client_more_responsive(history, extra, minute) -> None:
    now = BASE + timedelta(minutes=minute)
    automatic = tuple(
        Envelope(f"x{index}", "acme", f"t{thread}", "in", BASE + timedelta(minutes=at), "Out of office",
                 "mailer-daemon@acme.example", auto_reply=None if is_bounce else "Auto-Submitted: auto-replied",
                 bounce=is_bounce)
        for index, (is_bounce, at, thread) in enumerate(extra)
    )
    before = judge(history, now)
    after = judge((*history, *automatic), now)
    assert STATE_RANK[after.state] >= STATE_RANK[before.state]
    assert after.ignored_count >= before.ignored_count


@PROPERTIES
@given(histories.flatmap(lambda history: st.tuples(st.just(history), st.permutations(history))), later)
def test_the_verdict_does_not_depend_on_the_order_of_the_history(pair, wait) -> None:
    history, shuffled = pair
    now = last_moment(history) - timedelta(days=10) + timedelta(minutes=wait)  # some mail may lie ahead
    assert judge(history, now).to_dict() == judge(tuple(shuffled), now).to_dict()
    assert judge(tuple(reversed(history)), now).to_dict() == judge(history, now).to_dict()


# With the default policy an ignored request that ages out of the 30-day `within` window has been
# open for more than 21 days (it was sent before it became ignored), so `or_silent_for` keeps the
# client unresponsive: time alone never makes a client more responsive. This needs
# or_silent_for <= within, which the default policy has; without silence the window would let a
# client drift back from unresponsive to overdue, which is intended.
@PROPERTIES
@given(histories, later, later)
def test_time_alone_never_makes_the_client_more_responsive(history, first_wait, second_wait) -> None:
    assert POLICY.unresponsive.or_silent_for is not None
    assert POLICY.unresponsive.or_silent_for.as_timedelta() <= POLICY.unresponsive.within.as_timedelta()
    earlier_now = last_moment(history) + timedelta(minutes=first_wait)
    later_now = earlier_now + timedelta(minutes=second_wait)
    earlier, later_verdict = judge(history, earlier_now), judge(history, later_now)
    assert STATE_RANK[later_verdict.state] >= STATE_RANK[earlier.state]
    assert later_verdict.ignored_count >= earlier.ignored_count
    assert later_verdict.episode == earlier.episode


@PROPERTIES
@given(histories, st.integers(0, SPAN + 40 * 24 * 60))
def test_a_client_never_asked_anything_is_never_overdue(history, minute) -> None:
    statements = tuple(replace(env, question=False) for env in history)
    verdict = judge(statements, BASE + timedelta(minutes=minute), Policy(expects_reply="questions"))
    assert verdict.state not in ("overdue", "unresponsive")
    assert verdict.state == "active" and verdict.ignored_count == 0 and verdict.ladder == ()


POLICIES = st.sampled_from([
    POLICY,
    Policy(reply_answers_all=False, unresponsive=Unresponsive(or_silent_for=None)),
    Policy(expects_reply="all"),
])


@PROPERTIES
@given(histories, later, POLICIES, st.floats(0, 1))
def test_nothing_changes_before_next_due(history, wait, policy, fraction) -> None:
    now = last_moment(history) + timedelta(minutes=wait)
    verdict = judge(history, now, policy)
    if verdict.next_due is None:
        # Nothing pending: even a year later the state and the ladder are the same.
        assert compare(verdict, judge(history, now + timedelta(days=365), policy)) is None
        return
    assert verdict.next_due > now
    inside = now + (verdict.next_due - now - timedelta(microseconds=1)) * fraction
    assert compare(verdict, judge(history, inside, policy)) is None
