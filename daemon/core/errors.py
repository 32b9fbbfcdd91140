"""The error a user can act on: each line says what is wrong and, where known, how to fix it."""

from __future__ import annotations


class PartingError(Exception):
    """Base of every error shown to a user as `error:` lines with exit status 2."""

    def lines(self) -> list[str]:
        return [line for line in str(self).splitlines() if line.strip()] or [type(self).__name__]
