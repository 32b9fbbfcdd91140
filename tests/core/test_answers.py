"""Answers outside email: the way and the note read from ANSWERED, and what cannot be recorded."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.core.answers import AnswerProblem, check_answer, parse_when, read_answered
from daemon.core.replytext import parse_command

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)


@pytest.mark.parametrize(("reason", "how", "note"), [
    ("by phone: she will send it Friday", "phone", "she will send it Friday"),
    ("Phone - all fine", "phone", "all fine"),
    ("in a meeting: agreed the dates", "meeting", "agreed the dates"),
    ("meeting, agreed", "meeting", "agreed"),
    ("in person; all good", "meeting", "all good"),
    ("she wrote from her private address", "other", "she wrote from her private address"),
    ("phoneless note", "other", "phoneless note"),
])
def test_the_way_is_read_off_the_note(reason, how, note):
    assert read_answered(reason) == (how, note)


def test_answered_is_a_command_only_in_reply_to_a_notice():
    command = parse_command("ANSWERED by phone: she agreed\n\nAlice", role="notice")
    assert (command.kind, command.reason) == ("answered", "by phone: she agreed")
    assert parse_command("ANSWERED by phone", role="owner").kind == "unknown"
    assert parse_command("APPROVE", role="notice").kind == "unknown"


@pytest.mark.parametrize(("how", "note", "at", "problem"), [
    ("fax", "x", NOW, "not 'fax'"),
    ("phone", "  ", NOW, "say what the client answered"),
    ("phone", "x", datetime(2026, 11, 3, 13, tzinfo=UTC), "after now"),
    ("phone", "x", datetime(2026, 11, 3, 11), "time zone"),
])
def test_what_cannot_be_recorded(how, note, at, problem):
    with pytest.raises(AnswerProblem, match=problem):
        check_answer(how, note, at, NOW)


def test_a_local_time_is_read_in_the_zone_given():
    assert parse_when("2026-07-01 14:30", "Europe/London") == datetime(2026, 7, 1, 13, 30, tzinfo=UTC)
    assert parse_when("2026-07-01T14:30+00:00", "Europe/London") == datetime(2026, 7, 1, 14, 30, tzinfo=UTC)
    with pytest.raises(AnswerProblem, match="not a time"):
        parse_when("yesterday", "Europe/London")


def test_assign_and_dismiss_are_commands_only_in_reply_to_a_triage_email():
    assign = parse_command("ASSIGN acme LEARN\n", role="triage")
    assert (assign.kind, assign.reason) == ("assign", "acme LEARN")
    dismiss = parse_command("Dismiss: a newsletter", role="triage")
    assert (dismiss.kind, dismiss.reason) == ("dismiss", "a newsletter")
    assert parse_command("ASSIGN acme", role="owner").kind == "unknown"
    assert parse_command("ANSWERED by phone", role="triage").kind == "unknown"
