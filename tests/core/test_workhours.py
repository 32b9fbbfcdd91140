"""Business-time arithmetic: weekends, holidays, zones, DST, units, plain versus business."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.core.model import HolidayCalendar, WorkingHours, parse_duration
from daemon.core.workhours import Calendar

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")

ENGLAND = WorkingHours(
    timezone="Europe/London",
    holidays=HolidayCalendar(country="GB", subdivision="ENG", extra=(date(2026, 12, 24),)),
)
BAVARIA = WorkingHours(timezone="Europe/Berlin", holidays=HolidayCalendar(country="DE", subdivision="BY"))
# Every day, 01:30-03:00 local: the hours the clocks change in Europe/London.
NIGHT_SHIFT = WorkingHours(timezone="Europe/London", days=tuple(range(7)), start=time(1, 30), end=time(3, 0))


def london(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


ADD_CASES = [
    # (id, working hours, zone override, start, duration, expected)
    ("required: Fri 16:00 + 3 business days is Wed 16:00",
     ENGLAND, None, london(2026, 11, 6, 16), "3 business days", london(2026, 11, 11, 16)),
    ("Christmas 2026: 24 (extra), 25, 26 and the observed 28 Dec are skipped",
     ENGLAND, None, london(2026, 12, 23, 16), "3 business days", london(2026, 12, 31, 16)),
    ("end of year: 31 Dec 2025 + 1 business day skips New Year's Day",
     ENGLAND, None, london(2025, 12, 31, 11), "1 business days", london(2026, 1, 2, 11)),
    ("end of year: 31 Dec 2026 + 1 business day runs past the weekend into 2027",
     ENGLAND, None, london(2026, 12, 31, 11), "1 business days", london(2027, 1, 4, 11)),
    ("Easter Monday in England is a holiday (Good Friday too)",
     ENGLAND, None, london(2026, 4, 2, 10), "1 business days", london(2026, 4, 7, 10)),
    ("Epiphany is a holiday in Bavaria",
     BAVARIA, None, datetime(2026, 1, 5, 10, tzinfo=ZoneInfo("Europe/Berlin")), "1 business days",
     datetime(2026, 1, 7, 10, tzinfo=ZoneInfo("Europe/Berlin"))),
    ("a Saturday start begins at Monday's opening",
     ENGLAND, None, london(2026, 11, 7, 12), "1 business days", london(2026, 11, 10, 9)),
    ("before opening counts from the opening",
     ENGLAND, None, london(2026, 11, 9, 7), "1 business days", london(2026, 11, 10, 9)),
    ("at closing counts from the next opening",
     ENGLAND, None, london(2026, 11, 9, 17, 30), "1 business days", london(2026, 11, 11, 9)),
    ("one and a half business days: a day, then half of 8.5 working hours",
     ENGLAND, None, london(2026, 11, 9, 9), "1.5 business days", london(2026, 11, 10, 13, 15)),
    ("business hours run over into the next working day",
     ENGLAND, None, london(2026, 11, 6, 16), "4 business hours", london(2026, 11, 9, 11, 30)),
    ("business minutes inside one day",
     ENGLAND, None, london(2026, 11, 9, 9, 5), "90 business minutes", london(2026, 11, 9, 10, 35)),
    ("business hours from outside hours start at the opening",
     ENGLAND, None, london(2026, 11, 9, 18), "2 business hours", london(2026, 11, 10, 11)),
    ("business hours that use up a day exactly end at the closing",
     ENGLAND, None, london(2026, 11, 9, 9), "8.5 business hours", london(2026, 11, 9, 17, 30)),
    ("zero duration returns the start, even outside hours",
     ENGLAND, None, london(2026, 11, 7, 3), "0", london(2026, 11, 7, 3)),
    ("zero business days returns the start",
     ENGLAND, None, london(2026, 11, 7, 3), "0 business days", london(2026, 11, 7, 3)),
    ("plain days ignore weekends and holidays",
     ENGLAND, None, london(2026, 12, 23, 16), "3 days", london(2026, 12, 26, 16)),
    ("plain hours ignore working hours",
     ENGLAND, None, london(2026, 11, 6, 16), "24 hours", london(2026, 11, 7, 16)),
    ("plain hours are elapsed time across the spring change (23-hour day)",
     ENGLAND, None, london(2026, 3, 28, 12), "24 hours", london(2026, 3, 29, 13)),
    ("DST spring: business days keep the local time of day (GMT -> BST)",
     ENGLAND, None, london(2026, 3, 27, 16), "3 business days", london(2026, 4, 1, 16)),
    ("DST autumn: business days keep the local time of day (BST -> GMT)",
     ENGLAND, None, london(2026, 10, 23, 16), "3 business days", london(2026, 10, 28, 16)),
    ("DST spring: business hours over the weekend the clocks go forward",
     ENGLAND, None, london(2026, 3, 27, 17), "1 business hours", london(2026, 3, 30, 9, 30)),
    ("DST spring: 01:45 on 29 Mar does not exist; moves to 02:00 BST (01:00 UTC)",
     NIGHT_SHIFT, None, london(2026, 3, 28, 1, 45), "1 business days", utc(2026, 3, 29, 1, 0)),
    ("DST autumn: 01:45 on 25 Oct happens twice; the first (BST) is taken",
     NIGHT_SHIFT, None, london(2026, 10, 24, 1, 45), "1 business days", utc(2026, 10, 25, 0, 45)),
    ("DST autumn: working minutes through the repeated hour are elapsed time",
     NIGHT_SHIFT, None, utc(2026, 10, 25, 0, 30), "90 business minutes", utc(2026, 10, 25, 2, 0)),
    ("client zone override: Friday 16:00 in New York is counted in New York hours",
     ENGLAND, "America/New_York", datetime(2026, 11, 6, 16, tzinfo=NEW_YORK), "3 business days",
     datetime(2026, 11, 11, 16, tzinfo=NEW_YORK)),
    ("client zone override: 15:00 London is 10:00 New York, inside New York hours",
     ENGLAND, "America/New_York", london(2026, 11, 9, 15), "1 business hours", london(2026, 11, 9, 16)),
    ("the same 15:00 London start in the London calendar",
     ENGLAND, None, london(2026, 11, 9, 17), "1 business hours", london(2026, 11, 10, 9, 30)),
]


@pytest.mark.parametrize(
    ("hours", "zone", "start", "text", "expected"),
    [case[1:] for case in ADD_CASES],
    ids=[case[0] for case in ADD_CASES],
)
def test_add(hours: WorkingHours, zone: str | None, start: datetime, text: str, expected: datetime) -> None:
    result = Calendar(hours, zone).add(start, parse_duration(text))
    assert result == expected
    assert result.utcoffset() == timedelta(0), "results are given in UTC"


WORKING_DAY_CASES = [
    ("Friday", ENGLAND, date(2026, 11, 6), True),
    ("Saturday", ENGLAND, date(2026, 11, 7), False),
    ("Sunday", ENGLAND, date(2026, 11, 8), False),
    ("Christmas Day", ENGLAND, date(2026, 12, 25), False),
    ("Boxing Day observed on Monday", ENGLAND, date(2026, 12, 28), False),
    ("extra company day off", ENGLAND, date(2026, 12, 24), False),
    ("Easter Monday GB", ENGLAND, date(2026, 4, 6), False),
    ("Epiphany is no holiday in England", ENGLAND, date(2026, 1, 6), True),
    ("Epiphany in Bavaria", BAVARIA, date(2026, 1, 6), False),
    ("Corpus Christi in Bavaria", BAVARIA, date(2026, 6, 4), False),
    ("no country: Christmas on a weekday is worked", WorkingHours(), date(2026, 12, 25), True),
    ("a seven-day calendar works Sundays", NIGHT_SHIFT, date(2026, 11, 8), True),
]


@pytest.mark.parametrize(
    ("hours", "day", "working"), [c[1:] for c in WORKING_DAY_CASES], ids=[c[0] for c in WORKING_DAY_CASES]
)
def test_is_working_day(hours: WorkingHours, day: date, working: bool) -> None:
    assert Calendar(hours).is_working_day(day) is working


def test_day_off_reason_names_the_holiday() -> None:
    calendar = Calendar(ENGLAND)
    assert calendar.day_off_reason(date(2026, 12, 25)) == "Christmas Day"
    assert calendar.day_off_reason(date(2026, 12, 24)) == "company day off"
    assert calendar.day_off_reason(date(2026, 11, 7)) == "weekend"
    assert calendar.day_off_reason(date(2026, 11, 9)) is None


BETWEEN_CASES = [
    ("inside one day", london(2026, 11, 9, 10), london(2026, 11, 9, 12), timedelta(hours=2)),
    ("over a weekend", london(2026, 11, 6, 16), london(2026, 11, 9, 10), timedelta(hours=2, minutes=30)),
    ("outside hours only", london(2026, 11, 9, 18), london(2026, 11, 10, 8), timedelta(0)),
    ("reversed is zero", london(2026, 11, 9, 12), london(2026, 11, 9, 10), timedelta(0)),
    ("across Christmas: only 29-31 Dec are worked",
     london(2026, 12, 23, 17, 30), london(2027, 1, 1, 23), timedelta(hours=3 * 8.5)),
]


@pytest.mark.parametrize(
    ("earlier", "later", "expected"), [c[1:] for c in BETWEEN_CASES], ids=[c[0] for c in BETWEEN_CASES]
)
def test_business_time_between(earlier: datetime, later: datetime, expected: timedelta) -> None:
    assert Calendar(ENGLAND).business_time_between(earlier, later) == expected


@pytest.mark.parametrize("text", ["45 business minutes", "7 business hours", "2 business days"])
def test_business_time_between_measures_what_add_added(text: str) -> None:
    calendar = Calendar(ENGLAND)
    start = london(2026, 11, 9, 11)
    due = calendar.add(start, parse_duration(text))
    assert calendar.business_time_between(start, due) == {
        "45 business minutes": timedelta(minutes=45),
        "7 business hours": timedelta(hours=7),
        "2 business days": timedelta(hours=17),
    }[text]


def test_holidays_are_computed_once_per_year() -> None:
    calendar = Calendar(ENGLAND)
    first = calendar.public_holidays(2026)
    assert calendar.public_holidays(2026) is first
    assert date(2027, 12, 27) in calendar.public_holidays(2027)  # Christmas 2027 falls on a Saturday


@pytest.mark.parametrize(
    ("hours", "zone", "message"),
    [
        (WorkingHours(), "Mars/Olympus", "unknown time zone"),
        (WorkingHours(holidays=HolidayCalendar(country="XX")), None, "holidays"),
        (WorkingHours(holidays=HolidayCalendar(country="GB", subdivision="ZZZ")), None, "holidays"),
        (WorkingHours(days=()), None, "at least one working day"),
        (WorkingHours(start=time(17), end=time(9)), None, "must be after"),
    ],
)
def test_bad_calendars_are_refused_clearly(hours: WorkingHours, zone: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Calendar(hours, zone)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        Calendar(ENGLAND).add(datetime(2026, 11, 9, 10), parse_duration("1 business days"))
