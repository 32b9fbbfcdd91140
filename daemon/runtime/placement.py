"""Whether this start opens the database this service last wrote, or a copy restored elsewhere.

Rules:
- A restored copy (Litestream, or any backup put back by hand) is told apart by a token kept in
  two places: the newest `state_placed` event in the database, and a small file beside it
  (`parting.db.instance`). Replication copies the database, never that file, so on a new host
  (or in a fresh directory) the two disagree: the start records `state_restored`, then places a
  new token. An ordinary restart finds them equal and writes nothing.
- A database that never had a token (a first start, or one from before this check) is placed,
  not reported as restored.
- The token is written to the database first and to the file after: a crash between the two
  makes the next start report one restore too many, which costs a few Sent-folder look-ups and
  never a duplicate.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from daemon.adapters.files import write_atomically
from daemon.adapters.store import Store

PLACED, RESTORED = "state_placed", "state_restored"


@dataclass(frozen=True)
class Restore:
    """What a start found: the database last written by `from_host`, its newest event at `last_event_at`."""

    from_host: str
    from_instance: str
    last_event_id: int
    last_event_at: datetime | None


def token_file(database: Path) -> Path:
    return database.with_name(database.name + ".instance")


def check_placement(store: Store, database: str | Path, at: datetime, host: str | None = None) -> Restore | None:
    """Record where the database now lives; returns the restore when it came from somewhere else."""
    if str(database) == ":memory:":
        return None
    file = token_file(Path(database))
    here = file.read_text().strip() if file.exists() else None
    placed = store.events(kinds=[PLACED])
    last = placed[-1] if placed else None
    if last is not None and here is not None and (last.data or {}).get("instance") == here:
        return None
    host = host or socket.gethostname()
    token = secrets.token_hex(16)
    restore = None
    with store.transaction():
        if last is not None:
            newest, data = store.last_event() or last, last.data or {}
            restore = Restore(str(data.get("host", "")), str(data.get("instance", "")), newest.id, newest.at)
            store.append_event("state_restored", at=at, data={
                "host": host, "database": str(database), "from_host": restore.from_host,
                "from_instance": restore.from_instance, "last_event_id": restore.last_event_id,
                "last_event_at": restore.last_event_at.isoformat() if restore.last_event_at else None,
                "token_file": "missing" if here is None else "different"})
        store.append_event("state_placed", at=at, data={"instance": token, "host": host, "database": str(database)})
    write_atomically(file, token + "\n")
    return restore
