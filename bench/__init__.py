"""Benchmarks for parting: `python -m bench` (see bench/README.md). Never run by pytest."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/servers.py (the private Dovecot) and tests/harness.py (write_config) are reused as they are.
for _path in (str(ROOT / "tests"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)


def unit_environment() -> dict[str, str]:
    """os.environ plus the Environment= settings of systemd/parting.service, so the daemon is
    measured as the unit runs it (MALLOC_ARENA_MAX among them)."""
    env = dict(os.environ)
    for line in (ROOT / "systemd" / "parting.service").read_text().splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = value
    return env
