"""One country's public holidays from the holidays package, without importing every country.

Why this exists: `holidays.country_holidays("GB")` imports the package `holidays.countries`,
whose __init__ imports all ~280 country modules (about as long as the rest of a command's
imports together), although a company works in one country. Here only the module the package's
own registry names for that code is loaded (and the country modules it imports), under its
usual name, so the classes are the very ones a later `import holidays.countries` finds.

Rules of this module:
- Same results as `holidays.country_holidays(country, subdiv=..., years=...)`, the same errors
  (NotImplementedError for an unknown country or subdivision); tests/test_holiday_tables.py
  compares them.
- If a country module cannot be loaded alone, the package's ordinary import is used instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

PACKAGE = "holidays.countries"
# The daemon's threads may build their first calendars at once; a module is executed only once.
_LOADING = threading.RLock()
_SIBLING = re.compile(r"^from holidays\.countries\.(\w+) import", re.MULTILINE)


def country_holidays(country: str, subdiv: str | None = None, years: Any = None) -> Any:
    """What holidays.country_holidays(country, subdiv=subdiv, years=years) returns."""
    return country_class(country)(years=years, subdiv=subdiv)


def country_class(country: str) -> Any:
    """The holidays class for an ISO 3166 code (or alias the package accepts, e.g. 'UK')."""
    from holidays.registry import COUNTRIES

    # The registry maps module -> (class name, codes and aliases of 2-3 letters, other class names).
    found = next((module for module, (_name, *codes) in COUNTRIES.items() if country in codes), None)
    if found is None or not 2 <= len(country) <= 3:
        raise NotImplementedError(f"Country {country} not available")
    return getattr(_country_module(found), country)


def _country_module(module_name: str) -> ModuleType:
    full = f"{PACKAGE}.{module_name}"
    with _LOADING:
        if full in sys.modules:
            return sys.modules[full]
        if PACKAGE not in sys.modules:
            try:
                return _load_alone(module_name)
            except Exception:  # noqa: BLE001 - a layout this does not know: the package's own import
                sys.modules.pop(full, None)
        return importlib.import_module(full)


def _load_alone(module_name: str) -> ModuleType:
    """Execute holidays/countries/<module_name>.py as `holidays.countries.<module_name>` without
    the package's __init__; the country modules it imports (Isle of Man: the United Kingdom's
    classes) are loaded alone first."""
    full = f"{PACKAGE}.{module_name}"
    if full in sys.modules:
        return sys.modules[full]
    import holidays

    path = Path(holidays.__file__).parent / "countries" / f"{module_name}.py"
    for sibling in _SIBLING.findall(path.read_text(encoding="utf-8")):
        _load_alone(sibling)
    spec = importlib.util.spec_from_file_location(full, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[full]
        raise
    return module
