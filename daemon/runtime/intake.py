"""The daemon's intake: the two folder watchers (INBOX, Sent) and what they feed into the store.

Rules:
- The Service owns one Intake and hands it what it needs explicitly: the running context and the
  ingestor (as accessors: a reload replaces both), the clock, the stop and wake events, the ingest
  worker, the logger, and `took_in`, which tells the cycle what a write brought (staff replies to
  handle, clients whose history grew). The Intake never touches the Service itself.
- A live message, a catch-up of one batch, or any batch into a small database (under 4 MB) is
  written at once; a catch-up of several batches into a larger one is staged and written in
  larger transactions (STAGED_MESSAGES, STAGED_FROM), and always when it ends: finished,
  stopped, failed or cancelled.
- Nothing staged under an old UIDVALIDITY or under old settings is written after the change: a
  reset and a reload write what was staged first.
- Everything written reaches the cycle through `took_in` and the wake event; every folder read in
  full since start is what lets the cycle judge clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from daemon.adapters.imap import watcher as mailbox
from daemon.adapters.oauth import TokenFile
from daemon.core.mail import HEADER_FIELDS
from daemon.flows.context import Context
from daemon.flows.ingest import Ingestor, IngestReport
from daemon.flows.ingest_pool import IngestPool
from daemon.runtime.clock import Clock
from daemon.runtime.faults import crash_point
from daemon.runtime.logs import get_logger

# A catch-up into a database of more than STAGED_FROM bytes writes its batches in transactions
# of at least STAGED_MESSAGES messages (and one at its end): each commit rewrites every index page
# its batch touched, and a batch's keys (Message-IDs, threads, subjects, addresses) are spread
# over them, so one commit of three batches writes about half the pages of three
# (flows/ingest_staged.py): a 20,000-message backfill writes 86 MB instead of 144, in the same
# time (bench/README.md). Below 4 MB (some 4,000 messages) each batch is written at once, so a
# new store's first mail reaches the cycle soonest.
STAGED_MESSAGES = 3000
STAGED_FROM = 4 * 1024 * 1024
TOKEN_FILE_POLL = 0.5  # seconds: how often a waiting watcher looks for a new token file


class Intake:
    def __init__(self, ctx: Callable[[], Context], ingestor: Callable[[], Ingestor], *, clock: Clock,
                 stop: asyncio.Event, wake: asyncio.Event, ingest_pool: IngestPool | None,
                 took_in: Callable[[IngestReport], None], log: logging.Logger,
                 on_progress: Callable[[str, int, int], None] | None = None, batch: int = 1000,
                 staged: int = STAGED_MESSAGES, staged_from: int = STAGED_FROM) -> None:
        self._ctx, self._ingestor = ctx, ingestor
        self.clock = clock
        self.stop = stop
        self.wake = wake  # set when something was stored, and when every folder has been read
        self.ingest_pool = ingest_pool
        self.took_in = took_in
        self.log = log
        self.on_progress = on_progress
        self.batch = batch  # headers a FETCH of a catch-up
        self.staged = staged  # messages a catch-up stages before it writes them (STAGED_MESSAGES)
        self.staged_from = staged_from  # ...once the database is this large (STAGED_FROM bytes)
        self._catching_up: dict[str, int] = {}  # folder -> catch-ups in progress (their batches are staged)
        self.watchers: list[mailbox.FolderWatcher] = []
        self._watcher_tasks: list[asyncio.Task[None]] = []

    @property
    def ctx(self) -> Context:
        return self._ctx()

    @property
    def ingestor(self) -> Ingestor:
        return self._ingestor()

    # ------------------------------------------------------------------ the watchers

    async def catch_up_once(self) -> int:
        """Read each folder up to now, INBOX then Sent (one ingest worker for both); the number of
        new headers."""
        delivered = 0
        with self.ingest_pool.held() if self.ingest_pool is not None else contextlib.nullcontext():
            for watcher in self.make_watchers():
                count = await watcher.run_once()
                self.log.info("%s: %d new headers", watcher.role, count)
                delivered += count
        return delivered

    def make_watchers(self) -> list[mailbox.FolderWatcher]:
        ctx = self.ctx
        imap = ctx.settings.mailbox.imap
        self.watchers = [
            mailbox.FolderWatcher(imap, ctx.secrets.imap_password, role, on_batch=self._on_batch,
                                  get_state=self._get_state, on_uidvalidity_change=self._on_uidvalidity_change,
                                  stop=self.stop, log=get_logger(f"imap.{role}"), fetch_fields=HEADER_FIELDS,
                                  on_progress=self.on_progress, today=lambda: self.clock.now().date(),
                                  sleep=self._backoff_sleep, batch=self.batch,
                                  on_catch_up=self._on_catch_up)
            for role in ("inbox", "sent")
        ]
        return self.watchers

    async def _backoff_sleep(self, delay: float) -> None:
        """A watcher's wait before trying again; with OAuth2 cut short when the token file changes
        (`parting login` wrote a new one), so the mail that arrived meanwhile is read at once."""
        assert self.ctx is not None
        oauth = self.ctx.settings.mailbox.oauth
        if oauth is None:
            await asyncio.sleep(delay)
            return
        loop = asyncio.get_running_loop()
        token_file = TokenFile(oauth.token_file)
        end, before = loop.time() + delay, token_file.identity()
        while (left := end - loop.time()) > 0 and token_file.identity() == before:
            await asyncio.sleep(min(left, TOKEN_FILE_POLL))

    def start_watchers(self) -> None:
        self._watcher_tasks = [asyncio.create_task(w.run(), name=f"watch-{w.role}") for w in self.make_watchers()]
        self._watcher_tasks.append(asyncio.create_task(self._wake_when_caught_up(), name="caught-up"))

    async def wait_until_connected(self) -> None:
        """Until every watcher has connected, or a stop was asked for."""
        connected = [asyncio.ensure_future(w.connected.wait()) for w in self.watchers]
        stopped = asyncio.ensure_future(self.stop.wait())
        waiting: list[asyncio.Future[Any]] = [asyncio.gather(*connected), stopped]
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        for task in connected:
            task.cancel()

    async def _wake_when_caught_up(self) -> None:
        await asyncio.gather(*(watcher.caught_up.wait() for watcher in self.watchers))
        self.log.info("every folder read: judging clients")
        self.wake.set()

    def unread_folders(self) -> list[str]:
        """The folders not yet read in full since start (their watchers' roles)."""
        return [watcher.role for watcher in self.watchers if not watcher.caught_up.is_set()]

    async def stop_watchers(self) -> None:
        for task in self._watcher_tasks:
            task.cancel()
        await asyncio.gather(*self._watcher_tasks, return_exceptions=True)
        self._watcher_tasks = []

    async def _get_state(self, folder: str) -> mailbox.KnownFolder | None:
        # A watcher asks where its folder stands as each sync starts, and reads on from there.
        self.ingestor.read_again(folder)
        return self.ctx.store.folder_state(folder)

    # ------------------------------------------------------------------ catch-ups and staged writes

    def _on_catch_up(self, folder: str, batches: int) -> mailbox.CatchUpHelper:
        """A catch-up of several batches: its batches are staged and written together (and
        read by the ingest worker, when there is one)."""
        self._catching_up[folder] = self._catching_up.get(folder, 0) + 1
        return _CatchUp(self, folder, self.ingest_pool.catch_up(folder, batches) if self.ingest_pool else None)

    def _catch_up_ended(self, folder: str) -> None:
        """Finished, stopped, failed or cancelled: what its batches staged is written now."""
        self._catching_up[folder] -= 1
        if not self._catching_up[folder]:
            del self._catching_up[folder]
        self.flush()

    def flush(self) -> None:
        """Write what is staged, and tell the cycle what it brought."""
        reports = self.ingestor.flush()
        if not reports:
            return
        crash_point("after_ingest_commit")  # the batches and their folders' last UIDs are committed
        if any(report.staff_replies for report in reports):
            crash_point("after_ingest_commit.staff_reply")  # ...and the replies are not yet handled
        for report in reports:
            if report.stored or report.quarantined or report.triaged:
                self.log.info("%s: %d stored, %d quarantined, %d for triage", report.folder, report.stored,
                              report.quarantined, report.triaged, extra={"folder": report.folder})
            self.took_in(report)
            if report.stored:
                self.wake.set()

    async def _on_batch(self, folder: str, info: mailbox.FolderInfo, headers: list[mailbox.FetchedHeader],
                        read_bodies: mailbox.ReadBodies) -> None:
        pool = self.ingest_pool
        # The worker's readings, when it has them (a catch-up's later batches), else read here.
        readings = await pool.header_readings(headers) if pool is not None else None
        batch = self.ingestor.parse(folder, info.uidvalidity, headers, readings)
        bodies = await read_bodies(batch.body_uids) if batch.body_uids else {}
        # A live message, a catch-up of one batch, a small database: written at once, below.
        at_once = folder not in self._catching_up or self.ctx.store.database_bytes() < self.staged_from
        # The worker reads the bodies while this process threads the batch: the commit below waits
        # for them; a staged batch's are taken in only when the next batch is staged, or at the
        # flush, so it reads them all and this process goes on (flows/ingest.py, `behind`).
        later = pool.body_readings([item for item in self.ingestor.body_items(batch, bodies) if not item.bounce],
                                   behind=not at_once) if pool is not None and readings is not None else None
        if self.ingestor.staged_messages >= self.staged:
            # Written here, while the worker reads this batch's bodies (and the next one's headers).
            self.flush()
        self.ingestor.stage(batch, bodies, self.clock.now(), later=later, behind=not at_once)
        if at_once:
            self.flush()

    async def _on_uidvalidity_change(self, folder: str, old: int, new: int) -> None:
        self.flush()  # nothing staged under the old UIDVALIDITY is written after the reset
        with self.ctx.store.transaction():
            self.ctx.store.reset_folder(folder, new)
            self.ctx.store.append_event("folder_resync", at=self.clock.now(),
                                        data={"folder": folder, "old_uidvalidity": old, "new_uidvalidity": new})


class _CatchUp:
    """The intake's part in a watcher's catch-up (mailbox.CatchUpHelper): the ingest worker's
    (when one runs), then writing what the catch-up staged when it ends."""

    def __init__(self, intake: Intake, folder: str, worker: mailbox.CatchUpHelper | None) -> None:
        self.intake, self.folder, self.worker = intake, folder, worker

    def ahead(self, headers: list[mailbox.FetchedHeader]) -> None:
        if self.worker is not None:
            self.worker.ahead(headers)

    def close(self) -> None:
        try:  # what it staged first, while the worker may still be reading bodies for it
            self.intake._catch_up_ended(self.folder)
        finally:
            if self.worker is not None:
                self.worker.close()
