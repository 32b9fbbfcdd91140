"""The durable store: SQLite through sqlite-utils, and the only SQL in parting.

Rules:
- One sqlite3 connection per Store; make one Store per thread or process (a Store may move
  between threads, but must not be used by two at once).
- WAL, synchronous=FULL, busy_timeout 10 s, foreign keys on. Every write runs in a
  BEGIN IMMEDIATE transaction, its own or the caller's `with store.transaction():`.
- Opening applies the forward migrations in schema.py, one transaction each; a database from a
  newer parting is refused rather than guessed at.
- `open_readonly` never writes, not even a migration, so `simulate` leaves the file unchanged.
- Problems a person can fix are StoreError with a one-line message.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .base import StoreError
from .bounces import BouncesMixin
from .clients import ClientsMixin, Episode
from .deadlines import DeadlinesMixin
from .events import EventsMixin
from .histories import HistoriesMixin
from .intake import IntakeMixin
from .messages import MessagesMixin
from .outbox import OutboxMixin
from .recorded import RecordedMixin
from .review import ReviewMixin
from .schema import MIGRATIONS, SCHEMA_VERSION, VERSION_TABLE, set_version, stored_version

if TYPE_CHECKING:
    from .deadline_rows import Deadline
    from .draft_rows import Draft, Endorsement
    from .history_rows import FailureRow, Recorded
    from .outbox_rows import OutboxRow
    from .rows import (
        DraftVersion,
        Event,
        FolderState,
        LearnedAddress,
        MessageLocation,
        MessageRow,
        Note,
        Notice,
        QuarantineItem,
        TokenRow,
        TriageItem,
    )

# Made on first use (each module of rows: a listing creates only the rows it lists).
_LAZY = {"DraftVersion": "rows", "Event": "rows", "FolderState": "rows", "LearnedAddress": "rows",
         "MessageLocation": "rows", "MessageRow": "rows", "Note": "rows", "Notice": "rows", "QuarantineItem": "rows",
         "TokenRow": "rows", "TriageItem": "rows", "FailureRow": "history_rows", "Recorded": "history_rows",
         "Draft": "draft_rows", "Endorsement": "draft_rows", "OutboxRow": "outbox_rows", "Deadline": "deadline_rows"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Deadline", "Draft", "DraftVersion", "Endorsement", "Episode", "Event", "FailureRow", "FolderState", "LearnedAddress",
    "MessageLocation", "MessageRow", "Note", "Notice", "OutboxRow", "Recorded", "QuarantineItem", "SCHEMA_VERSION",
    "Store", "StoreError", "TokenRow", "TriageItem",
]

BUSY_TIMEOUT_MS = 10_000
LITESTREAM_TABLES = frozenset({"_litestream_seq", "_litestream_lock"})  # what Litestream keeps in a database
T = TypeVar("T")


def _waiting_while_busy(step: Callable[[], T]) -> T:
    """Retry a step that SQLite refuses with SQLITE_BUSY without calling its busy handler.

    Switching a new file to WAL needs an exclusive lock and fails at once if another process
    is opening the same file; that happens only on the first opens of a new database."""
    give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return step()
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() > give_up:
                raise
            time.sleep(0.01)


class Store(
    HistoriesMixin, RecordedMixin, BouncesMixin, EventsMixin, MessagesMixin, IntakeMixin, ClientsMixin,
    ReviewMixin, OutboxMixin, DeadlinesMixin,
):
    """parting's database. The methods live in one module per domain: events, messages
    (with the ThreadLookup protocol), intake (folders, quarantine, triage), clients, review,
    outbox, deadlines; connection and transactions are in base."""

    @classmethod
    def open(cls, path: str | Path, *, upgrading: Callable[[int, int], None] | None = None) -> Store:
        """Open (creating if needed) and migrate the database; ":memory:" gives a private one.
        `upgrading(old, new)` is called before each step that migrates a database parting
        already wrote from schema version `old` to `new`: some steps rewrite tables, which takes
        a while on a large store (the daemon tells systemd, so its start is not cut short)."""
        if str(path) == ":memory:":
            return cls._connect(":memory:", None, readonly=False)
        file = Path(path).expanduser().absolute()
        try:
            cls._check_place(file)
        except OSError as error:  # e.g. a parent folder this user may not enter
            raise StoreError(f"cannot reach database {file}: {error.strerror}") from None
        return cls._connect(str(file), file, readonly=False, upgrading=upgrading)

    @staticmethod
    def _check_place(file: Path) -> None:
        folder = file.parent
        if not folder.is_dir():
            raise StoreError(f"database folder {folder} does not exist: create it or set state.database")
        if file.is_dir():
            raise StoreError(f"database path {file} is a folder: set state.database to a file in it")
        if not os.access(folder, os.W_OK | os.X_OK):
            raise StoreError(
                f"database folder {folder} is not writable by this user"
                " (SQLite keeps its -wal and -shm files beside the database)")
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            raise StoreError(f"database {file} is not readable and writable by this user")

    @classmethod
    def open_readonly(cls, path: str | Path) -> Store:
        """Open an existing, up-to-date database for reading only; every write raises StoreError."""
        file = Path(path).expanduser().absolute()
        try:
            if not file.is_file():
                raise StoreError(f"database {file} does not exist")
        except OSError as error:
            raise StoreError(f"cannot reach database {file}: {error.strerror}") from None
        if not os.access(file, os.R_OK):
            raise StoreError(f"database {file} is not readable by this user")
        return cls._connect(f"{file.as_uri()}?mode=ro", file, readonly=True)

    @classmethod
    def _connect(cls, target: str, file: Path | None, readonly: bool,
                 upgrading: Callable[[int, int], None] | None = None) -> Store:
        shown = file or target
        try:
            conn = sqlite3.connect(
                target, uri=readonly, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise StoreError(f"cannot open database {shown}: {error}") from None
        try:
            store = cls(conn, file, readonly)
            store._configure(file is not None)
            if readonly:
                store._require_current_schema()
            else:
                store._migrate(upgrading)
            return store
        except sqlite3.DatabaseError as error:
            conn.close()
            if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
                raise StoreError(f"{shown} is not a SQLite database: set state.database to parting's file") from None
            raise StoreError(f"cannot open database {shown}: {error}") from None
        except BaseException:
            conn.close()
            raise

    def _configure(self, on_disk: bool) -> None:
        self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if self.readonly:
            self.conn.execute("PRAGMA query_only = ON")
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # is it a database?
            return
        mode = _waiting_while_busy(lambda: self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        if on_disk and mode.lower() != "wal":
            raise StoreError(
                f"database {self.path} cannot use write-ahead logging (journal mode stays {mode}):"
                " put it on a local file system")
        self.conn.execute("PRAGMA synchronous = FULL")
        # Checkpoint the WAL every ~40 MB instead of SQLite's 4 MB: a backfill commits a batch of
        # 1,000 messages at a time and otherwise copied pages back into the database every few
        # batches (the WAL file is truncated again by the checkpoint at close).
        self.conn.execute("PRAGMA wal_autocheckpoint = 10000")

    def _newer_error(self, version: int) -> StoreError:
        return StoreError(
            f"database schema version {version} is newer than this parting ({SCHEMA_VERSION}):"
            " upgrade parting")

    def _require_current_schema(self) -> None:
        # Straight SQL, not schema.stored_version: a read-only open need not import sqlite-utils.
        has_table = self._scalar("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
        version = int(self._scalar("SELECT version FROM schema_version WHERE id = 1") or 0) if has_table else 0
        if version > SCHEMA_VERSION:
            raise self._newer_error(version)
        if version < SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {version} is older than this parting ({SCHEMA_VERSION}):"
                " start parting once (not read-only) to upgrade it")

    def _migrate(self, upgrading: Callable[[int, int], None] | None = None) -> None:
        version = stored_version(self.db)
        if version > SCHEMA_VERSION:
            raise self._newer_error(version)
        existing = version > 0
        if version == 0:
            # Litestream (`litestream replicate -exec "parting run"`) may add its own tables to a
            # new file before parting's first open: those are not another program's data.
            foreign = [t for t in self.db.table_names()
                       if not t.startswith("sqlite_") and t not in LITESTREAM_TABLES]
            if foreign:
                raise StoreError(
                    f"database {self.path} holds tables that are not parting's"
                    f" ({', '.join(sorted(foreign)[:5])}): set state.database to a new file")
        while version < SCHEMA_VERSION:
            with self.transaction():
                # Another process may have migrated while we waited for the write lock.
                version = stored_version(self.db)
                if version > SCHEMA_VERSION:
                    raise self._newer_error(version)
                if version == SCHEMA_VERSION:
                    break
                if upgrading is not None and existing:
                    upgrading(version, version + 1)
                self.db.execute(VERSION_TABLE)
                MIGRATIONS[version](self.db)
                version += 1
                set_version(self.db, version)

    def schema_version(self) -> int:
        return stored_version(self.db)

    def data_version(self) -> int:
        """A number that changes when another connection (another process: the CLI) commits."""
        return int(self._scalar("PRAGMA data_version"))

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok', or what is wrong."""
        return "; ".join(r[0] for r in self.conn.execute("PRAGMA integrity_check").fetchall())
