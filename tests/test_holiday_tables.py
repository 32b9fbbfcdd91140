"""daemon/core/holiday_tables.py: one country's holidays without importing every country, and the
same tables and errors as the holidays package's own country_holidays."""

from __future__ import annotations

import json
import subprocess
import sys

import holidays
import pytest

from daemon.core.holiday_tables import country_holidays

YEARS = [2025, 2026, 2027]


@pytest.mark.parametrize(("country", "subdivision"), [
    ("GB", "ENG"), ("GB", None), ("UK", "SCT"), ("US", "CA"), ("DE", "BY"), ("IM", None), ("FR", None), ("AX", None),
])
def test_the_same_holidays_as_the_package(country: str, subdivision: str | None) -> None:
    ours = country_holidays(country, subdiv=subdivision, years=YEARS)
    theirs = holidays.country_holidays(country, subdiv=subdivision, years=YEARS)
    assert dict(ours.items()) == dict(theirs.items())
    assert dict(ours.items())  # not vacuous: every one of these has public holidays


def test_the_same_errors_as_the_package() -> None:
    with pytest.raises(NotImplementedError):
        country_holidays("XX")
    with pytest.raises(NotImplementedError):
        holidays.country_holidays("XX")
    with pytest.raises(NotImplementedError):
        country_holidays("GB", subdiv="NOPE")
    with pytest.raises(NotImplementedError):
        holidays.country_holidays("GB", subdiv="NOPE")


LOADED = """
import json, sys
from daemon.core.holiday_tables import country_holidays
table = country_holidays(sys.argv[1], subdiv=sys.argv[2] or None, years=2026)
countries = sorted(m for m in sys.modules if m.startswith("holidays.countries."))
print(json.dumps({"package": "holidays.countries" in sys.modules, "countries": countries, "days": len(table)}))
"""


@pytest.mark.parametrize(("country", "subdivision", "modules"), [
    ("GB", "ENG", ["united_kingdom"]),
    ("IM", "", ["isle_of_man", "united_kingdom"]),  # the Isle of Man's module imports the United Kingdom's
])
def test_only_that_country_is_imported(country: str, subdivision: str, modules: list[str]) -> None:
    """In a fresh process: holidays.country_holidays would import all ~280 country modules."""
    done = subprocess.run([sys.executable, "-c", LOADED, country, subdivision], capture_output=True, text=True,
                          check=True)
    seen = json.loads(done.stdout)
    assert seen["package"] is False
    assert seen["countries"] == [f"holidays.countries.{m}" for m in modules]
    assert seen["days"] > 5


def test_the_package_imported_later_finds_the_same_classes() -> None:
    done = subprocess.run([sys.executable, "-c", """
from daemon.core.holiday_tables import country_class
gb = country_class("GB")
import holidays.countries
assert holidays.countries.GB is gb and holidays.countries.UnitedKingdom in gb.__mro__
assert len(holidays.country_holidays("GB", years=2026)) == len(gb(years=2026))
print("same")
"""], capture_output=True, text=True)
    assert done.stdout.strip() == "same", done.stderr
