"""daemon/adapters/settings/holiday_codes.py reads country codes and subdivisions from the holidays
package's source files: what it accepts, the package accepts, for every country it has."""

from __future__ import annotations

import subprocess
import sys
import warnings

import holidays
from holidays.registry import EntityLoader

from daemon.adapters.settings import holiday_codes


def test_the_country_codes_are_the_packages() -> None:
    codes = holiday_codes.country_modules()
    assert codes is not None
    assert set(codes) == set(EntityLoader.get_country_codes(include_aliases=True))
    assert holiday_codes.is_country("GB") and holiday_codes.is_country("UK") and holiday_codes.is_country("DEU")
    assert holiday_codes.is_country("XX") is None  # not a yes: the caller asks the package, which words the error


def test_every_subdivision_it_accepts_the_package_accepts() -> None:
    accepted, listed = 0, 0
    for code in EntityLoader.get_country_codes(include_aliases=False):
        entity = getattr(holidays, code)
        names = [*entity.subdivisions, *entity.subdivisions_aliases, *entity._deprecated_subdivisions, "ZZ-NOPE"]
        listed += len(entity.subdivisions) + len(entity.subdivisions_aliases)
        for name in names:
            if holiday_codes.has_subdivision(code, name):
                accepted += 1
                with warnings.catch_warnings():
                    warnings.simplefilter("error")  # a deprecated subdivision would warn: never a fast yes
                    holidays.country_holidays(code, subdiv=name)  # raises NotImplementedError if not
        assert not holiday_codes.has_subdivision(code, "ZZ-NOPE")
    assert accepted > 0.9 * listed  # and it does answer for nearly all of them, rather than defer


def test_checking_a_country_and_subdivision_imports_no_holidays() -> None:
    done = subprocess.run([sys.executable, "-c", """
import sys
from daemon.adapters.settings.kinds import subdivision_spelling, COUNTRY
assert subdivision_spelling("GB", "ENG") == "ENG" and subdivision_spelling("US", "CA") == "CA"
print(sorted(m for m in sys.modules if m.split(".")[0] == "holidays"))
"""], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_a_misspelt_subdivision_is_still_put_right_by_the_package() -> None:
    from daemon.adapters.settings.kinds import subdivision_spelling

    assert subdivision_spelling("GB", "eng") == "ENG"
    assert subdivision_spelling("GB", "Atlantis") is None
