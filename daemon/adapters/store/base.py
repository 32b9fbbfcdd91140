"""The connection, transactions and value conversions every part of the store shares.

Why it looks like this:
- One sqlite3 connection per Store, in driver autocommit mode (isolation_level=None), so the
  only transactions are the ones this module begins: writes always start with BEGIN IMMEDIATE,
  which takes the write lock up front; a deferred BEGIN that later upgrades can fail with
  "database is locked" no matter how long busy_timeout is.
- Times are stored as ISO 8601 UTC strings, which sort in time order as text.
- JSON columns hold plain JSON; dates and datetimes inside are written as ISO strings.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from daemon.core.errors import PartingError

if TYPE_CHECKING:
    import sqlite_utils


class StoreError(PartingError):
    """A problem with the database that a person can act on; the message is one line."""


def to_utc_text(moment: datetime) -> str:
    """'2026-11-02T10:00:00+00:00' for an aware datetime; naive datetimes are a bug."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment!r}: the store only takes timezone-aware times")
    return moment.astimezone(UTC).isoformat()


def maybe_utc_text(moment: datetime | None) -> str | None:
    return None if moment is None else to_utc_text(moment)


@overload
def from_utc_text(text: str) -> datetime: ...
@overload
def from_utc_text(text: None) -> None: ...
def from_utc_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_utc_text(value) if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON: {value!r}")


def to_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=_json_default, sort_keys=True, ensure_ascii=False)


def from_json(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def json_tuple(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


class StoreBase:
    """Connection, transactions and small query helpers; the domain mixins build on these."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None, readonly: bool) -> None:
        self._conn = conn
        self._db: sqlite_utils.Database | None = None
        self.path = path
        self.readonly = readonly
        self._depth = 0

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, made on first use: importing it (with pluggy,
        click and dateutil) takes longer than a listing command takes to run, and reads need none of it."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self._conn, execute_plugins=False)
        return self._db

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def close(self) -> None:
        self.conn.close()

    def __enter__(self):  # noqa: ANN204 - returns the concrete Store
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, *, check_references: bool = True) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception.

        Nested blocks become savepoints: an inner failure that the caller catches undoes only
        the inner block. Every write method runs inside one of these.

        `check_references=False` turns SQLite's foreign key checks off for this transaction
        only (an outermost one; nested, the outer one's setting holds). Ingest's writes use it:
        each message's rows follow its messages row in the same transaction and nothing is
        deleted, and the checks were an eighth of a backfill's insert time (a look-up of the
        parent key for every location row). Tests run PRAGMA foreign_key_check after them.
        """
        if self.readonly:
            raise StoreError("this database was opened read-only: writes are not allowed")
        if self._depth:
            yield from self._savepoint()
            return
        if not check_references:  # only outside a transaction does SQLite take this pragma
            self.conn.execute("PRAGMA foreign_keys = OFF")
        try:
            yield from self._outermost()
        finally:
            if not check_references:
                self.conn.execute("PRAGMA foreign_keys = ON")

    def _outermost(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            self._depth = 0

    def _savepoint(self) -> Iterator[None]:
        name = f"parting_{self._depth}"
        self.conn.execute(f"SAVEPOINT {name}")
        self._depth += 1
        try:
            yield
        except BaseException:
            # Some errors (disk full, I/O) end the whole transaction, savepoints included.
            if self.conn.in_transaction:
                self.conn.execute(f"ROLLBACK TO {name}")
                self.conn.execute(f"RELEASE {name}")
            raise
        else:
            self.conn.execute(f"RELEASE {name}")
        finally:
            self._depth -= 1

    # Query helpers: results are always fetched completely, so no statement stays open.

    def _filtered(self, table: str, order: str, states: Sequence[str] | None,
                  client_id: str | None) -> list[dict[str, Any]]:
        """Rows of `table`, optionally only in these states or for one client (drafts, deadlines)."""
        where, params = ["1"], []
        if states is not None:
            where.append("state IN (SELECT value FROM json_each(?))")
            params.append(to_json(list(states)))
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        return self._rows(f"SELECT * FROM {table} WHERE {' AND '.join(where)} ORDER BY {order}", params)

    def _state_count(self, table: str, states: Sequence[str], where: str = "1",
                     params: Sequence[Any] = ()) -> int:
        """How many rows of `table` are in these states (and match `where`): what `parting status`
        counts, without building (or importing the classes of) the rows."""
        return int(self._scalar(f"SELECT count(*) FROM {table} WHERE state IN (SELECT value FROM json_each(?))"
                                f" AND {where}", [to_json(list(states)), *params]))

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Every row as a dict of column -> value (what sqlite-utils' `query` gives, without it)."""
        cursor = self._conn.execute(sql, params)
        keys = [d[0] for d in cursor.description or ()]
        return [dict(zip(keys, row)) for row in cursor.fetchall()]

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _insert(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> int:
        """One INSERT (see _write); the new row's id."""
        row_id = self._write(sql, params).lastrowid
        if row_id is None:
            raise StoreError(f"no row id after {sql.split('(')[0].strip()}")
        return row_id

    def _write(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        """One statement in its own transaction, or in the caller's."""
        with self.transaction():
            return self.db.execute(sql, params)
