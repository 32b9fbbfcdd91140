"""The commands people type, timed as a person runs them: a new `python -m daemon ...` process
each time (interpreter start and imports included), wall time from start to exit, on the
database the backfill benchmark left (the whole mailbox stored, the first cycle's verdicts).

Beside them, `python -c pass`: the floor every command shares on this machine at this moment.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench import ROOT

TARGET_MS = 150.0
COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parting status", ("status",)),
    ("parting explain CLIENT", ("explain", "{client}")),
    ("parting drafts", ("drafts",)),
    ("parting outbox", ("outbox",)),
    ("parting deadlines", ("deadlines",)),
)


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def command_runs(config: Path, client: str, repeat: int) -> dict[str, list[float]]:
    """Wall milliseconds of each command (with --json, as scripts run them) and of `python -c pass`,
    `repeat` times each, interleaved so a change in the machine's load touches every command alike."""
    runs: dict[str, list[float]] = {name: [] for name, _ in COMMANDS}
    runs["python -c pass"] = []
    _timed([sys.executable, "-m", "daemon", "status", "--config", str(config), "--json"])  # warm the file cache
    for _ in range(repeat):
        runs["python -c pass"].append(1000 * _timed([sys.executable, "-c", "pass"]))
        for name, args in COMMANDS:
            argv = [sys.executable, "-m", "daemon", *(a.format(client=client) for a in args),
                    "--config", str(config), "--json"]
            runs[name].append(1000 * _timed(argv))
    return runs
