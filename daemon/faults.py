"""Named crash points for the fault tests: the daemon kills itself with SIGKILL at one of them.

Enabled only when PARTING_CRASH_AT names a point (tests set it on a daemon subprocess); the
point fires at its Nth passage with PARTING_CRASH_AT=name:N. Outside tests this is a dictionary
look-up and nothing else.
"""

from __future__ import annotations

import os
import signal
import sys

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("PARTING_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
