"""The public holidays the daemon worked out, in a file beside its database, for the reports.

Why: `parting status` and `explain` judge clients in business time, and importing the holidays
package to compute a few dozen dates is a sixth of such a command (its version module alone
imports importlib.metadata). The daemon computes them anyway; it writes them down here.

Rules of this module:
- Only the daemon writes the file (flows/context.py, when it builds its first calendar), in its
  state directory, atomically; the reports only read it, and fall back to the package whenever
  the file is absent, unreadable or written for anything else.
- The file says what it was computed for: the country, the subdivision and the installed holidays
  package, identified by its files (found with importlib.util.find_spec, which does not execute
  the package: the size and modification time of each of its modules, and its distribution's
  RECORD). A changed or reinstalled package makes the file stale.
- It holds years around the day it was written; a Calendar computes any other year itself.
  tests/test_holiday_cache.py holds the file's dates and names to the package's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core.digest import sha256

if TYPE_CHECKING:
    from daemon.core.model import Settings
    from daemon.core.workhours import Calendar

FILE = "holidays.json"
FORMAT = 1
YEARS_BACK, YEARS_AHEAD = 5, 2  # the years written around the current one

Tables = dict[int, dict[date, str]]


def package_identity() -> str | None:
    """A digest of the installed holidays package's files (every module's path, size and
    modification time, and its distribution's RECORD), found without importing the package;
    None when it cannot be found."""
    spec = find_spec("holidays")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = next(iter(spec.submodule_search_locations))
    digest = sha256()
    for sub in ("", "countries", "calendars", "groups"):
        try:
            with os.scandir(os.path.join(folder, sub)) as entries:
                files = sorted((e.name, e.stat()) for e in entries if e.name.endswith(".py"))
        except OSError:
            continue
        for name, stat in files:
            digest.update(f"{sub}/{name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    for record in sorted(Path(folder).parent.glob("holidays-*.dist-info/RECORD")):
        digest.update(record.read_bytes())
    return digest.hexdigest()


def _path(settings: Settings) -> Path:
    return Path(settings.database).parent / FILE


def _key(settings: Settings) -> dict[str, object] | None:
    calendar = settings.working_hours.holidays
    if not calendar.country:
        return None
    identity = package_identity()
    if identity is None:
        return None
    return {"format": FORMAT, "country": calendar.country, "subdivision": calendar.subdivision, "package": identity}


def read(settings: Settings) -> Tables | None:
    """The holidays the daemon wrote for these settings' country and subdivision and the package
    installed now, or None (then a Calendar computes them)."""
    key = _key(settings)
    return None if key is None else _stored(settings, key)


def _stored(settings: Settings, key: dict[str, object]) -> Tables | None:
    try:
        stored = json.loads(_path(settings).read_text(encoding="utf-8"))
        if stored.get("key") != key:
            return None
        return {int(year): {date.fromisoformat(day): str(name) for day, name in days}
                for year, days in stored["years"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def write(settings: Settings, calendar: Calendar, year: int) -> bool:
    """Write the public holidays of the years around `year` as `calendar` computes them, unless the
    file already holds them; True when written. The daemon's own step: never a report."""
    key = _key(settings)
    if key is None:
        return False
    years = range(year - YEARS_BACK, year + YEARS_AHEAD + 1)
    known = _stored(settings, key)  # (the key once: it reads every module's size and time)
    if known is not None and all(y in known for y in years):
        return False
    tables: Mapping[int, Mapping[date, str]] = {y: calendar.public_holidays(y) for y in years}
    text = json.dumps({"key": key, "years": {str(y): [[d.isoformat(), name] for d, name in sorted(t.items())]
                                             for y, t in tables.items()}}, ensure_ascii=False)
    target = _path(settings)
    import tempfile  # here: the reports only read

    handle, temporary = tempfile.mkstemp(prefix=".holidays-", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # the people who run reports may read it: public holidays only
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True
