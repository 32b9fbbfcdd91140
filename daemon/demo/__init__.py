"""`parting demo`: the whole practice, end to end, against real mail servers in this process.

Rules of this module:
- The daemon is the real one (daemon.runtime.service.Service, as `parting run` starts it) with a
  generated configuration; there is no demo code path inside it. Only its clock is injected:
  simulated weeks pass by `ManualClock.set`, never by waiting.
- Everything a person or a client does in the story arrives as real mail: our requests are
  filed in Sent, the clients' answers and the staff's replies to review emails are delivered to
  the INBOX (with the Authentication-Results header our receiving server would add), and the
  daemon finds them by IMAP IDLE like any other mail.
- The narration reports what the daemon recorded and what reached the SMTP server, step by step.
- Nothing is left running, unless `keep`: then the servers and the daemon stay up until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from rich.console import Console

from daemon.cli import render as views
from daemon.core.errors import PartingError
from daemon.demo.company import (
    ALICE,
    BOB,
    CLIENTS,
    HANK,
    JANE,
    OFFICE,
    TIMEZONE,
    Credentials,
    Mail,
    Person,
    new_credentials,
    out_of_office,
    reply,
    request,
    staff_reply,
    write_config,
)
from daemon.demo.narration import Narrator
from daemon.demo.servers import ImapServer, ReceivedMail, SmtpSink
from daemon.queries import status as status_query
from daemon.runtime import app
from daemon.runtime.clock import ManualClock
from daemon.runtime.logs import setup_logging
from daemon.runtime.service import Service

ZONE = ZoneInfo(TIMEZONE)
START = datetime(2026, 10, 5, 9, 0, tzinfo=ZONE)  # a Monday morning, the day parting is installed
OUR_FILES = ("config.yaml", "parting.db", "smtp-received.jsonl", "imap-password", "token-key")
WAIT = 20.0  # seconds any one thing may take to happen before the demo gives up


class DemoError(PartingError):
    """The demo could not go on; the message says what was awaited."""


@dataclass(frozen=True)
class DemoResult:
    workdir: Path
    config: Path
    database: Path
    smtp_record: Path
    casefile: Path | None


def at(day: int, month: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ZONE)


def prepare_workdir(workdir: str | Path | None) -> Path:
    if workdir is None:
        return Path(tempfile.mkdtemp(prefix="parting-demo-"))
    folder = Path(workdir).expanduser().resolve()
    folder.mkdir(parents=True, exist_ok=True)
    taken = [name for name in OUR_FILES if (folder / name).exists()]
    if taken:
        raise DemoError(f"{folder} already holds a demo ({', '.join(taken)}): choose an empty folder or remove them")
    return folder


def run_demo(workdir: str | Path | None = None, *, keep: bool = False, console: Console | None = None) -> DemoResult:
    """Run the whole story; returns where its files are. Raises DemoError if a step never happens."""
    folder = prepare_workdir(workdir)
    return asyncio.run(Demo(folder, console or views.make_console(), keep=keep).run())


class Demo:
    def __init__(self, workdir: Path, console: Console, *, keep: bool = False) -> None:
        self.workdir = workdir
        self.keep = keep
        self.console = console
        self.credentials: Credentials = new_credentials()
        self.clock = ManualClock(START)
        names = {p.id: p.name for p in (ALICE, BOB)} | {str(c["id"]): str(c["name"]) for c in CLIENTS}
        self.tell = Narrator(console, TIMEZONE, names)
        self.imap = ImapServer()
        self.smtp = SmtpSink(workdir, deliver_locally=self._deliver_to_staff)
        self.config: Path | None = None
        self.service: Service | None = None
        self.task: asyncio.Task[int] | None = None
        self.log_file: TextIO | None = None
        self.ports = (0, 0)  # IMAP, SMTP once the servers listen
        self.seen_event = 0
        self.seen_mail = 0
        self._sent: dict[str, Mail] = {}  # our requests by tag, to thread the clients' answers

    # ---- the story -----------------------------------------------------------------------------

    async def run(self) -> DemoResult:
        self.tell.title("parting demo: noticing an unresponsive client and parting with them politely",
                        f"Everything happens in this process; files go to {self.workdir}")
        try:
            await self.start_servers()
            await self.seed_history()
            self.write_configuration()
            await self.start_daemon()
            await self.first_week()
            await self.second_and_third_weeks()
            review = await self.release_drafted()
            await self.owner_and_colleague_approve(review)
            await self.release_leaves()
            casefile = self.case_file()
            self.final_status(casefile)
            if self.keep:
                await self.stay_up()
        finally:
            await self.shutdown()
        if self.keep:
            self.tell.say(f"Stopped the daemon and both servers; the files stay in {self.workdir}")
        return DemoResult(self.workdir, self.config_file, self.workdir / "parting.db", self.smtp.jsonl_path, casefile)

    async def start_servers(self) -> None:
        self.tell.step("The company's mail servers start, in this process, on 127.0.0.1")
        await self.imap.add_user(OFFICE, self.credentials.imap_password, folders=("Sent",))
        for person in (ALICE, BOB):
            await self.imap.add_user(person.email, self.credentials.staff_password)
        imap_port, smtp_port = await self.imap.start(), await self.smtp.start()
        self.ports = (imap_port, smtp_port)
        self.tell.say(f"IMAP 127.0.0.1:{imap_port}  pymap, in memory, with IDLE: mailboxes for the office, "
                      "Alice and Bob")
        self.tell.say(f"SMTP 127.0.0.1:{smtp_port}  aiosmtpd: records every message in {self.smtp.jsonl_path.name}, "
                      "relays none")

    async def seed_history(self) -> None:
        self.tell.step("September, before parting is installed: both clients answer")
        acme = request(JANE, "Quarterly figures?", "Could you send us your quarterly figures by Friday?",
                       at(15, 9, 10), "acme-figures")
        globex = request(HANK, "Meeting on Thursday?", "Does Thursday at 14:00 still suit you for our meeting?",
                         at(21, 9, 11), "globex-meeting")
        history = [("Sent", acme), ("INBOX", reply(JANE, acme, "Here they are.\n\nJane\n", at(16, 9, 9, 12),
                                                   "acme-figures-re")),
                   ("Sent", globex), ("INBOX", reply(HANK, globex, "Thursday is fine.\n\nHank\n", at(21, 9, 15, 40),
                                                     "globex-meeting-re"))]
        for folder, mail in history:
            await self.imap.deliver(OFFICE, folder, mail.raw, seen=True)
            self.tell.say(f"{folder:<5}  {self._sender(mail)}: {mail.message['Subject']}")
        self.tell.why("the history parting will read at its first start: a request answered is a healthy relationship")

    def write_configuration(self) -> None:
        self.tell.step("The configuration a user would write")
        self.config = write_config(self.workdir, imap_port=self.ports[0], smtp_port=self.ports[1],
                                   credentials=self.credentials)
        self.tell.say(f"{self.config}: Example Ltd; alice owns acme and globex; bob is the second reader")
        self.tell.say("imap-password, token-key: secret files, mode 0600, never in the YAML")
        self.tell.lines(app.check_config(self.config))

    async def start_daemon(self) -> None:
        self.tell.step("parting starts: the real daemon, with a simulated clock", START)
        self.log_file = (self.workdir / "daemon.log").open("a", encoding="utf-8")
        setup_logging("text", "info", stream=self.log_file)
        self.service = Service(self.config_file, clock=self.clock, tick=0.1, grace=5.0)
        self.task = asyncio.create_task(self.service.run(install_signals=False), name="parting")
        await self.until(lambda: self.running.opened and self.running.cycles > 0, "the daemon's first cycle")
        await self.until(lambda: self.store.message_count() >= 4, "the daemon to read the mailbox")
        await self.settle()
        self.tell.say(f"watching the mailbox: logged in to IMAP as {OFFICE}, read {self.store.message_count()} "
                      "messages from INBOX and Sent, now waiting on IDLE")
        self.tell.why("simulated days pass by moving the daemon's clock, not by waiting; its log is daemon.log")
        self.news()

    async def first_week(self) -> None:
        self.tell.step("Alice asks both clients something", at(5, 10, 10))
        await self.move_clock(at(5, 10, 10))
        acme = await self.send(request(JANE, "Signed order form?",
                                       "Could you sign and return the order form for the October delivery?",
                                       at(5, 10, 10), "acme-order-form"))
        await self.send(request(HANK, "Invoice address?", "Which address should we put on the November invoice?",
                                at(5, 10, 10), "globex-invoice"))
        self.tell.why("each message asks a question, so each expects a reply (policy: expects_reply questions)")
        await self.settle()
        self.news()

        self.tell.step("Jane's out-of-office arrives", at(5, 10, 10, 4))
        await self.move_clock(at(5, 10, 10, 4))
        auto = await self.receive(out_of_office(JANE, acme, at(5, 10, 10, 4), "acme-ooo"))
        self.tell.say(f"INBOX  {self._sender(auto)}: {auto.message['Subject']}")
        row = self.store.message(auto.message_id.strip("<>"))
        self.tell.why(f"parting filed it as an auto-reply ({row.auto_reply if row else 'Auto-Submitted'}): "
                      "it never counts as an answer")
        await self.settle()
        self.news()

        self.tell.step("Hank from Globex answers", at(6, 10, 11, 20))
        await self.move_clock(at(6, 10, 11, 20))
        text = "Please use our London office: 1 Example Street, London.\n\nHank\n"
        answer = await self.receive(reply(HANK, self._sent["globex-invoice"], text, at(6, 10, 11, 20),
                                          "globex-invoice-re"))
        self.tell.say(f"INBOX  {self._sender(answer)}: {answer.message['Subject']}")
        await self.settle()
        self.news()

        self.tell.step("Friday: Acme's request went unanswered for 3 business days", at(9, 10, 9))
        await self.move_clock(at(9, 10, 9))
        await self.smtp.wait_for(lambda m: m.kind == "owner-nudge", what="the suggested reminder for Alice")
        self.news()

    async def second_and_third_weeks(self) -> None:
        self.tell.step("Alice asks Acme again, about something else", at(12, 10, 10))
        await self.move_clock(at(12, 10, 10))
        await self.send(request(JANE, "Delivery address for November?",
                                "Should we deliver the November shipment to your Leeds warehouse, as before?",
                                at(12, 10, 10), "acme-delivery"))
        await self.settle()
        self.news()

        self.tell.step("Friday: two requests ignored", at(16, 10, 9))
        await self.move_clock(at(16, 10, 9))
        await self.smtp.wait_for(lambda m: m.kind == "owner-notify_owner", what="the note to Alice")
        self.news()

        self.tell.step("Alice tries a third time", at(19, 10, 10))
        await self.move_clock(at(19, 10, 10))
        await self.send(request(JANE, "New prices: can you confirm?",
                                "Could you confirm the new prices before we place the order?",
                                at(19, 10, 10), "acme-prices"))
        await self.settle()
        self.news()

    async def release_drafted(self) -> ReceivedMail:
        self.tell.step("Friday: three requests ignored within 30 days", at(23, 10, 9))
        await self.move_clock(at(23, 10, 9))
        reviews = await self.smtp.wait_for(lambda m: m.kind == "review" and ALICE.email in m.rcpt_tos,
                                           what="the owner's review email")
        self.news()
        self.tell.say(f"Reply-To: {reviews[0].message['Reply-To']}")
        self.tell.why("the reply address, subject tag and In-Reply-To carry the token; only Alice's reply counts")
        return reviews[0]

    async def owner_and_colleague_approve(self, owner_review: ReceivedMail) -> None:
        self.tell.step("Alice reads the evidence and the draft, and replies APPROVE", at(23, 10, 9, 20))
        await self.answer(ALICE, owner_review, "APPROVE\n\nI also tried to call Jane twice this week.\n\nAlice",
                          at(23, 10, 9, 20), "alice-approve")
        colleague = await self.smtp.wait_for(lambda m: m.kind == "review" and BOB.email in m.rcpt_tos,
                                             what="the colleague's review email")
        self.news()

        self.tell.step("Bob, the second reader, replies APPROVE", at(23, 10, 9, 45))
        await self.answer(BOB, colleague[0], "Approve.\n\nCalm and fair; fine to send.\n\nBob",
                          at(23, 10, 9, 45), "bob-approve")
        await self.until(lambda: any(r.kind == "release" for r in self.store.rows(["queued"])),
                         "the release in the outbox")
        self.news()

    async def release_leaves(self) -> None:
        when = at(23, 10, 9, 56)
        self.tell.step("The send delay is over: the release email leaves, once", when)
        await self.move_clock(when)
        await self.smtp.wait_for(lambda m: m.kind == "release", what="the release email")
        await self.until(lambda: self.store.deadlines(["open"]), "the follow-up deadlines")
        await self.settle()
        self.news()

    def case_file(self) -> Path | None:
        self.tell.step("The case file, for the retrospective")
        try:
            from daemon.flows.casefiles import write_casefile
        except ImportError:
            self.tell.say("daemon/casefile.py is not there yet: here is the audit trail it is written from "
                          "(the events table):")
            self.tell.trail(self.store.events(client_id="acme"))
            return None
        written = self.store.events(client_id="acme", kinds=["casefile_written"])
        if written:
            path = Path(written[-1].data["path"])
            self.tell.say("the daemon wrote it when the release left")
        else:
            ctx = self.running.ctx
            path = write_casefile(ctx.store, ctx.settings, ctx.templates, "acme", self.workdir / "casefiles",
                                  now=self.clock.now())
            self.tell.say("written from the database, as `parting casefile acme` does")
        self.tell.say(f"{path}  (and {path.with_suffix('.md').name} beside it)")
        self.tell.why("every message, verdict, review decision with its authentication, send and deadline, "
                      "in time order: what did not work, and where either side went wrong")
        return path

    def final_status(self, casefile: Path | None) -> None:
        self.tell.step("parting status", self.clock.now())
        views.status(status_query.status(self.config_file, now=self.clock.now()), self.console)
        self.console.print()
        self.tell.say(f"Workdir:      {self.workdir}")
        self.tell.say(f"Database:     {self.workdir / 'parting.db'}")
        self.tell.say(f"SMTP record:  {self.smtp.jsonl_path}  (and {self.smtp.mbox_path.name})")
        self.tell.say(f"Case file:    {casefile or 'not written (daemon/casefile.py is missing)'}")
        self.tell.say(f"Look around:  parting drafts show 1 --config {self.config}")

    async def stay_up(self) -> None:
        password = self.credentials.staff_password
        self.tell.step("--keep: the servers and the daemon stay up; press Ctrl-C to stop")
        self.tell.say(f"IMAP 127.0.0.1:{self.imap.port}, no TLS (loopback only):")
        self.tell.say(f"  {OFFICE} / {self.credentials.imap_password}   (what parting watches: INBOX, Sent)")
        self.tell.say(f"  {ALICE.email} / {password}   (what parting sent Alice)")
        self.tell.say(f"  {BOB.email} / {password}   (what parting sent Bob)")
        self.tell.say(f"SMTP 127.0.0.1:{self.smtp.port}, no login; records, never relays")
        self.console.file.flush()  # so a pipe (tee, a test) sees the logins now, not at exit
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def shutdown(self) -> None:
        if self.task is not None:
            self.running.stop.set()
            try:
                await asyncio.wait_for(self.task, timeout=30)
            except Exception as exc:  # noqa: BLE001 - the servers must still be stopped
                self.console.print(f"the daemon stopped with an error: {exc}")
            self.task = None
        await self.smtp.stop()
        await self.imap.stop()
        if self.log_file is not None:
            logging.getLogger("parting").handlers[:] = []
            self.log_file.close()
            self.log_file = None

    # ---- the mechanics -------------------------------------------------------------------------

    @property
    def running(self) -> Service:
        if self.service is None:
            raise RuntimeError("the demo's daemon has not started yet")
        return self.service

    @property
    def config_file(self) -> Path:
        if self.config is None:
            raise RuntimeError("the demo's configuration is not written yet")
        return self.config

    @property
    def store(self) -> Any:
        return self.running.ctx.store

    async def move_clock(self, when: datetime) -> None:
        self.clock.set(when)
        await self.settle()

    async def settle(self) -> None:
        """Let the daemon finish two full cycles at the current clock."""
        seen = self.running.cycles
        self.running.wake.set()
        await self.until(lambda: self.running.cycles >= seen + 2, "two daemon cycles")

    async def send(self, mail: Mail) -> Mail:
        """Our own message to a client: filed in Sent, as the office mail client does."""
        self._sent[mail.message_id.strip("<>").split(".demo@")[0]] = mail
        await self.imap.deliver(OFFICE, "Sent", mail.raw, seen=True)
        await self._until_read(mail)
        self.tell.say(f"Sent   to {mail.message['To']}: {mail.message['Subject']}")
        return mail

    async def receive(self, mail: Mail) -> Mail:
        await self.imap.deliver(OFFICE, "INBOX", mail.raw)
        await self._until_read(mail)
        return mail

    async def answer(self, person: Person, review: ReceivedMail, text: str, when: datetime, tag: str) -> None:
        self.clock.set(when)
        mail = staff_reply(person, review, text, when, tag)
        await self.imap.deliver(OFFICE, "INBOX", mail.raw)
        self.tell.say(f"INBOX  {person.email} → {mail.message['To']}")
        self.tell.lines([f"Subject: {mail.message['Subject']}", f"Authentication-Results: "
                         f"{mail.message['Authentication-Results']}", f"first line: {text.splitlines()[0]}"
                         " (the review email is quoted below it)"])
        judged = ["review_decision", "reply_refused"]
        await self.until(lambda: self.store.events(kinds=judged, after_id=self.seen_event),
                         f"{person.name}'s reply to be judged")

    async def _until_read(self, mail: Mail) -> None:
        bare = mail.message_id.strip("<>")  # the store keeps Message-IDs without their brackets
        await self.until(lambda: self.store.message(bare), f"the daemon to read {mail.message_id}")

    async def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if self.task is not None and self.task.done():
                self.task.result()
                raise DemoError(f"the daemon stopped while the demo waited for {what}")
            value = predicate()
            if value:
                return value
            if loop.time() > deadline:
                raise DemoError(f"waited {timeout:.0f} s for {what} in vain; see {self.workdir / 'daemon.log'}")
            await asyncio.sleep(0.05)

    def news(self) -> None:
        """Narrate what the daemon recorded and what reached the SMTP server since last time."""
        events = self.store.events(after_id=self.seen_event)
        if events:
            self.seen_event = events[-1].id
        self.tell.events(events, self.store)
        for mail in self.smtp.messages[self.seen_mail:]:
            self.tell.mail(mail)
        self.seen_mail = len(self.smtp.messages)

    async def _deliver_to_staff(self, address: str, raw: bytes) -> None:
        if address != OFFICE and self.imap.has_user(address):
            await self.imap.deliver(address, "INBOX", raw)

    @staticmethod
    def _sender(mail: Mail) -> str:
        return str(mail.message["From"])
