"""The release machinery in-process: the real Service cycle over a real SQLite store in a temp dir,
with an injected ManualClock and a fake mailer, and mail delivered through the real Ingestor (as
the IMAP watcher hands it over, minus IMAP).

People answer the emails parting sent them exactly as their mail program would (mailfactory's
staff_reply, with the Authentication-Results header the company's server adds). Each sent
message is also filed in Sent and ingested, as `append_to_sent` does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import mailfactory as mf
from harness import write_config

from daemon.adapters import smtp as mailer
from daemon.adapters.imap.values import FetchedHeader
from daemon.adapters.store import OutboxRow
from daemon.flows import operator_actions
from daemon.flows.ingest import Ingestor
from daemon.flows.sending import recover_in_flight
from daemon.runtime.clock import ManualClock
from daemon.runtime.service import Service, open_context

PEOPLE = {"alice": "alice@example.com", "bob": "bob@example.com", "carol": "carol@example.com"}
FAKE_SERVER = SimpleNamespace(password="x", port=1, user="office")  # never dialled: IMAP is bypassed


@dataclass
class Sent:
    row: OutboxRow
    at: datetime

    @property
    def message(self):
        return message_from_bytes(self.row.raw, policy=default)

    @property
    def kind(self) -> str:
        return self.row.kind

    def text(self) -> str:
        return self.message.get_body(("plain",)).get_content()


class World:
    def __init__(self, folder: Path, start: datetime, *, review: dict | None = None, clients: list | None = None,
                 extra: dict | None = None, policy: dict | None = None, mailbox_address: str | None = None) -> None:
        self.config = write_config(folder, FAKE_SERVER, None, clients=clients, review=review, extra=extra,
                                   policy=policy)
        if mailbox_address:
            self.config.write_text(self.config.read_text().replace("office@example.com", mailbox_address))
        self.clock = ManualClock(start)
        self.loop = asyncio.new_event_loop()
        self.sent: list[Sent] = []
        self.uids = {"INBOX": 0, "Sent": 0}
        self.fail_next_send: type[Exception] | None = None
        self.tags = 0
        self._open()

    # ------------------------------------------------------------------ the process

    def _open(self) -> None:
        self.service = Service(self.config, clock=self.clock, tick=0)
        self.service.ctx = open_context(self.config)
        self.service.ingestor = Ingestor(self.service.ctx.settings, self.service.ctx.store)
        self.service._send = self._send  # type: ignore[method-assign]
        self.service._file_in_sent = self._file_in_sent  # type: ignore[method-assign]

    @property
    def ctx(self):
        return self.service.ctx

    @property
    def store(self):
        return self.service.ctx.store

    def cycle(self) -> None:
        self.loop.run_until_complete(self.service.cycle())

    def crash_and_restart(self) -> None:
        """The process dies (nothing in memory survives); a new one opens the store and recovers."""
        self.store.close()
        self._open()
        sent_ids = {s.row.message_id for s in self.sent}

        async def found_in_sent(message_id: str) -> bool:
            return message_id in sent_ids

        self.loop.run_until_complete(recover_in_flight(self.ctx, found_in_sent, self.clock.now))

    def close(self) -> None:
        self.store.close()
        self.loop.close()

    def advance(self, **delta: float) -> None:
        self.clock.advance(timedelta(**delta))
        self.cycle()

    # ------------------------------------------------------------------ the mailer and the mailbox

    async def _send(self, row: OutboxRow) -> mailer.SendResult:
        if self.fail_next_send is not None:
            failure, self.fail_next_send = self.fail_next_send, None
            raise failure("the fake server dropped the line")
        self.sent.append(Sent(row, self.clock.now()))
        return mailer.SendResult(250, "ok")

    async def _file_in_sent(self, row: OutboxRow) -> None:
        self.deliver("Sent", row.raw)

    def deliver(self, folder: str, raw: bytes) -> list[str]:
        """Hand one message to the ingest as the watcher would; returns the staff replies it found."""
        self.uids[folder] += 1
        uid = self.uids[folder]
        head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        ingestor = self.service.ingestor
        batch = ingestor.parse(folder, 1, [FetchedHeader(uid, head, self.clock.now(), len(raw))])
        report = ingestor.commit(batch, {uid: raw} if uid in batch.body_uids else {}, self.clock.now())
        self.service._staff_replies.extend(report.staff_replies)
        self.service.agenda.history_grew(report.clients)
        return report.staff_replies

    # ------------------------------------------------------------------ people

    def to(self, person: str, kind: str | None = None) -> list[Sent]:
        return [s for s in self.sent if PEOPLE[person] in s.row.recipients and (kind is None or s.kind == kind)]

    def releases(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "release"]

    def reply(self, person: str, email: Sent, text: str, *, cycle: bool = True) -> None:
        """`person` answers `email` (one parting sent them) with `text`, authenticated."""
        self.tags += 1
        raw, _ = mf.staff_reply(PEOPLE[person], email.row.raw, text, self.clock.now(), f"{person}-{self.tags}")
        self.deliver("INBOX", raw)
        if cycle:
            self.cycle()

    def client_writes(self, subject: str, body: str = "Hello,\n\nHere is the form.\n") -> None:
        self.tags += 1
        raw = mf.build(sender="jane@acme.example", to=mf.OFFICE, subject=subject, body=body, when=self.clock.now(),
                       mid=mf.message_id(f"jane-{self.tags}", "acme.example"))
        self.deliver("INBOX", raw)

    # ------------------------------------------------------------------ the operator

    def operator(self, action: str, row_id: int) -> object:
        call = {"resend": operator_actions.resend_outbox, "cancel": operator_actions.cancel_outbox,
                "confirm": operator_actions.confirm_outbox}[action]
        return call(self.config, row_id, who="operator", now=self.clock.now())

    def pause(self, client: str, paused: bool) -> object:
        return operator_actions.set_paused(self.config, client, paused, who="operator", now=self.clock.now())


def seed_unresponsive_acme(world: World, start: datetime) -> None:
    """acme ignores three requests (in Sent) over three weeks: the ladder drafts a release."""
    for n, days_before in enumerate((28, 21, 14), start=1):
        raw, _ = mf.request("jane@acme.example", f"Signed form {n}?", start - timedelta(days=days_before),
                            f"acme-req-{n}")
        world.deliver("Sent", raw)
