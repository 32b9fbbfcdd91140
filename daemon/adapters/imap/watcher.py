"""The mailbox adapter: watch IMAP folders and hand new message headers to the store.

Rules of this module:
- The blocking IMAP work (imap_connection.py) runs in worker threads via asyncio.to_thread;
  nothing here blocks the event loop.
- The store is the only memory of progress. Every sync asks it (get_state) where it stands, and
  a batch counts as read only once `on_batch` has returned, the store having committed the
  headers together with the folder's UIDVALIDITY and highest UID. So a crash or a reconnect
  never skips a message, and never delivers one twice.
- Trouble with the connection is retried with capped, jittered exponential backoff; a refused
  login waits the full cap, because hammering the server does not fix a password.
- Stopping is prompt: IDLE runs in short rounds and every wait gives way to `stop`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, Protocol

from daemon.adapters.imap.connection import (
    DEFAULT_HEADER_FIELDS,
    FetchedHeader,
    FolderInfo,
    IdleResult,
    ImapAuthError,
    ImapConnection,
    ImapConnectionError,
    ImapConnectionLost,
    ImapError,
    ImapFolderError,
    ImapSignInNeeded,
    header_fields_item,
    is_loopback,
)
from daemon.adapters.oauth import Login
from daemon.core.model import ImapSettings

__all__ = [
    "DEFAULT_HEADER_FIELDS", "Backoff", "FetchedHeader", "FolderInfo", "FolderState", "KnownFolder",
    "CatchUpHelper", "FolderWatcher", "IdleResult", "ReadBodies", "ImapAuthError", "ImapConnection", "ImapConnectionError",
    "ImapConnectionLost", "ImapError", "ImapFolderError", "append_message",
    "find_in_folder", "header_fields_item", "is_loopback",
]

FolderRole = Literal["inbox", "sent"]
AFTER_NEWS_ROUND = 1.0  # seconds of the first IDLE round after a sync
ReadBodies = Callable[[Sequence[int]], Awaitable[dict[int, bytes]]]
OnBatch = Callable[[str, FolderInfo, list[FetchedHeader], ReadBodies], Awaitable[None]]
GetState = Callable[[str], Awaitable["KnownFolder | None"]]
OnUidvalidityChange = Callable[[str, int, int], Awaitable[None]]
OnProgress = Callable[[str, int, int], None]
Sleep = Callable[[float], Awaitable[None]]


class CatchUpHelper(Protocol):
    """Who gets a catch-up's batches early: `ahead(headers)` as soon as a batch's headers are
    fetched, before its on_batch (which receives the same list); `close()` when the catch-up ends,
    finished, stopped, failed or cancelled."""

    def ahead(self, headers: list[FetchedHeader]) -> None: ...
    def close(self) -> None: ...


OnCatchUp = Callable[[str, int], "CatchUpHelper | None"]  # (folder, batches to read) -> helper or None


class KnownFolder(Protocol):
    """What a watcher needs of the store's record of a folder (the store's FolderState has it)."""

    @property
    def uidvalidity(self) -> int: ...
    @property
    def last_uid(self) -> int: ...


@dataclass(frozen=True)
class FolderState:
    """What the store knows of a folder: its UIDVALIDITY and the highest UID it has read."""

    uidvalidity: int
    last_uid: int


class Backoff:
    """Delays between reconnection attempts: capped exponential growth with full jitter
    (a uniform draw between 0 and min(cap, base * 2**attempt)), so many clients that lost the
    same server do not come back in step."""

    def __init__(self, base: float = 1.0, cap: float = 300.0,
                 rng: random.Random | None = None) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base}, cap={cap}")
        self.base = base
        self.cap = cap
        self._rng = rng or random.Random()
        self.attempt = 0

    def ceiling(self) -> float:
        """The largest delay the next attempt may draw."""
        return min(self.cap, self.base * 2 ** min(self.attempt, 64))

    def next_delay(self) -> float:
        delay = self._rng.uniform(0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class FolderWatcher:
    """Keeps one folder read: backfill, then IDLE, reconnecting by itself until `stop` is set.

    Contract with the store: `on_batch(folder, info, headers, read_bodies)` commits the headers
    and sets the folder's state to (info.uidvalidity, highest uid of the batch); it may await
    `read_bodies(uids)` for whole messages of the batch, read over the watcher's own connection
    (a few FETCH commands, not one per message); `on_uidvalidity_change(folder,
    old, new)` forgets the folder's old UIDs and sets its state to (new, 0). `get_state(folder)`
    returns that state, None for a folder never read (then only the last `lookback_days` are read).
    `on_catch_up(folder, batches)`, asked when there is more than one batch to read, may return a
    CatchUpHelper that is handed each later batch's headers as soon as they are fetched (to start
    work on them while the batch before is stored; on_batch still decides what is stored).
    """

    def __init__(
        self,
        settings: ImapSettings,
        password: Login,
        folder_role: FolderRole,
        *,
        on_batch: OnBatch,
        get_state: GetState,
        on_uidvalidity_change: OnUidvalidityChange,
        stop: asyncio.Event,
        log: logging.Logger | None = None,
        fetch_fields: Sequence[str] = DEFAULT_HEADER_FIELDS,
        lookback_days: int | None = None,
        batch: int = 1000,
        idle_round: float = 10.0,
        on_progress: OnProgress | None = None,
        on_catch_up: OnCatchUp | None = None,
        backoff: Backoff | None = None,
        sleep: Sleep | None = None,
        today: Callable[[], date] | None = None,
    ) -> None:
        if folder_role not in ("inbox", "sent"):
            raise ValueError(f"folder_role must be 'inbox' or 'sent', not {folder_role!r}")
        header_fields_item(fetch_fields)  # refuse bad field names now, not at the first fetch
        self._settings = settings
        self._password = password
        self.role = folder_role
        self._on_batch = on_batch
        self._get_state = get_state
        self._on_uidvalidity_change = on_uidvalidity_change
        self._stop = stop
        self._log = log or logging.getLogger(__name__)
        self._fields = tuple(fetch_fields)
        self._lookback_days = settings.lookback_days if lookback_days is None else lookback_days
        self._batch = batch
        self._idle_round = idle_round
        self._on_progress = on_progress
        self._on_catch_up = on_catch_up
        self._backoff = backoff or Backoff()
        self._sleep = sleep
        self._today = today or (lambda: datetime.now(UTC).date())
        # Catch up now and then even without news: a server may miss telling us.
        self._resync_every = settings.idle_renew.as_timedelta().total_seconds()
        self.connected = asyncio.Event()  # set after the first successful EXAMINE
        self.caught_up = asyncio.Event()  # set once the first backfill has been delivered in full
        self.folder: str | None = None  # the folder's name once known ("auto" resolved)

    # ---------------------------------------------------------------- entry points

    async def run(self) -> None:
        """Watch until `stop` is set (or the task is cancelled). Trouble with the connection,
        the login, the folder or a callback is logged and retried after a backoff."""
        while not self._stop.is_set():
            connection = ImapConnection(self._settings, self._password, log=self._log)
            try:
                await self._watch(connection)
                delay = 0.0
            except asyncio.CancelledError:
                connection.abort()  # unblock the worker thread; nothing more can be awaited
                raise
            except ImapAuthError as exc:
                delay = self._backoff.cap
                hint = ("sign-in needed: run parting login" if isinstance(exc, ImapSignInNeeded)
                        else "check the IMAP password and username")
                self._log.error("%s: %s; trying again in %.0f s (%s)", self.role, exc, delay, hint)
            except ImapFolderError as exc:
                delay = self._backoff.next_delay()
                self._log.error("%s: %s; trying again in %.2f s", self.role, exc, delay)
            except ImapError as exc:
                delay = self._backoff.next_delay()
                self._log.warning("%s: %s; reconnecting in %.2f s", self.role, exc, delay)
            except Exception:
                delay = self._backoff.next_delay()
                self._log.exception("%s: watching failed; reconnecting in %.2f s",
                                    self.role, delay)
            await asyncio.to_thread(connection.close)
            if delay and not self._stop.is_set():
                await self._pause(delay)

    async def run_once(self) -> int:
        """Connect, read what is new, disconnect; returns how many headers were delivered.
        Errors are raised (ImapAuthError, ImapConnectionError, ImapFolderError...)."""
        connection = ImapConnection(self._settings, self._password, log=self._log)
        try:
            await asyncio.to_thread(connection.connect)
            folder = await self._resolve_folder(connection)
            delivered = await self._sync(connection, folder, backfill=True)
            self._caught_up()
            return delivered
        finally:
            await asyncio.to_thread(connection.close)

    # ---------------------------------------------------------------- the session

    async def _watch(self, connection: ImapConnection) -> None:
        await asyncio.to_thread(connection.connect)
        folder = await self._resolve_folder(connection)
        await self._sync(connection, folder, backfill=True)
        self._caught_up()
        last_sync = time.monotonic()
        healthy = False
        wait = self._idle_round
        while not self._stop.is_set():
            result = await asyncio.to_thread(connection.idle_wait, wait)
            if not healthy:  # connected, read and waited: start the backoff afresh
                self._backoff.reset()
                healthy = True
            wait = self._idle_round
            if result.changed or time.monotonic() - last_sync >= self._resync_every:
                await self._sync(connection, folder)
                last_sync = time.monotonic()
                # Mail comes in bursts, and a server may not announce in IDLE what arrived between
                # our last command and IDLE (pymap does not): after news, look again soon.
                wait = min(self._idle_round, AFTER_NEWS_ROUND)

    async def _resolve_folder(self, connection: ImapConnection) -> str:
        name = self._settings.inbox if self.role == "inbox" else self._settings.sent
        if self.role == "sent" and name == "auto":
            found = await asyncio.to_thread(connection.find_sent_folder)
            if found is None:
                raise ImapFolderError(
                    f"no folder at {connection.where} is marked \\Sent (SPECIAL-USE); name the "
                    "Sent folder in mailbox.imap.folders.sent")
            name = found
        self.folder = name
        return name

    async def _sync(self, connection: ImapConnection, folder: str, *, backfill: bool = False
                    ) -> int:
        """EXAMINE the folder, compare UIDVALIDITY with the store's, deliver what is new.
        A backfill (the first sync of a connection) reports its progress."""
        info = await asyncio.to_thread(connection.select, folder)
        self.connected.set()
        state = await self._get_state(folder)
        since: date | None = None
        if state is None:
            last_uid, since = 0, self._lookback_start()
        elif state.uidvalidity != info.uidvalidity:
            self._log.warning("%s: UIDVALIDITY of %r changed from %s to %s; reading it afresh",
                              self.role, folder, state.uidvalidity, info.uidvalidity)
            await self._on_uidvalidity_change(folder, state.uidvalidity, info.uidvalidity)
            last_uid, since = 0, self._lookback_start()
        else:
            last_uid = state.last_uid
        return await self._catch_up(connection, info, last_uid, since, backfill)

    async def _catch_up(self, connection: ImapConnection, info: FolderInfo, last_uid: int,
                        since: date | None, backfill: bool) -> int:
        uids = await asyncio.to_thread(connection.new_uids, last_uid, since=since)
        total, done, delivered = len(uids), 0, 0
        progress = self._on_progress if backfill and total else None
        if backfill and total > self._batch:
            self._log.info("%s: %d messages to read in %r", self.role, total, info.name)
        if progress is not None:
            progress(info.name, 0, total)
        # The next batch's headers are fetched (in a worker thread, on this connection) while
        # this batch is stored: the server and the socket work while we parse and commit. The
        # connection is used by one thread at a time: a body read waits for that fetch first.
        chunks = [uids[start:start + self._batch] for start in range(0, total, self._batch)]
        ahead: asyncio.Future[list[FetchedHeader]] | None = None
        helper = self._on_catch_up(info.name, len(chunks)) if self._on_catch_up and len(chunks) > 1 else None
        try:
            for number, chunk in enumerate(chunks):
                if self._stop.is_set():
                    break
                headers = await (ahead or asyncio.to_thread(connection.fetch_headers, chunk, self._fields))
                ahead = None
                if number + 1 < len(chunks):
                    ahead = _fetch_ahead(connection, chunks[number + 1], self._fields, helper)
                if headers:
                    await self._on_batch(info.name, info, headers, self._body_reader(connection, headers, ahead))
                    delivered += len(headers)
                done += len(chunk)
                if progress is not None:
                    progress(info.name, done, total)
        except asyncio.CancelledError:
            ahead = None  # not waited for: run() aborts the connection, which ends that fetch at once
            raise
        finally:
            try:
                if ahead is not None:  # stopped, or on_batch failed: the connection is free once it ends
                    await asyncio.wait({ahead})
            finally:
                if helper is not None:
                    helper.close()
        return delivered

    # ---------------------------------------------------------------- helpers

    def _caught_up(self) -> None:
        if not self._stop.is_set():  # a backfill cut short by stop has not delivered everything
            self.caught_up.set()

    @staticmethod
    def _body_reader(connection: ImapConnection, headers: list[FetchedHeader],
                     ahead: asyncio.Future[list[FetchedHeader]] | None = None) -> ReadBodies:
        sizes = {header.uid: header.size for header in headers}

        async def read_bodies(uids: Sequence[int]) -> dict[int, bytes]:
            if ahead is not None:
                await asyncio.wait({ahead})  # its own failure is raised where its headers are awaited
            return await asyncio.to_thread(connection.fetch_messages, uids, sizes=sizes)
        return read_bodies

    def _lookback_start(self) -> date | None:
        if self._lookback_days <= 0:
            return None  # 0: read the whole folder
        return self._today() - timedelta(days=self._lookback_days)

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds (through the injected sleep, if any), or until `stop`."""
        stopped = asyncio.ensure_future(self._stop.wait())
        slept = asyncio.ensure_future(
            self._sleep(delay) if self._sleep else asyncio.sleep(delay))
        try:
            await asyncio.wait({stopped, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (stopped, slept):
                task.cancel()


def _fetch_ahead(connection: ImapConnection, uids: Sequence[int], fields: Sequence[str],
                 helper: CatchUpHelper | None = None) -> asyncio.Future[list[FetchedHeader]]:
    future = asyncio.ensure_future(asyncio.to_thread(connection.fetch_headers, uids, fields))
    # Read its outcome even when nobody awaits it (a stop or a failed batch drops it): the batch
    # is fetched again by the next sync, and asyncio would log the exception as never retrieved.
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    if helper is not None:
        def hand_over(done: asyncio.Future[list[FetchedHeader]]) -> None:
            if not done.cancelled() and done.exception() is None:
                helper.ahead(done.result())
        future.add_done_callback(hand_over)
    return future


# -------------------------------------------------------------------- one-off connections
# Each opens its own short-lived connection in a worker thread: they are used rarely (crash
# recovery, filing a copy in Sent) and must not disturb a watcher's IDLE. Bodies are read by the
# watchers themselves (`read_bodies` in on_batch).


def _resolved(connection: ImapConnection, folder: str) -> str:
    if folder != "auto":
        return folder
    found = connection.find_sent_folder()
    if found is None:
        raise ImapFolderError(f"no folder at {connection.where} is marked \\Sent (SPECIAL-USE)")
    return found


async def find_in_folder(settings: ImapSettings, password: Login, folder: str,
                         message_id: str) -> bool:
    """Whether a message with this Message-ID is in the folder ("auto": the \\Sent folder)."""
    def work() -> bool:
        with ImapConnection(settings, password) as connection:
            return bool(connection.search_message_id(_resolved(connection, folder), message_id))
    return await asyncio.to_thread(work)


async def append_message(settings: ImapSettings, password: Login, folder: str, raw: bytes,
                         *, flags: Sequence[bytes] = (b"\\Seen",),
                         msg_time: datetime | None = None) -> None:
    """File a message in the folder ("auto": the \\Sent folder)."""
    def work() -> None:
        with ImapConnection(settings, password) as connection:
            connection.append(_resolved(connection, folder), raw, flags=flags, msg_time=msg_time)
    await asyncio.to_thread(work)
