"""Problems found in the settings, and the error that lists them all.

Rules of this module:
- A Problem names the file, the line (0 when unknown) and the key path, so a user can find it.
- SettingsError is a PartingError whose lines are exactly the problems, sorted by line.
- Problems found after loading (secrets, runtime) point at the key's line through the lines
  remembered for each loaded Settings; nothing else is kept about it.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

from daemon.core.errors import PartingError
from daemon.core.model import Settings


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1-based; 0 when unknown (settings not read from a file by load_settings)
    key_path: str  # e.g. "clients[2].owner"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key_path}: {self.message}" if self.key_path else f"{where}: {self.message}"


class SettingsError(PartingError):
    """Every problem found, sorted by line; str() gives one problem per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__(self.problems)

    def __str__(self) -> str:
        return "\n".join(map(str, self.problems))

    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


# Lines of the keys of each loaded Settings, so later problems (secrets, runtime) can point at them.
_key_lines: dict[int, dict[str, int]] = {}


def remember_key_lines(settings: Settings, lines: dict[str, int]) -> None:
    _key_lines[id(settings)] = lines
    weakref.finalize(settings, _key_lines.pop, id(settings), None)


def key_lines(settings: Settings) -> dict[str, int]:
    """The lines remembered for these settings (empty when they were not loaded from a file)."""
    return _key_lines.get(id(settings), {})


def problem_at(settings: Settings, key_path: str, message: str) -> Problem:
    lines = _key_lines.get(id(settings), {})
    return Problem(settings.source, lines.get(key_path, 0), key_path, message)
