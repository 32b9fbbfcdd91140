"""The responsiveness policy on small hand-written histories: every state and every rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.core.model import (
    Client,
    DeliveryFailure,
    Envelope,
    HolidayCalendar,
    LadderStep,
    Policy,
    Unresponsive,
    WorkingHours,
    parse_duration,
)
from daemon.core.policy import RULES, compare, due_actions, evaluate, explain, policy_hash
from daemon.core.workhours import Calendar

LONDON = ZoneInfo("Europe/London")
CALENDAR = Calendar(WorkingHours(
    timezone="Europe/London",
    holidays=HolidayCalendar(country="GB", subdivision="ENG", extra=(date(2026, 12, 24),)),
))
CLIENT = Client("acme", "Acme Ltd", "Jane Doe", ("jane@acme.example",), ("acme.example",), "alice")
MONDAY = datetime(2026, 11, 2, 10, tzinfo=UTC)  # Mon 2 Nov 2026 10:00, GMT in London
NO_SILENCE = Policy(unresponsive=Unresponsive(or_silent_for=None))


def at(day: float, hour: float = 10) -> datetime:
    """`day` days after Monday 2 Nov 2026, at `hour` o'clock UTC (= London in November)."""
    return MONDAY + timedelta(days=day, hours=hour - 10)


def ask(mid: str, day: float, hour: float = 10, *, thread: str = "t1", subject: str | None = None,
        **fields: object) -> Envelope:
    """Our outbound question to the client."""
    defaults: dict[str, object] = {"question": True}
    defaults.update(fields)
    return Envelope(mid, "acme", thread, "out", at(day, hour), subject or f"Question {mid}?",
                    "office@example.com", **defaults)  # type: ignore[arg-type]


def reply(mid: str, day: float, hour: float = 10, *, thread: str = "t1", **fields: object) -> Envelope:
    """A message from the client (a real reply unless fields say otherwise)."""
    return Envelope(mid, "acme", thread, "in", at(day, hour), f"Re: {mid}", "jane@acme.example",
                    **fields)  # type: ignore[arg-type]


def auto(mid: str, day: float, hour: float = 10) -> Envelope:
    return reply(mid, day, hour, auto_reply="Auto-Submitted: auto-replied")


def bounce(mid: str, day: float, hour: float = 10) -> Envelope:
    return reply(mid, day, hour, bounce=True)


def dsn(mid: str, of: str, day: float, hour: float = 10, to: str = "jane@acme.example") -> Envelope:
    """A bounce that names our message `of` as not delivered to `to`."""
    return reply(mid, day, hour, bounce=True, auto_reply="delivery status notification",
                 delivery_failures=(DeliveryFailure(of, to, "5.1.1", "550 5.1.1 user unknown"),))


def recorded(mid: str, day: float, what: str, note: str = "she will send it Friday") -> Envelope:
    """What a person recorded in the client's history (an answer by phone, an owner change)."""
    return Envelope(mid, "acme", "recorded", "in", at(day), note, "alice", recorded=what)


TWO_ADDRESSES = replace(CLIENT, addresses=("jane@acme.example", "accounts@acme.example"))


@dataclass(frozen=True)
class Case:
    name: str
    history: tuple[Envelope, ...]
    now: datetime
    state: str
    hits: frozenset[tuple[str, tuple[str, ...]]]  # (rule, message ids) of every reason
    ignored: int = 0
    ladder: tuple[str, ...] = ()
    episode: str = "ep-start"
    next_due: datetime | None = None
    policy: Policy = field(default_factory=Policy)
    client: Client = CLIENT
    paused: bool = False


def hits(*pairs: tuple[str, tuple[str, ...]]) -> frozenset[tuple[str, tuple[str, ...]]]:
    return frozenset(pairs)


CASES = [
    Case("an answer by phone, recorded, answers the open requests like a reply: a new episode",
         (ask("m1", 0), ask("m2", 1), recorded("rec-1", 8, "answered:phone")), at(9), "active",
         hits(("answered", ("rec-1", "m1", "m2")), ("no-requests", ("rec-1",))), episode="ep-rec-1"),
    Case("a recorded answer answers requests in every thread under a thread-scoped policy",
         (ask("m1", 0, thread="t1"), ask("m2", 0, 11, thread="t2"), recorded("rec-1", 1, "answered:meeting")),
         at(9), "active", hits(("answered", ("rec-1", "m1", "m2")), ("no-requests", ("rec-1",))),
         episode="ep-rec-1", policy=Policy(reply_answers_all=False)),
    Case("an owner change begins a new episode: the old requests no longer count",
         (ask("m1", 0), ask("m2", 1), ask("m3", 2),
          recorded("own-1", 20, "owner_changed", "owner changed from alice to carol")), at(21), "active",
         hits(("owner-changed", ("own-1", "m1", "m2", "m3")), ("no-requests", ("own-1",))), episode="ep-own-1"),
    Case("a request a bounce reports as not delivered is undeliverable, not ignored",
         (ask("m1", 0), dsn("b1", "m1", 0, 10.5, to="accounts@acme.example")), at(10), "active",
         hits(("no-requests", ()), ("undeliverable", ("m1", "b1")), ("bounced", ("b1",))), client=TWO_ADDRESSES),
    Case("every address of the client bounced: unreachable, the ladder never reached",
         (ask("m1", 0), ask("m2", 1), ask("m3", 2), dsn("b1", "m1", 0, 11)), at(30), "unreachable",
         hits(("undeliverable", ("m1", "b1")), ("bounced", ("b1",)), ("unreachable", ("b1",)),
              ("request-ignored", ("m2",)), ("request-ignored", ("m3",)), ("silent-too-long", ("m2",))),
         ignored=2),
    Case("no history: active", (), at(0), "active", hits(("no-requests", ()))),
    Case("a question inside its window: awaiting until Thursday 10:00",
         (ask("m1", 0),), at(1), "awaiting", hits(("request-open", ("m1",))), next_due=at(3)),
    Case("a question unanswered at its due time: overdue, first ladder step",
         (ask("m1", 0),), at(3), "overdue",
         hits(("request-ignored", ("m1",)), ("ladder:nudge", ("m1",))),
         ignored=1, ladder=("nudge",), next_due=at(21)),
    Case("a question sent on Friday 16:00 is due on Wednesday 16:00",
         (ask("m1", 4, 16),), at(8, 15), "awaiting", hits(("request-open", ("m1",))), next_due=at(9, 16)),
    Case("a reply before the due time answers it and starts an episode",
         (ask("m1", 0), reply("r1", 1)), at(5), "active",
         hits(("answered", ("r1", "m1")), ("no-requests", ("r1",))), episode="ep-r1"),
    Case("a late reply still resets: the ignored request belonged to the old episode",
         (ask("m1", 0), reply("r1", 10)), at(11), "active",
         hits(("answered", ("r1", "m1")), ("no-requests", ("r1",))), episode="ep-r1"),
    Case("an unprompted reply closes an episode with no requests",
         (reply("r1", 0),), at(1), "active",
         hits(("answered", ("r1",)), ("no-requests", ("r1",))), episode="ep-r1"),
    Case("a reply at the very instant of the request does not answer it",
         (ask("m1", 0), reply("r1", 0)), at(1), "awaiting",
         hits(("answered", ("r1",)), ("request-open", ("m1",))), episode="ep-r1", next_due=at(3)),
    Case("an auto-reply is disregarded and answers nothing",
         (ask("m1", 0), auto("a1", 0, 11)), at(3), "overdue",
         hits(("request-ignored", ("m1",)), ("auto-reply-ignored", ("a1",)), ("ladder:nudge", ("m1",))),
         ignored=1, ladder=("nudge",), next_due=at(21)),
    Case("a bounce is evidence and answers nothing",
         (ask("m1", 0), bounce("b1", 0, 10.5)), at(2), "awaiting",
         hits(("request-open", ("m1",)), ("bounced", ("b1",))), next_due=at(3)),
    Case("three ignored within 30 days: unresponsive, whole ladder",
         (ask("m1", 0), ask("m2", 1), ask("m3", 2)), at(7), "unresponsive",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("m2",)), ("request-ignored", ("m3",)),
              ("ignored-threshold", ("m1", "m2", "m3")), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m2",)), ("ladder:draft_release", ("m3",))),
         ignored=3, ladder=("nudge", "notify_owner", "draft_release"), next_due=at(21)),
    Case("unresponsive by count alone lasts until the first ignored request leaves the window",
         (ask("m1", 0), ask("m2", 1), ask("m3", 2)), at(7), "unresponsive",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("m2",)), ("request-ignored", ("m3",)),
              ("ignored-threshold", ("m1", "m2", "m3")), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m2",)), ("ladder:draft_release", ("m3",))),
         ignored=3, ladder=("nudge", "notify_owner", "draft_release"), next_due=at(33), policy=NO_SILENCE),
    Case("ignored requests that left the window no longer make the client unresponsive",
         (ask("m1", 0), ask("m2", 1), ask("m3", 40)), at(45), "overdue",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("m2",)), ("request-ignored", ("m3",)),
              ("ladder:nudge", ("m1",)), ("ladder:notify_owner", ("m2",)), ("ladder:draft_release", ("m3",))),
         ignored=3, ladder=("nudge", "notify_owner", "draft_release"), policy=NO_SILENCE),
    # Unresponsive by silence reaches the whole ladder: asked once and never answered must still
    # lead to a release draft (the count alone would stop at the nudge).
    Case("silent for 21 days while a request is open: unresponsive, the whole ladder reached",
         (ask("m1", 0),), at(21), "unresponsive",
         hits(("request-ignored", ("m1",)), ("silent-too-long", ("m1",)), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m1",)), ("ladder:draft_release", ("m1",))),
         ignored=1, ladder=("nudge", "notify_owner", "draft_release")),
    Case("silence counts from the oldest open request, even before any is ignored",
         (ask("m1", 0),), at(2), "unresponsive",
         hits(("request-open", ("m1",)), ("silent-too-long", ("m1",)), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m1",)), ("ladder:draft_release", ("m1",))), next_due=at(3),
         ladder=("nudge", "notify_owner", "draft_release"),
         policy=Policy(unresponsive=Unresponsive(or_silent_for=parse_duration("1 days")))),
    Case("exempt: the evidence is kept, nothing escalates",
         (ask("m1", 0), ask("m2", 1), ask("m3", 2)), at(7), "exempt",
         hits(("exempt", ()), ("request-ignored", ("m1",)), ("request-ignored", ("m2",)),
              ("request-ignored", ("m3",)), ("ignored-threshold", ("m1", "m2", "m3"))),
         ignored=3, client=replace(CLIENT, exempt=True)),
    Case("paused: the evidence is kept, nothing escalates",
         (ask("m1", 0),), at(3), "paused", hits(("paused", ()), ("request-ignored", ("m1",))),
         ignored=1, paused=True),
    Case("questions policy: a statement is no request",
         (ask("m1", 0, question=False),), at(10), "active", hits(("no-requests", ()))),
    Case("all policy: every outbound is a request, our own auto-reply is not",
         (ask("m1", 0, question=False), ask("o1", 0, 11, auto_reply="vacation")), at(1), "awaiting",
         hits(("request-open", ("m1",))), next_due=at(3), policy=Policy(expects_reply="all")),
    Case("tagged policy: only tagged messages are requests",
         (ask("m1", 0), ask("m2", 0, 11, tagged=True)), at(1), "awaiting",
         hits(("request-open", ("m2",))), next_due=at(3, 11), policy=Policy(expects_reply="tagged")),
    Case("parting's review mail is no request; a nudge is",
         (ask("v1", 0, parting_kind="review"), ask("n1", 0, 11, parting_kind="nudge")), at(1), "awaiting",
         hits(("request-open", ("n1",))), next_due=at(3, 11)),
    Case("a nudge left unanswered is ignored too, and moves the ladder on",
         (ask("m1", 0), ask("n1", 3, 11, parting_kind="nudge")), at(9), "overdue",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("n1",)), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("n1",))),
         ignored=2, ladder=("nudge", "notify_owner"), next_due=at(21)),
    Case("reply_answers_all off: a reply in another thread answers nothing",
         (ask("m1", 0, thread="invoice"), reply("r1", 1, thread="chat")), at(3), "overdue",
         hits(("request-ignored", ("m1",)), ("ladder:nudge", ("m1",))),
         ignored=1, ladder=("nudge",), next_due=at(21), policy=Policy(reply_answers_all=False)),
    Case("reply_answers_all off: a reply in the request's thread answers it",
         (ask("m1", 0, thread="invoice"), reply("r1", 1, thread="invoice")), at(3), "active",
         hits(("answered", ("r1", "m1")), ("no-requests", ("r1",))), episode="ep-r1",
         policy=Policy(reply_answers_all=False)),
    Case("reply_answers_all off: a late answer in one thread leaves the other's request counting",
         (ask("m1", 0, thread="invoice"), ask("m2", 0, 11, thread="contract"),
          reply("r1", 10, thread="invoice")), at(12), "overdue",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("m2",)), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m2",))),
         ignored=2, ladder=("nudge", "notify_owner"), next_due=at(21, 11), policy=Policy(reply_answers_all=False)),
    Case("mail dated after now has not happened yet",
         (ask("m1", 0), reply("r1", 5)), at(4), "overdue",
         hits(("request-ignored", ("m1",)), ("ladder:nudge", ("m1",))),
         ignored=1, ladder=("nudge",), next_due=at(21)),
    Case("the same message stored twice counts once",
         (ask("m1", 0), ask("m1", 0), ask("m2", 0, 11)), at(4), "overdue",
         hits(("request-ignored", ("m1",)), ("request-ignored", ("m2",)), ("ladder:nudge", ("m1",)),
              ("ladder:notify_owner", ("m2",))),
         ignored=2, ladder=("nudge", "notify_owner"), next_due=at(21)),
    Case("after a reply only the new episode's requests count",
         (ask("m1", 0), ask("m2", 1), reply("r1", 10), ask("m3", 10, 11)), at(16), "overdue",
         hits(("answered", ("r1", "m1", "m2")), ("request-ignored", ("m3",)), ("ladder:nudge", ("m3",))),
         ignored=1, ladder=("nudge",), episode="ep-r1", next_due=at(31, 11)),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_evaluate(case: Case) -> None:
    verdict = evaluate(case.client, case.history, case.policy, CALENDAR, case.now, paused=case.paused)
    assert verdict.state == case.state
    assert {(hit.rule, hit.message_ids) for hit in verdict.reasons} == case.hits
    assert len(verdict.reasons) == len(case.hits), "no rule fires twice on the same messages"
    assert verdict.ignored_count == case.ignored
    assert verdict.ladder == case.ladder
    assert verdict.episode == case.episode
    assert verdict.next_due == case.next_due
    assert verdict.evaluated_at == case.now
    assert verdict.policy_name == case.policy.name


def test_every_rule_in_the_table_is_exercised_by_the_cases() -> None:
    fired = {rule.split(":")[0] for case in CASES for rule, _ in case.hits}
    assert fired == {rule.name for rule in RULES}


def test_rules_are_named_and_described_once() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(rule.description and "\n" not in rule.description for rule in RULES)


def test_open_requests_report_their_window() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0, subject="Invoice details?"), ask("m2", 4)], Policy(), CALENDAR, at(4))
    first, second = verdict.open_requests
    assert (first.message_id, first.subject, first.sent_at, first.due_at, first.ignored, first.thread_id) == (
        "m1", "Invoice details?", at(0), at(3), True, "t1")
    assert (second.message_id, second.ignored, second.due_at) == ("m2", False, at(9))


def test_ignored_detail_is_plain_words_in_the_client_zone() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0, subject="Invoice details?")], Policy(), CALENDAR, at(4))
    (hit,) = verdict.fired("request-ignored")
    assert hit.detail == ("our request 'Invoice details?' of Mon 2 Nov 2026 10:00 went unanswered; "
                          "ignored since Thu 5 Nov 2026 10:00")


def test_subjects_with_braces_do_not_break_the_words() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0, subject="Fill {name} in?")], Policy(), CALENDAR, at(1))
    assert "'Fill {name} in?'" in verdict.fired("request-open")[0].detail


def test_another_clients_message_is_refused() -> None:
    stranger = replace(ask("m1", 0), client_id="globex")
    with pytest.raises(ValueError, match="globex"):
        evaluate(CLIENT, [stranger], Policy(), CALENDAR, at(1))


def test_a_message_dated_without_a_zone_is_refused_by_name() -> None:
    naive = replace(ask("m1", 0), at=datetime(2026, 11, 2, 10))
    with pytest.raises(ValueError, match="m1 has a date without a time zone"):
        evaluate(CLIENT, [ask("m0", 0), naive], Policy(), CALENDAR, at(1))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        evaluate(CLIENT, [], Policy(), CALENDAR, datetime(2026, 11, 2))


def test_to_dict_is_json_with_iso_times() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0), bounce("b1", 1)], Policy(), CALENDAR, at(4))
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["state"] == "overdue"
    assert data["evaluated_at"] == "2026-11-06T10:00:00+00:00"
    assert data["next_due"] == "2026-11-23T10:00:00+00:00"
    assert data["open_requests"][0]["due_at"] == "2026-11-05T10:00:00+00:00"
    assert {"rule": "bounced", "message_ids": ["b1"], "at": "2026-11-03T10:00:00+00:00"}.items() <= \
        data["reasons"][1].items()
    assert data["ladder"] == ["nudge"]


# ---- policy_hash ----------------------------------------------------------------------------


def test_policy_hash_is_16_hex_and_follows_the_meaning() -> None:
    base = policy_hash(Policy())
    assert len(base) == 16 and int(base, 16) >= 0
    assert policy_hash(Policy()) == base
    assert policy_hash(Policy(ignored_after=parse_duration("3 working days"))) == base
    assert policy_hash(Policy(ignored_after=parse_duration("4 business days"))) != base
    assert policy_hash(Policy(ladder=(LadderStep(1, "nudge"),))) != base
    assert policy_hash(Policy(name="strict")) != base


def test_policy_hash_is_stable_across_interpreter_runs() -> None:
    code = ("from daemon.core.model import Policy; from daemon.core.policy import policy_hash; "
            "print(policy_hash(Policy()))")
    seen = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                              cwd=Path(__file__).resolve().parents[2])
        seen.add(done.stdout.strip())
    assert seen == {policy_hash(Policy())}


# ---- due_actions, explain, compare --------------------------------------------------------


def test_due_actions_are_reached_steps_not_yet_done() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0), ask("m2", 1), ask("m3", 2)], Policy(), CALENDAR, at(7))
    assert due_actions(verdict, set()) == ("nudge", "notify_owner", "draft_release")
    assert due_actions(verdict, {"nudge"}) == ("notify_owner", "draft_release")
    assert due_actions(verdict, {"nudge", "notify_owner", "draft_release"}) == ()


def test_due_actions_of_an_exempt_client_are_none() -> None:
    verdict = evaluate(replace(CLIENT, exempt=True), [ask("m1", 0)], Policy(), CALENDAR, at(5))
    assert due_actions(verdict, ()) == ()


def test_explain_tells_the_evidence_in_time_order() -> None:
    history = [ask("m1", 0, subject="Invoice details?"), auto("a1", 0, 11), ask("m2", 1), ask("m3", 2)]
    verdict = evaluate(CLIENT, history, Policy(), CALENDAR, at(7))
    lines = explain(verdict, CLIENT, "Europe/London")
    assert lines[0].startswith("Acme Ltd (acme): policy 'default'")
    body = lines[1:-2]
    assert body[0] == ("Mon 2 Nov 2026 10:00: we sent 'Invoice details?', expecting a reply by "
                       "Thu 5 Nov 2026 10:00 [request]")
    assert "automatic reply" in body[1] and body[1].startswith("Mon 2 Nov 2026 11:00")
    assert any("ignored since Thu 5 Nov 2026 10:00 [request-ignored]" in line for line in body)
    assert any(line.endswith("[ignored-threshold]") for line in body)
    stamps = [datetime.strptime(" ".join(line.split()[:5]).rstrip(":"), "%a %d %b %Y %H:%M") for line in body]
    assert stamps == sorted(stamps)
    assert lines[-2] == ("State: unresponsive, 3 ignored request(s) in this episode; "
                         "ladder reached: nudge, notify_owner, draft_release.")
    assert lines[-1].startswith("Next: the verdict may change on Mon 23 Nov 2026 10:00")


def test_explain_renders_in_the_zone_asked_for() -> None:
    verdict = evaluate(CLIENT, [ask("m1", 0, subject="Invoice details?")], Policy(), CALENDAR, at(4))
    lines = explain(verdict, CLIENT, ZoneInfo("America/New_York"))
    assert ("Thu 5 Nov 2026 05:00: our request 'Invoice details?' of Mon 2 Nov 2026 05:00 went unanswered; "
            "ignored since Thu 5 Nov 2026 05:00 [request-ignored]") in lines


def test_explain_of_an_active_client_says_nothing_is_pending() -> None:
    verdict = evaluate(CLIENT, [], Policy(), CALENDAR, at(0))
    lines = explain(verdict, CLIENT, LONDON)
    assert "no message of ours is waiting for a reply [no-requests]" in lines
    assert lines[-1] == "Next: nothing until we ask the client something."


def test_compare_names_state_and_ladder_moves() -> None:
    history = [ask("m1", 0), ask("m2", 1)]
    awaiting = evaluate(CLIENT, history, Policy(), CALENDAR, at(1))
    overdue = evaluate(CLIENT, history, Policy(), CALENDAR, at(3))
    both = evaluate(CLIENT, history, Policy(), CALENDAR, at(4))
    assert compare(awaiting, awaiting) is None
    assert compare(awaiting, overdue) == "acme: awaiting -> overdue (1 ignored); ladder reached nudge"
    assert compare(overdue, both) == "acme: still overdue (2 ignored); ladder reached notify_owner"
    answered = evaluate(CLIENT, [*history, reply("r1", 4, 12)], Policy(), CALENDAR, at(5))
    assert compare(both, answered) == (
        "acme: overdue -> active (0 ignored); ladder reset (nudge, notify_owner no longer reached)")
