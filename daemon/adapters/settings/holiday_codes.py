"""Checking a configured holidays country and subdivision without importing the holidays package.

Why: every command loads and checks the whole configuration, but only the commands that count
working time need the package (status, explain, simulate, the daemon); importing it costs a
listing such as `parting drafts` a third of its time.
The package keeps its country codes in holidays/registry.py and each country's subdivisions in
its class, all as literals, so they can be read as data from its source files without running them.

Rules of this module:
- Only a positive answer is taken from the source: a code or subdivision found here is one the
  package accepts (tests/test_holiday_codes.py compares every country with the package). Anything
  not found, and any file laid out otherwise, returns None: the caller then asks the package
  itself, which also words the error.
- Nothing is cached on disk: the files are read each time (a few milliseconds).
"""

from __future__ import annotations

import ast
import importlib.util
import re
from functools import cache
from pathlib import Path

# Only the statement or class needed is read, not the whole file: the registry's entries
# ("module": ("Class", "GB", "GBR", ...)) by a regular expression, a class by the parser.
_COUNTRIES = re.compile(r"^COUNTRIES\b[^=\n]*=\s*(\{.*?^\})", re.MULTILINE | re.DOTALL)
_ENTRY = re.compile(r'"(\w+)"\s*:\s*\(\s*((?:"\w+"\s*,?\s*)+)\)')
_NAME = re.compile(r'"(\w+)"')


@cache
def _package_folder() -> Path | None:
    spec = importlib.util.find_spec("holidays")  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _literal_assignments(body: list[ast.stmt]) -> dict[str, object]:
    """name -> value of the `name = literal` and `name: type = literal` statements in body."""
    found: dict[str, object] = {}
    for node in body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        if target is None or value is None:
            continue
        try:
            found[target] = ast.literal_eval(value)
        except ValueError:
            continue
    return found


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _parsed(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError):
        return None


@cache
def country_modules() -> dict[str, tuple[str, str]] | None:
    """Country code or alias (2-3 letters) -> (module name, class name), from holidays/registry.py."""
    folder = _package_folder()
    text = _read(folder / "registry.py") if folder else None
    found = _COUNTRIES.search(text) if text else None
    if found is None:
        return None
    block = found.group(1)
    codes: dict[str, tuple[str, str]] = {}
    entries = 0
    for entry in _ENTRY.finditer(block):
        entries += 1
        names = _NAME.findall(entry.group(2))
        for code in names[1:]:
            if 2 <= len(code) <= 3:
                codes[code] = (entry.group(1), names[0])
    # Every entry read, or none trusted: an entry written otherwise would go missing silently.
    if entries == 0 or entries != block.count("("):
        return None
    return codes


def is_country(code: str) -> bool | None:
    """True if the holidays package knows this country code; None when this cannot tell."""
    codes = country_modules()
    return None if codes is None or code not in codes else True


def has_subdivision(country: str, subdivision: str) -> bool | None:
    """True if `subdivision` is one of the country's subdivisions or their aliases as the package
    spells them; None when this cannot tell (not found, or not written as literals)."""
    codes = country_modules()
    folder = _package_folder()
    if codes is None or folder is None or country not in codes:
        return None
    module, class_name = codes[country]
    text = _read(folder / "countries" / f"{module}.py")
    # From its `class` line to the next statement at the margin (a header may close with "):").
    found = re.search(rf"^class {class_name}\b.*?(?=^[A-Za-z_@]|\Z)", text, re.MULTILINE | re.DOTALL) if text else None
    tree = _parsed(found.group()) if found else None
    if tree is None:
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            values = _literal_assignments(node.body)
            listed = values.get("subdivisions", ())
            aliases = values.get("subdivisions_aliases", {})
            if isinstance(listed, tuple) and subdivision in listed:
                return True
            if isinstance(aliases, dict) and subdivision in aliases:
                return True
    return None

