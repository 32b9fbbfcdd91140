"""Where the daemon's `now` comes from. The core never reads the clock; the shell asks one of these.

`SystemClock` in production. `ManualClock` for in-process use (the demo, tests) where simulated
days pass by calling `advance`. `FileClock` lets a test or benchmark drive a daemon running in
another process: the file holds an ISO time (read on every call); its absence means real time. It
is chosen only explicitly, by the hidden `parting --clock-file FILE` option, and its use is logged
as a warning by `run` and said on stderr by every other command: no environment variable can
quietly move a daemon's time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)


class FileClock:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def now(self) -> datetime:
        try:
            text = self.path.read_text().strip()
        except OSError:
            return datetime.now(UTC)
        if not text:
            return datetime.now(UTC)
        value = datetime.fromisoformat(text)
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def clock_for(clock_file: str | Path | None) -> Clock:
    """The file clock when a file is named (tests, benchmarks), else the system clock."""
    return FileClock(clock_file) if clock_file else SystemClock()


def write_clock_file(path: str | Path, when: datetime) -> None:
    """Atomically set the time a FileClock reports (test helper)."""
    target = Path(path)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(when.astimezone(UTC).isoformat())
    temporary.replace(target)

