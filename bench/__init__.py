"""Benchmarks for parting: `python -m bench` (see bench/README.md). Never run by pytest."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# tests/servers.py (the private Dovecot) and tests/harness.py (write_config) are reused as they are.
for _path in (str(ROOT / "tests"), str(ROOT)):
    if _path not in sys.path:
        sys.path.insert(0, _path)
