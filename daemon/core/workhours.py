"""Business time: working days, working hours, public holidays and time zones.

Rules of this module:
- Pure: holidays come from the `holidays` package (a computation, no IO), computed per year on
  first use and cached in the Calendar, or given for some years by the shell (`known_holidays`,
  read from a file the daemon wrote); `now` is never read here. What depends only on a day (is
  it worked, its working hours, N working days on) is remembered per Calendar too, in bounded
  memos: a Calendar never changes once built.
- Working time is counted in the calendar's zone (the client's, if it has one): business minutes
  and hours advance only inside [start, end) of working days; "N business days" moves N working
  days forward and keeps the local time of day, a start outside hours counting from the next
  opening. A fractional business day is that fraction of a working day's hours.
- Local times become instants through zoneinfo: a local time that does not exist (clocks go
  forward) moves to the first valid instant after the gap; an ambiguous one (clocks go back)
  takes the first occurrence (fold=0). Results are aware datetimes in UTC.
- Zero durations return the start unchanged; plain durations are wall-clock spans.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from daemon.core.model import Duration, WorkingHours

# A calendar whose every day is a holiday would make the search loops below spin forever; no real
# calendar goes this long without a working day.
_MAX_DAYS_WITHOUT_WORK = 366
# Entries per memo before it starts again: ample for decades of days, small in memory.
_MEMO_SIZE = 20_000
_Value = TypeVar("_Value")
_Key = TypeVar("_Key")


class Calendar:
    """The working calendar of the company, seen from one time zone."""

    def __init__(self, working_hours: WorkingHours, timezone: str | None = None, *,
                 known_holidays: Mapping[int, Mapping[date, str]] | None = None) -> None:
        """`known_holidays`: public holidays of some years, as `public_holidays` returns them,
        worked out before for this country and subdivision (adapters/holiday_cache.py); other
        years are computed. Given, the holidays package is imported only for another year."""
        zone_name = timezone or working_hours.timezone
        try:
            self.zone: tzinfo = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {zone_name!r}: use an IANA name such as 'Europe/London'") from exc
        if not working_hours.days:
            raise ValueError("working_hours.days is empty: at least one working day is needed")
        if working_hours.end <= working_hours.start:
            raise ValueError(
                f"working hours end ({working_hours.end:%H:%M}) must be after they start "
                f"({working_hours.start:%H:%M})"
            )
        self.working_hours = working_hours
        self.zone_name = zone_name
        self._country = working_hours.holidays.country
        self._subdivision = working_hours.holidays.subdivision
        self._extra = frozenset(working_hours.holidays.extra)
        self._public_holidays: dict[int, dict[date, str]] = {
            year: dict(table) for year, table in (known_holidays or {}).items()}
        self._day_off_reasons: dict[date, str | None] = {}
        self._days_after: dict[tuple[date, int], date] = {}
        self._intervals: dict[date, tuple[datetime, datetime] | None] = {}
        if self._country and known_holidays is None:  # known: the package accepted them when computed
            from daemon.core.holiday_tables import country_holidays  # here: not with the holidays known

            try:  # without years nothing is computed yet; this only checks country and subdivision
                country_holidays(self._country, subdiv=self._subdivision)
            except NotImplementedError as exc:
                raise ValueError(f"holidays: {exc}") from exc

    # ---- days ------------------------------------------------------------------------------

    def public_holidays(self, year: int) -> dict[date, str]:
        """The public holidays of `year` (date -> name); empty when no country is configured."""
        if year not in self._public_holidays:
            found: dict[date, str] = {}
            if self._country:
                from daemon.core.holiday_tables import country_holidays

                table = country_holidays(self._country, subdiv=self._subdivision, years=year)
                found = dict(table.items())
            self._public_holidays[year] = found
        return self._public_holidays[year]

    def day_off_reason(self, day: date) -> str | None:
        """Why `day` is not a working day ("weekend", a holiday's name, "company day off"), or None."""
        try:
            return self._day_off_reasons[day]
        except KeyError:
            return _remember(self._day_off_reasons, day, self._find_day_off_reason(day))

    def _find_day_off_reason(self, day: date) -> str | None:
        if day.weekday() not in self.working_hours.days:
            return "weekend"
        name = self.public_holidays(day.year).get(day)
        if name:
            return name
        if day in self._extra:
            return "company day off"
        return None

    def is_working_day(self, day: date) -> bool:
        return self.day_off_reason(day) is None

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after `day`."""
        return self.working_days_after(day, 1)

    def working_days_after(self, day: date, count: int) -> date:
        """The `count`th working day after `day` (`day` itself when count is 0)."""
        try:
            return self._days_after[day, count]
        except KeyError:
            pass
        landed = day
        for _ in range(count):
            for offset in range(1, _MAX_DAYS_WITHOUT_WORK + 1):
                candidate = landed + timedelta(days=offset)
                if self.is_working_day(candidate):
                    landed = candidate
                    break
            else:
                raise ValueError(f"no working day within a year after {landed}: check working_hours and holidays")
        return _remember(self._days_after, (day, count), landed)

    # ---- instants --------------------------------------------------------------------------

    def local(self, moment: datetime) -> datetime:
        """`moment` seen in the calendar's zone."""
        return _require_aware(moment).astimezone(self.zone)

    def instant(self, day: date, clock: time) -> datetime:
        """The UTC instant of local `day` `clock`, moving out of a DST gap to its end."""
        wall = datetime.combine(day, clock.replace(fold=0) if clock.fold else clock, tzinfo=self.zone)
        instant = wall.astimezone(UTC)
        # Both sides share the zone, so == compares their wall times (the fold is ignored).
        if instant.astimezone(self.zone) == wall:
            return instant  # exists; for an ambiguous wall time fold=0 picked the first occurrence
        # Inside a gap: fold=1 reads the wall time with the offset after the change, fold=0 with
        # the one before, so the change itself lies in (after, before]; find it to the microsecond.
        low = wall.replace(fold=1).astimezone(UTC)
        high = instant
        offset_after = high.astimezone(self.zone).utcoffset()
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.zone).utcoffset() == offset_after:
                high = middle
            else:
                low = middle
        return high

    def working_interval(self, day: date) -> tuple[datetime, datetime] | None:
        """[opening, closing) of `day` as UTC instants, or None on a day off."""
        try:
            return self._intervals[day]
        except KeyError:
            pass
        interval = None
        if self.is_working_day(day):
            interval = self.instant(day, self.working_hours.start), self.instant(day, self.working_hours.end)
        return _remember(self._intervals, day, interval)

    # ---- arithmetic ------------------------------------------------------------------------

    def add(self, start: datetime, duration: Duration) -> datetime:
        """`start` plus `duration`: wall-clock time, or working time for a business duration."""
        start = _require_aware(start).astimezone(UTC)
        if duration.is_zero:
            return start
        if duration.amount < 0:
            raise ValueError(f"negative duration {duration}: deadlines only move forward")
        if not duration.business:
            return start + duration.as_timedelta()
        if duration.unit == "days":
            return self._add_business_days(start.astimezone(self.zone), duration.amount)
        return self._add_working_time(start, duration.as_timedelta())

    def business_time_between(self, earlier: datetime, later: datetime) -> timedelta:
        """Working time elapsed in [earlier, later); zero when `later` is not after `earlier`."""
        earlier = _require_aware(earlier).astimezone(UTC)
        later = _require_aware(later).astimezone(UTC)
        total = timedelta(0)
        if later <= earlier:
            return total
        day = self.local(earlier).date()
        last_day = self.local(later).date()
        while day <= last_day:
            interval = self.working_interval(day)
            if interval:
                opening, closing = interval
                overlap = min(closing, later) - max(opening, earlier)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    def _working_day_length(self) -> timedelta:
        any_day = date(2000, 1, 1)
        hours = self.working_hours
        return datetime.combine(any_day, hours.end) - datetime.combine(any_day, hours.start)

    def _add_business_days(self, local: datetime, amount: float) -> datetime:
        whole = math.floor(amount)
        fraction = amount - whole
        day, clock = local.date(), local.time()
        hours = self.working_hours
        # Clamp into working hours: before opening counts from the opening, after closing (or on a
        # day off) from the next working day's opening.
        if clock >= hours.end or not self.is_working_day(day):
            whole, clock = whole + 1, hours.start  # the next working day is the first of the count
        elif clock < hours.start:
            clock = hours.start
        day = self.working_days_after(day, whole)
        # Most mail is sent outside working hours, so most counts start at an opening: remembered.
        interval = self.working_interval(day) if clock == hours.start else None  # `day` is a working day
        landed = interval[0] if interval else self.instant(day, clock)
        if fraction:
            landed = self._add_working_time(landed, self._working_day_length() * fraction)
        return landed

    def _add_working_time(self, start: datetime, remaining: timedelta) -> datetime:
        day = self.local(start).date()
        position = start
        for _ in range(_MAX_DAYS_WITHOUT_WORK * 100):
            interval = self.working_interval(day)
            if interval and position < interval[1]:
                begin = max(position, interval[0])
                available = interval[1] - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"cannot count {remaining} of working time after {start}: no working days found")


def _remember(memo: dict[_Key, _Value], key: _Key, value: _Value) -> _Value:
    if len(memo) >= _MEMO_SIZE:
        memo.clear()
    memo[key] = value
    return value


def _require_aware(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: business time needs aware datetimes")
    return moment
