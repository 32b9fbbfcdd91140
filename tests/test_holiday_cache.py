"""The public holidays the daemon writes down for the reports (daemon/adapters/holiday_cache.py).

The file holds what the holidays package computes; a report reads it only when it was written
for the configured country and subdivision and the package installed now, and answers the same
with it as without it, without importing the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import holidays
import pytest
from test_cli_reports import NOW, REPO, setup  # noqa: F401 - setup is a fixture
from test_command_imports import RUN

from daemon.adapters import holiday_cache
from daemon.adapters.settings.load import load_settings
from daemon.adapters.settings.secret_files import Secrets
from daemon.adapters.store import Store
from daemon.adapters.templates import Templates
from daemon.core.model import HolidayCalendar
from daemon.core.workhours import Calendar
from daemon.flows.context import Context
from daemon.flows.evaluate import evaluate_all

YEARS = range(NOW.year - holiday_cache.YEARS_BACK, NOW.year + holiday_cache.YEARS_AHEAD + 1)


@pytest.fixture
def settings(setup):  # noqa: F811
    return load_settings(setup["config"])  # the example: GB, England


def path(settings):
    return holiday_cache._path(settings)


def test_the_file_holds_what_the_package_computes(settings) -> None:
    assert holiday_cache.read(settings) is None  # nothing written yet
    assert holiday_cache.write(settings, Calendar(settings.working_hours), NOW.year)
    calendar = settings.working_hours.holidays
    assert (calendar.country, calendar.subdivision) == ("GB", "ENG")
    assert holiday_cache.read(settings) == {
        year: dict(holidays.country_holidays("GB", subdiv="ENG", years=year).items()) for year in YEARS}
    assert not holiday_cache.write(settings, Calendar(settings.working_hours), NOW.year)  # already there


def test_a_file_for_anything_else_is_not_read(settings, monkeypatch) -> None:
    holiday_cache.write(settings, Calendar(settings.working_hours), NOW.year)
    scotland = replace(settings, working_hours=replace(settings.working_hours,
                                                       holidays=HolidayCalendar("GB", "SCT")))
    assert holiday_cache.read(scotland) is None
    with monkeypatch.context() as patched:  # another installed package (upgraded, reinstalled, edited)
        patched.setattr(holiday_cache, "package_identity", lambda: "another")
        assert holiday_cache.read(settings) is None
    assert holiday_cache.read(settings) is not None
    path(settings).write_text("{not json")
    assert holiday_cache.read(settings) is None
    no_country = replace(settings, working_hours=replace(settings.working_hours, holidays=HolidayCalendar()))
    assert holiday_cache.read(no_country) is None and not holiday_cache.write(no_country, Calendar(
        no_country.working_hours), NOW.year)


def test_the_package_identity_is_found_without_importing_it() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; from daemon.adapters import holiday_cache; "
                           "print(bool(holiday_cache.package_identity()), 'holidays' in sys.modules)"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["True", "False"], done.stderr


def test_the_daemon_writes_it_when_it_has_judged(settings) -> None:
    with Store.open(settings.database) as store:
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        evaluate_all(ctx, NOW, only=[])
    assert holiday_cache.read(settings) is not None
    assert set(json.loads(path(settings).read_text())["years"]) == {str(year) for year in YEARS}


@pytest.mark.parametrize("command", [("status",), ("explain", "acme")])
def test_reports_answer_the_same_with_it_and_without_the_package(setup, settings, command) -> None:  # noqa: F811
    """At the test's clock (NOW), as a person runs the report: the same JSON, and with the file
    the holidays package is not imported at all."""
    argv = ["--clock-file", str(setup["clock"]), *command, "--json", "--config", str(setup["config"])]

    def report() -> tuple[dict, set[str]]:
        done = subprocess.run([sys.executable, "-c", RUN, *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout), set(json.loads(done.stderr.rsplit("MODULES ", 1)[1]))

    without, modules = report()
    assert "holidays" in modules
    holiday_cache.write(settings, Calendar(settings.working_hours), NOW.year)
    with_file, modules = report()
    assert with_file == without
    assert "holidays" not in modules  # the dates came from the file


@pytest.mark.parametrize("command", [("status",), ("explain", "acme")])
def test_with_the_file_a_typed_report_loads_no_holidays_code(setup, settings, command) -> None:  # noqa: F811
    """As typed (quick.py answers it, at the system clock): not even core/holiday_tables.py, which
    loads one country of the package, nor threading for its lock (core/workhours.py imports it only
    to compute holidays: ~1.5 ms of a report)."""
    from datetime import UTC, datetime

    holiday_cache.write(settings, Calendar(settings.working_hours), datetime.now(UTC).year)
    done = subprocess.run([sys.executable, "-c", RUN, *command, "--json", "--config", str(setup["config"])],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = set(json.loads(done.stderr.rsplit("MODULES ", 1)[1]))
    assert "daemon.adapters.store" in modules  # the measurement sees our own imports
    assert not {"holidays", "daemon.core.holiday_tables", "threading"} & modules
