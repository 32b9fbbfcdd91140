"""The daemon: startup, main loop, bounded graceful shutdown (in the manner of uvicorn's server).

- Startup validates everything before the first connection: settings, secrets, the database
  folder, the store; a problem there is a PartingError (exit 2), never a crash loop.
- The loop: two folder watchers (INBOX, Sent) feed the store (runtime/intake.py, which the
  Service owns); one worker runs a cycle (staff replies, verdicts and ladder, held drafts,
  deadlines, the outbox) whenever mail arrived or the tick passed, since deadlines and send delays
  fall due without new mail.
- Signals only set events: SIGTERM/SIGINT -> stop, SIGHUP -> reload. The loops react.
- Shutdown waits at most `grace` seconds for a send in flight; a send cut off leaves its row
  `sending`, which the next start resolves from the Sent folder.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

from daemon.adapters import smtp as mailer
from daemon.adapters.imap import watcher as mailbox
from daemon.adapters.oauth import OAuthCredential, sign_in_problem
from daemon.adapters.settings.load import SettingsError, load_settings
from daemon.adapters.settings.secret_files import check_runtime, load_secrets
from daemon.adapters.store import OutboxRow, Store
from daemon.adapters.templates import Templates
from daemon.core.hosts import appends_to_sent
from daemon.core.model import Settings
from daemon.flows.bounces import tell_owners_of_bounces
from daemon.flows.calls import repeat_call_reminders
from daemon.flows.casefiles import write_missing_casefiles
from daemon.flows.context import Context, park
from daemon.flows.evaluate import Agenda, evaluate_all
from daemon.flows.followup import remind_due, resume_held
from daemon.flows.ingest import Ingestor, IngestReport
from daemon.flows.ingest_pool import IngestPool
from daemon.flows.owners import notice_owner_changes
from daemon.flows.reminders import remind_reviews
from daemon.flows.replies import draft_of_reply, handle_reply, hold_after_failure
from daemon.flows.sending import recover_in_flight, send_due, settle_from_sent
from daemon.flows.triage import tell_owners_of_triage
from daemon.runtime import shutdown
from daemon.runtime.clock import Clock, SystemClock
from daemon.runtime.intake import STAGED_FROM, STAGED_MESSAGES, Intake
from daemon.runtime.logs import get_logger, register_secret
from daemon.runtime.notify import Notifier, watchdog_interval
from daemon.runtime.placement import Restore, check_placement

SHUTDOWN_GRACE = 20.0  # default seconds a send in flight may take to finish after SIGTERM
DEFAULT_TICK = 60.0  # seconds between cycles when no mail arrives
UPGRADE_STEP_SECONDS = 900.0  # the start time systemd gives each step of a schema upgrade


def open_context(config_path: str | Path, environ: dict[str, str] | None = None,
                 upgrading: Callable[[int, int], None] | None = None) -> Context:
    """Everything `run` needs, validated before any connection; raises PartingError subclasses.
    `upgrading`: told of each step of a schema upgrade of the database (Store.open)."""
    settings = load_settings(config_path, environ=environ)
    problems = check_runtime(settings)
    if problems:
        raise SettingsError(problems)
    secrets = load_secrets(settings, environ=environ)
    for value in (secrets.imap_password, secrets.smtp_password, secrets.token_key, secrets.oauth_client_secret):
        if not isinstance(value, OAuthCredential):  # its tokens are registered as they are read
            register_secret(value)
    if settings.mailbox.oauth is not None:  # IMAP and SMTP sign in with tokens instead of passwords
        credential = OAuthCredential(settings.mailbox.oauth, secrets.oauth_client_auth)
        secrets = replace(secrets, imap_password=credential, smtp_password=credential)
    store = Store.open(settings.database, upgrading=upgrading)
    return Context(settings, secrets, store, Templates(settings.templates_dir))


class Service:
    def __init__(self, config_path: str | Path, *, clock: Clock | None = None, notifier: Notifier | None = None,
                 tick: float = DEFAULT_TICK, grace: float = SHUTDOWN_GRACE, environ: dict[str, str] | None = None,
                 on_progress: Callable[[str, int, int], None] | None = None, batch: int = 1000,
                 staged: int = STAGED_MESSAGES, staged_from: int = STAGED_FROM, ingest_worker: bool = True) -> None:
        self.config_path = config_path
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.tick = tick
        self.grace = grace
        self.environ = environ
        self.log = get_logger("service")
        # A catch-up of several batches reads headers and bodies in one worker process while this
        # one stores the batch before (flows/ingest_pool.py); False: everything in this process.
        self.ingest_pool: IngestPool | None = IngestPool(get_logger("ingest")) if ingest_worker else None
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()
        self.wake = asyncio.Event()
        self._ctx: Context | None = None
        self._staff_replies: list[str] = []
        self.agenda = Agenda()
        self.cycles = 0
        self.restored: Restore | None = None  # this start opened a copy restored from elsewhere
        self._settled: set[int] = set()  # outbox rows already looked up in Sent after a restore
        self._doubt_upto: int | None = None  # after a restore: the highest outbox row id it held
        # The folder watchers and what they store (runtime/intake.py); `batch`, `staged` and
        # `staged_from` are its catch-up's sizes.
        self.intake = Intake(lambda: self.ctx, lambda: self.ingestor, clock=self.clock, stop=self.stop,
                             wake=self.wake, ingest_pool=self.ingest_pool, took_in=self._took_in, log=self.log,
                             on_progress=on_progress, batch=batch, staged=staged, staged_from=staged_from)

    @property
    def ctx(self) -> Context:
        """The running context: settings, secrets, store, templates (from `run` on)."""
        if self._ctx is None:
            raise RuntimeError("the service has not opened its configuration yet (call run first)")
        return self._ctx

    @ctx.setter
    def ctx(self, value: Context) -> None:
        self._ctx = value

    @property
    def opened(self) -> bool:
        return self._ctx is not None

    def _upgrading(self, old: int, new: int) -> None:
        """A step of the database's schema upgrade, before READY: some rewrite tables (a minute
        or more for millions of messages), so systemd is asked for time, step by step."""
        self.log.info("upgrading the database from schema version %d to %d: on a large store this"
                      " may take a minute", old, new)
        self.notifier.extend_start(UPGRADE_STEP_SECONDS, f"upgrading the database (schema {old} -> {new})")

    @property
    def watchers(self) -> list[mailbox.FolderWatcher]:
        """The folder watchers (INBOX, Sent) of the intake; empty until they start."""
        return self.intake.watchers

    def _took_in(self, report: IngestReport) -> None:
        """What a write of the intake brings the next cycle: staff replies, clients to judge again."""
        self._staff_replies.extend(report.staff_replies)
        self.agenda.history_grew(report.clients)

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, once: bool = False, install_signals: bool = True) -> int:
        if install_signals and not once:
            self._install_signal_handlers()
        self.ctx = open_context(self.config_path, self.environ, upgrading=self._upgrading)
        self._warn_about_settings(self.ctx.settings)
        self.ingestor = Ingestor(self.ctx.settings, self.ctx.store, get_logger("ingest"))
        try:
            if once:
                return await self._run_once()
            await self._recover()
            self.intake.start_watchers()
            await self.intake.wait_until_connected()
            if self.stop.is_set():
                return 0
            self.notifier.ready(self.status_line())
            self.log.info("ready: %s", self.status_line())
            watchdog = asyncio.create_task(self._watchdog(), name="watchdog")
            try:
                await self._main_loop()
            finally:
                watchdog.cancel()
            return 0
        finally:
            await self._shutdown()

    async def _run_once(self) -> int:
        """One full cycle for cron and debugging: catch up both folders, decide, send, exit."""
        await self._recover()
        await self.catch_up_once()
        await self.cycle()
        return 0

    async def catch_up_once(self) -> int:
        """Read each folder up to now, INBOX then Sent (one ingest worker for both); the number of
        new headers."""
        return await self.intake.catch_up_once()

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload.set)
        if shutdown.requested:  # SIGTERM arrived while starting: stop as soon as we can
            self.stop.set()

    async def _main_loop(self) -> None:
        while not self.stop.is_set():
            if self.reload.is_set():
                self.reload.clear()
                await self._reload()
            try:
                await self.cycle()
            except Exception:  # noqa: BLE001 - one bad cycle must not end the service; next tick retries
                self.log.exception("cycle failed; retrying at the next tick")
            await self._idle(self.tick)

    async def _idle(self, seconds: float) -> None:
        """Wait for new mail, a signal, or the tick."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (self.wake, self.stop, self.reload)]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        self.wake.clear()

    async def _shutdown(self) -> None:
        self.notifier.stopping()
        self.stop.set()
        await self.intake.stop_watchers()
        if self.ingest_pool is not None:
            self.ingest_pool.close()  # the watchers' catch-ups ended it already; this is the backstop
        if self._ctx is not None:
            self._ctx.store.close()
        self.log.info("stopped")

    # ------------------------------------------------------------------ one cycle

    async def cycle(self) -> None:
        """One pass: replies, verdicts, holds, reminders, then sending. A failure in one item (a
        reply, a client) parks that item; a failure in one stage is logged; sending always runs."""
        ctx, now = self.ctx, self.clock.now
        for message_id in dict.fromkeys([*self._staff_replies, *ctx.store.unprocessed_staff_replies()]):
            if self.stop.is_set():
                break
            try:
                handle_reply(ctx, message_id, now())
            except Exception as problem:  # noqa: BLE001 - one bad reply must not stop the others
                try:
                    draft = draft_of_reply(ctx, message_id)
                except Exception:  # noqa: BLE001 - without its draft, the first person is told
                    draft = None
                park(ctx, f"staff reply <{message_id}>", f"reply:{message_id}", problem, now(),
                     client_id=draft.client_id if draft else None, draft_id=draft.id if draft else None)
                with ctx.store.transaction():
                    ctx.store.mark_reply_processed(message_id, f"parked: {type(problem).__name__}", now())
                self._stage("holding the draft of a parked reply", partial(
                    hold_after_failure, ctx, message_id, "a reply about it could not be read: it may have said stop",
                    now()))
        self._staff_replies.clear()
        if self.stop.is_set():
            return
        self._stage("owner changes", lambda: notice_owner_changes(ctx, now()))
        self._stage("delivery failures", lambda: tell_owners_of_bounces(ctx, now()))
        self._stage("triage", lambda: tell_owners_of_triage(ctx, now()))
        when = now()
        self.agenda.history_grew(ctx.rejudge)
        ctx.rejudge.clear()
        if self._history_complete():
            only = self.agenda.next(ctx.store, when)
            if self._stage("evaluate", lambda: evaluate_all(ctx, when, only)):
                self.agenda.evaluated(only, when)
        self._stage("resume held drafts", lambda: resume_held(ctx, now()))
        self._stage("review reminders", lambda: remind_reviews(ctx, now()))
        self._stage("deadline reminders", lambda: remind_due(ctx, now()))
        self._stage("call reminders", lambda: repeat_call_reminders(ctx, now()))
        if self._can_send() and (self.restored is None or await self._settle_after_restore()):
            await self._send_with_grace()
        write_missing_casefiles(ctx, now())
        self.cycles += 1
        self.notifier.status(self.status_line())

    def _stage(self, name: str, run: Callable[[], object]) -> bool:
        try:
            run()
        except Exception:  # noqa: BLE001 - the stages after it, sending above all, still run
            self.log.exception("%s failed; the rest of the cycle goes on", name)
            return False
        return True

    def _history_complete(self) -> bool:
        """Clients are judged only once every folder has been read in full since start: with the
        Sent folder read and the Inbox not yet, every client would look as if ignoring us."""
        return not self.intake.unread_folders()

    def _can_send(self) -> bool:
        """Not while OAuth sign-in is needed: every attempt would fail and count towards
        smtp.max_attempts; the outbox waits as it is until someone runs `parting login`."""
        settings = self.ctx.settings
        return settings.mode == "dry_run" or sign_in_problem(settings.mailbox.oauth) is None

    async def _send_with_grace(self) -> None:
        """Send what is due; after a stop request, a send in flight gets `grace` seconds to finish."""
        task = asyncio.ensure_future(send_due(self.ctx, self.clock.now, self._send, file_copy=self._file_in_sent,
                                              should_stop=self.stop.is_set))
        stopped = asyncio.ensure_future(self.stop.wait())
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not task.done():
            done, _ = await asyncio.wait([task], timeout=self.grace)
            if not done:
                task.cancel()
                self.log.warning("a send was cut off at shutdown; its outbox row stays 'sending' and is"
                                 " checked against the Sent folder at the next start")
                await asyncio.gather(task, return_exceptions=True)
                return
        if task.done() and not task.cancelled() and (problem := task.exception()) is not None:
            raise problem

    async def _send(self, row: OutboxRow) -> mailer.SendResult:
        settings = self.ctx.settings
        if settings.mode == "dry_run":
            try:
                path = await asyncio.to_thread(mailer.write_eml, row.raw, _dry_run_folder(settings), row.message_id)
            except OSError as exc:
                raise mailer.TemporaryFailure(f"dry run: could not write to {settings.dry_run_dir}: {exc}") from exc
            return mailer.SendResult(250, f"dry run: written to {path}")
        return await mailer.send_message(row.raw, sender=row.sender, recipients=row.recipients,
                                         settings=settings.mailbox.smtp, password=self.ctx.secrets.smtp_password)

    async def _file_in_sent(self, row: OutboxRow) -> None:
        """File the copy the server accepted in Sent, unless the provider does or nothing was sent."""
        ctx = self.ctx
        box = ctx.settings.mailbox
        if ctx.settings.mode == "dry_run" or not appends_to_sent(box.append_to_sent, box.smtp.host):
            return
        await mailbox.append_message(ctx.settings.mailbox.imap, ctx.secrets.imap_password,
                                     ctx.settings.mailbox.imap.sent, row.raw)

    async def _recover(self) -> None:
        """Before anything is sent: note a restored database (event `state_restored`); rows a crash
        left `sending`: found in Sent (dry run: its .eml written) -> sent, else uncertain; every
        other unfinished row found in Sent -> sent, since a restored copy may have lost its writes."""
        ctx = self.ctx
        assert ctx is not None, "run() opens the context first"
        self.restored = check_placement(ctx.store, ctx.settings.database, self.clock.now())
        if self.restored is not None:
            self.log.warning("this database was restored from a copy last written on %s (newest event %s): every"
                             " unfinished outbox row is looked up in the Sent folder before it is sent",
                             self.restored.from_host, self.restored.last_event_at)
            self._doubt_upto = max((row.id for row in ctx.store.rows()), default=0)
        if not ctx.store.rows(["sending", "queued", "uncertain", "failed"]):
            return
        in_flight = await recover_in_flight(ctx, self._found_in_sent, self.clock.now)
        self._settled.update(row_id for row_id, _ in in_flight)
        await settle_from_sent(ctx, self._found_in_sent, self.clock.now, self._settled, doubt_upto=self._doubt_upto)

    async def _settle_after_restore(self) -> bool:
        """After a restore, rows queued since the start (a replayed reply queues its mail again, with
        the Message-ID the old host used), and rows the start could not look up, are looked up in
        Sent once each before they may leave. False while the folder cannot be searched: then
        nothing is sent this cycle."""
        assert self.ctx is not None, "run() opens the context first"
        outcomes = await settle_from_sent(self.ctx, self._found_in_sent, self.clock.now, self._settled,
                                          doubt_upto=self._doubt_upto)
        return "unknown" not in outcomes.values()

    async def _found_in_sent(self, message_id: str) -> bool | None:
        ctx = self.ctx
        assert ctx is not None, "run() opens the context first"
        if ctx.settings.mode == "dry_run":
            return (Path(_dry_run_folder(ctx.settings)) / mailer.eml_filename(message_id)).exists()
        try:
            return await mailbox.find_in_folder(ctx.settings.mailbox.imap, ctx.secrets.imap_password,
                                                ctx.settings.mailbox.imap.sent, message_id)
        except Exception as exc:  # noqa: BLE001 - unknown is treated as not found: a person decides
            self.log.warning("could not search the Sent folder: %s", exc)
            return None

    # ------------------------------------------------------------------ reload, watchdog, status

    async def _reload(self) -> None:
        self.notifier.reloading(time.monotonic_ns() // 1000)
        self.log.info("reloading %s", self.config_path)
        try:
            fresh = open_context(self.config_path, self.environ)
        except Exception as exc:  # noqa: BLE001 - a broken file never stops a running service
            lines = exc.lines() if hasattr(exc, "lines") else [str(exc)]
            for line in lines:
                self.log.error("reload refused, keeping the running configuration: %s", line)
            self.notifier.ready(self.status_line())
            return
        old = self.ctx
        fresh.store.close()
        self.intake.flush()  # batches threaded under the old settings are written as they were
        self.ctx = replace(old, settings=fresh.settings, secrets=fresh.secrets, templates=fresh.templates)
        self.ingestor = Ingestor(self.ctx.settings, self.ctx.store, get_logger("ingest"))
        self._warn_about_settings(self.ctx.settings)
        self.agenda.evaluate_everyone()  # policies, clients or the calendar may have changed
        if old.settings.mailbox != fresh.settings.mailbox or old.secrets.imap_password != fresh.secrets.imap_password:
            self.log.info("mailbox settings changed: reconnecting")
            await self.intake.stop_watchers()
            self.intake.start_watchers()
        self.log.info("configuration reloaded")
        self.notifier.ready(self.status_line())
        self.wake.set()

    async def _watchdog(self) -> None:
        """Ping systemd from the event loop itself, so a stuck loop stops the pings."""
        interval = watchdog_interval()
        if interval is None:
            return
        while not self.stop.is_set():
            self.notifier.watchdog()
            await asyncio.sleep(interval)

    def status_line(self) -> str:
        store = self.ctx.store
        in_review = len(store.drafts(["owner_review", "second_review", "sendable", "held"]))
        due = len(store.due_deadlines(self.clock.now()))
        queued = len(store.rows(["queued", "sending"]))
        attention = len(store.rows(["uncertain", "failed"]))
        line = (f"watching {len(self.ctx.settings.clients)} clients; {in_review} drafts in review; "
                f"{due} deadlines due; outbox {queued} queued")
        line += f", {attention} need a person" if attention else ""
        if sign_in_problem(self.ctx.settings.mailbox.oauth):  # written by the IMAP or SMTP sign-in
            line = "sign-in needed: run parting login; " + line
        # Say why no verdict appears yet (a missing Sent folder keeps it so: see the log).
        if unread := self.intake.unread_folders():
            line += f"; clients not judged until {' and '.join(unread)} {'is' if len(unread) == 1 else 'are'} read"
        return line

    def _warn_about_settings(self, settings: Settings) -> None:
        if not settings.review.require_authentication:
            self.log.warning("review.require_authentication is false: approvals are accepted WITHOUT checking "
                             "Authentication-Results. Use this only for test setups.")
        if settings.mode == "dry_run":
            self.log.warning("dry run: nothing is sent; messages are written to %s", settings.dry_run_dir)


def _dry_run_folder(settings: Settings) -> str:
    """Where dry_run mode writes outgoing mail (the settings give a default folder)."""
    if not settings.dry_run_dir:
        raise mailer.TemporaryFailure("dry run: no dry_run.folder is configured")
    return settings.dry_run_dir
