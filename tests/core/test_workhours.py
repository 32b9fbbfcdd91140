"""Business-time arithmetic: weekends, holidays, zones, DST, units, plain versus business."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core import workhours
from daemon.core.model import Duration, HolidayCalendar, WorkingHours, parse_duration
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


# ---- the Calendar's memos change no answer ----------------------------------------------------
# The arithmetic as first written, nothing remembered: what the memoised Calendar must match.


def plain_day_off(calendar: Calendar, day: date) -> bool:
    hours = calendar.working_hours
    return (day.weekday() not in hours.days or bool(calendar.public_holidays(day.year).get(day))
            or day in hours.holidays.extra)


def plain_next_working_day(calendar: Calendar, day: date) -> date:
    days = (day + timedelta(days=n) for n in range(1, 367))
    return next(candidate for candidate in days if not plain_day_off(calendar, candidate))


def plain_instant(zone: ZoneInfo, day: date, clock: time) -> datetime:
    wall = datetime.combine(day, clock.replace(fold=0), tzinfo=zone)
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    low, high = wall.replace(fold=1).astimezone(UTC), instant
    offset_after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


def plain_interval(calendar: Calendar, day: date) -> tuple[datetime, datetime] | None:
    if plain_day_off(calendar, day):
        return None
    hours = calendar.working_hours
    return plain_instant(calendar.zone, day, hours.start), plain_instant(calendar.zone, day, hours.end)


def plain_working_time(calendar: Calendar, start: datetime, remaining: timedelta) -> datetime:
    day, position = start.astimezone(calendar.zone).date(), start
    while True:
        interval = plain_interval(calendar, day)
        if interval and position < interval[1]:
            begin = max(position, interval[0])
            if remaining <= interval[1] - begin:
                return begin + remaining
            remaining -= interval[1] - begin
        day += timedelta(days=1)


def plain_add(calendar: Calendar, start: datetime, duration: Duration) -> datetime:
    start = start.astimezone(UTC)
    if duration.is_zero:
        return start
    if not duration.business:
        return start + duration.as_timedelta()
    if duration.unit != "days":
        return plain_working_time(calendar, start, duration.as_timedelta())
    hours = calendar.working_hours
    whole = int(duration.amount)
    local = start.astimezone(calendar.zone)
    day, clock = local.date(), local.time()
    if plain_day_off(calendar, day) or clock >= hours.end:
        day, clock = plain_next_working_day(calendar, day), hours.start
    elif clock < hours.start:
        clock = hours.start
    for _ in range(whole):
        day = plain_next_working_day(calendar, day)
    landed = plain_instant(calendar.zone, day, clock)
    length = datetime.combine(day, hours.end) - datetime.combine(day, hours.start)
    fraction = duration.amount - whole
    return plain_working_time(calendar, landed, length * fraction) if fraction else landed


# Long-lived calendars, as the daemon keeps them: their memos fill up across the examples.
SHARED_CALENDARS = [
    Calendar(ENGLAND), Calendar(ENGLAND, "America/New_York"), Calendar(BAVARIA, "Australia/Sydney"),
    Calendar(NIGHT_SHIFT), Calendar(NIGHT_SHIFT, "America/New_York"), Calendar(NIGHT_SHIFT, "Australia/Lord_Howe"),
]
DURATIONS = [parse_duration(text) for text in (
    "1 business days", "3 business days", "1.5 business days", "0.25 business days", "10 business days",
    "4 business hours", "90 business minutes", "0 business days", "2 days")]
# From October 2025 to April 2027: three autumn and two spring clock changes, two Christmases;
# half of the starts fall within a day and a half of a clock change in one of the zones.
FIRST, HOURS_SPANNED = utc(2025, 10, 1), 570 * 24
CLOCK_CHANGES = sorted({
    FIRST + timedelta(hours=hour) for calendar in SHARED_CALENDARS for hour in range(1, HOURS_SPANNED)
    if (FIRST + timedelta(hours=hour)).astimezone(calendar.zone).utcoffset()
    != (FIRST + timedelta(hours=hour - 1)).astimezone(calendar.zone).utcoffset()
})
instants = st.one_of(
    st.integers(0, HOURS_SPANNED * 3600).map(lambda seconds: FIRST + timedelta(seconds=seconds)),
    st.tuples(st.sampled_from(CLOCK_CHANGES), st.integers(-36 * 3600, 36 * 3600))
    .map(lambda pair: pair[0] + timedelta(seconds=pair[1])),
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(SHARED_CALENDARS), instants, st.sampled_from(DURATIONS))
def test_remembered_days_give_the_plain_arithmetic(calendar: Calendar, start: datetime, duration: Duration) -> None:
    due = calendar.add(start, duration)
    assert due == plain_add(calendar, start, duration)
    day = start.astimezone(calendar.zone).date()
    assert calendar.is_working_day(day) is not plain_day_off(calendar, day)
    assert calendar.next_working_day(day) == plain_next_working_day(calendar, day)
    assert calendar.working_interval(day) == plain_interval(calendar, day)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(SHARED_CALENDARS), instants, st.integers(0, 30 * 24 * 60))
def test_remembered_intervals_measure_business_time_as_before(calendar: Calendar, start: datetime,
                                                              minutes: int) -> None:
    end = start + timedelta(minutes=minutes)
    expected = timedelta(0)
    for offset in range((end.astimezone(calendar.zone).date() - start.astimezone(calendar.zone).date()).days + 1):
        interval = plain_interval(calendar, start.astimezone(calendar.zone).date() + timedelta(days=offset))
        if interval:
            expected += max(timedelta(0), min(interval[1], end) - max(interval[0], start))
    assert calendar.business_time_between(start, end) == expected


def test_remembered_days_give_the_plain_arithmetic_all_around_the_clock_changes() -> None:
    # Every quarter hour from three hours before to three hours after each change: the repeated
    # hour's two passes and the skipped hour, in and out of the night shift.
    for change in CLOCK_CHANGES:
        for quarter in range(-12, 13):
            start = change + timedelta(minutes=15 * quarter)
            for calendar in SHARED_CALENDARS:
                for duration in DURATIONS:
                    assert calendar.add(start, duration) == plain_add(calendar, start, duration), \
                        (calendar.zone_name, calendar.working_hours.start, start, duration)


def test_full_memos_start_again_and_stay_right(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workhours, "_MEMO_SIZE", 5)
    calendar = Calendar(ENGLAND)
    starts = [london(2026, 12, 18, 16) + timedelta(hours=7 * n) for n in range(40)]
    for start in starts * 2:
        assert calendar.add(start, parse_duration("3 business days")) == \
            plain_add(calendar, start, parse_duration("3 business days"))
    assert max(len(calendar._day_off_reasons), len(calendar._days_after), len(calendar._intervals)) <= 5
