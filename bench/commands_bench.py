"""The commands people type, timed as a person runs them: a new `python -m daemon ...` process
each time (interpreter start and imports included), wall time from start to exit, on the
database the backfill benchmark left (the whole mailbox stored, the first cycle's verdicts).

Beside them, `python -c pass`: the floor every command shares on this machine at this moment.

Python runs them with its bytecode cache, as an installed parting does (pip compiles the modules
it installs): PYTHONDONTWRITEBYTECODE, if the shell sets it, is dropped for these processes, and
the cache is kept under the bench cache folder (PYTHONPYCACHEPREFIX) rather than in the checkout.
Without the cache every command spent ~100 ms more compiling our sources each time.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
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


def command_environment(pycache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def timed_in(argv: list[str], folder: Path, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall and CPU (user + sys of the child) milliseconds of one run in `folder`, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=folder, env=env)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return 1000 * seconds, 1000 * cpu, done.stdout


def _timed(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    wall, cpu, _stdout = timed_in(argv, ROOT, env)
    return wall, cpu


def command_runs(config: Path, client: str, repeat: int,
                 pycache: Path | None = None) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU milliseconds ({"wall": [...], "cpu": [...]}) of each command (with --json, as
    scripts run them) and of `python -c pass`, `repeat` times each, interleaved so a change in the
    machine's load touches every command alike. CPU time is the steadier figure on a busy machine."""
    env = command_environment(pycache)
    runs: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []}
                                               for name in ("python -c pass", *(n for n, _ in COMMANDS))}
    commands = {name: [sys.executable, "-m", "daemon", *(a.format(client=client) for a in args),
                       "--config", str(config), "--json"] for name, args in COMMANDS}
    for argv in commands.values():
        _timed(argv, env)  # warm the file cache, and write the bytecode cache
    for _ in range(repeat):
        for name, argv in {"python -c pass": [sys.executable, "-c", "pass"], **commands}.items():
            wall, cpu = _timed(argv, env)
            runs[name]["wall"].append(wall)
            runs[name]["cpu"].append(cpu)
    return runs


# ---- a stored database kept between runs (--keep-store): the commands only read it ----------------


@dataclass
class KeptStore:
    """A copy of a measured config folder (database included): what measure_commands needs of a Mailbox."""

    config: Path
    messages: int
    clients: list[ClientId]


@dataclass
class ClientId:
    id: str


def _kept_folder(cache: Path, messages: int, clients: int) -> Path:
    return cache / f"commands-{messages}x{clients}"


def kept_store(cache: Path, messages: int, clients: int) -> KeptStore | None:
    folder = _kept_folder(cache, messages, clients)
    try:
        meta = json.loads((folder / "kept.json").read_text())
    except (OSError, ValueError):
        return None
    return KeptStore(folder / "config.yaml", meta["messages"], [ClientId(c) for c in meta["clients"]])


def keep_store(cache: Path, box, config: Path) -> None:  # noqa: ANN001 - a fixture.Mailbox
    """Copy the config folder to the cache, its paths pointing at the copy (the IMAP server it
    names is gone by the next run, and no command measured here connects to it)."""
    folder = _kept_folder(cache, box.messages, len(box.clients))
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(config.parent, folder, ignore=shutil.ignore_patterns("dry-run", "bodies.json"))
    (folder / "dry-run").mkdir()
    text = config.read_text().replace(str(config.parent), str(folder))
    (folder / "config.yaml").write_text(text)
    (folder / "kept.json").write_text(json.dumps({"messages": box.messages, "clients": [c.id for c in box.clients]}))
