"""The follow-up call: business time by default, reminders each working day, DONE outcomes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daemon.core.calls import call_outcome, next_reminder_at
from daemon.core.model import FollowupSettings, WorkingHours, in_business_time, parse_duration
from daemon.core.workhours import Calendar

LONDON = Calendar(WorkingHours(timezone="Europe/London"))
FRIDAY_4PM = datetime(2026, 10, 23, 15, 0, tzinfo=UTC)  # 16:00 in London (BST)


@pytest.mark.parametrize(("written", "counted"), [
    ("24 hours", "1 business days"), ("48 hours", "2 business days"), ("1 days", "1 business days"),
    ("4 hours", "4 business hours"), ("90 minutes", "90 business minutes"), ("1 weeks", "5 business days"),
    ("2 business days", "2 business days"),
])
def test_a_plain_wait_is_read_in_business_time(written, counted):
    got, want = in_business_time(parse_duration(written)), parse_duration(counted)
    assert (got.amount, got.unit, got.business) == (want.amount, want.unit, want.business)


def test_24_hours_from_a_friday_release_is_monday_at_the_same_time():
    wait = FollowupSettings(phone_call_after=parse_duration("24 hours")).phone_call_wait
    due = LONDON.add(FRIDAY_4PM, wait)
    assert due == datetime(2026, 10, 26, 16, 0, tzinfo=UTC), "Monday 16:00 in London (GMT from Sunday)"


def test_business_time_false_keeps_the_wall_clock():
    wait = FollowupSettings(phone_call_after=parse_duration("24 hours"), business_time=False).phone_call_wait
    assert LONDON.add(FRIDAY_4PM, wait) == datetime(2026, 10, 24, 15, 0, tzinfo=UTC), "Saturday"


def test_reminders_repeat_on_working_days_up_to_the_limit():
    due = datetime(2026, 10, 23, 15, 0, tzinfo=UTC)  # a Friday
    assert next_reminder_at(LONDON, due, 0, 3) == due
    assert next_reminder_at(LONDON, due, 1, 3) == datetime(2026, 10, 26, 16, 0, tzinfo=UTC)  # Monday, same local time
    assert next_reminder_at(LONDON, due, 2, 3) == datetime(2026, 10, 27, 16, 0, tzinfo=UTC)  # Tuesday
    assert next_reminder_at(LONDON, due, 3, 3) is None


@pytest.mark.parametrize(("note", "outcome", "rest"), [
    ("no answer", "no answer", ""),
    ("No answer.", "no answer", ""),
    ("no-answer, will try again", "no answer", "will try again"),
    ("left message", "left message", ""),
    ("Left a message with reception", "left message", "with reception"),
    ("voicemail", "left message", ""),
    ("reached Jane; she understood", "reached", "Jane; she understood"),
    ("Reached: files by Friday", "reached", "files by Friday"),
    ("Called Jane; she understood", None, "Called Jane; she understood"),
    ("", None, ""),
    ("nobody answered", None, "nobody answered"),
])
def test_done_outcomes(note, outcome, rest):
    assert call_outcome(note) == (outcome, rest)
