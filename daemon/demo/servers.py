"""The demo's own mail servers, in-process on loopback: IMAP from pymap, SMTP from aiosmtpd.

Rules of this module:
- Both servers run in the caller's event loop; the daemon's blocking IMAP work runs in worker
  threads, so nothing here can deadlock with it.
- The IMAP server is pymap's in-memory `dict` backend (IDLE included), with one mailbox per
  user; `deliver` appends a message as a receiving mail server would (INTERNALDATE = its Date).
- The SMTP server accepts every message and relays none. It records each one in
  `smtp-received.jsonl` (one JSON object a line: mail_from, rcpt_tos, kind, message_id, subject)
  and `smtp-received.mbox`, and files a copy in the IMAP INBOX of any recipient who has a
  mailbox here (our own staff), so a mail client can be pointed at the demo.
- `stop` closes the listening sockets and every open connection, so no thread is left waiting.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mailbox
from argparse import Namespace
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP
from proxyprotocol.reader import ProxyProtocolReader
from pymap.backend.dict import Config as DictConfig
from pymap.backend.dict import Identity, Login
from pymap.concurrent import Subsystem
from pymap.imap import IMAPServer
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials.flag import Flag
from pymap.user import Passwords, UserMetadata

LOOPBACK = "127.0.0.1"
SERVER_NAME = "mx.example.com"


class _QuietConfig(DictConfig):
    """pymap's in-memory backend without the DNS lookup its default greeting makes."""

    @property
    def greeting(self) -> bytes:
        return f"Server ready {SERVER_NAME}".encode("ascii")


def _pymap_config() -> _QuietConfig:
    args = Namespace(passlib_cfg=None, proxy_protocol=None, inherited_sockets=None)
    # cpu_subsystem: asyncio, not pymap's default thread pool, so stopping leaves no thread behind.
    return _QuietConfig(args, host=LOOPBACK, port=0, tls_enabled=False, reject_dnsbl=False,
                        invalid_user_sleep=0.0, cpu_subsystem=Subsystem.for_asyncio(),
                        demo_data=False, demo_user="", demo_password="")


class ImapServer:
    """pymap on 127.0.0.1 with mailboxes for the given users (login = address)."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._config = _pymap_config()
        self._login = Login(self._config)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[object]] = set()

    async def add_user(self, address: str, password: str, folders: tuple[str, ...] = ()) -> None:
        self._config.apply_context()
        hashed = await Passwords(self._config).hash_password(password)
        identity = Identity(address, self._login, None, frozenset())
        await identity.set(UserMetadata(self._config, address, password=hashed))
        async with identity.new_session() as session:
            for folder in folders:
                await session.mailbox_set.add_mailbox(folder)

    def has_user(self, address: str) -> bool:
        return address in self._login.users_dict

    async def deliver(self, address: str, folder: str, raw: bytes, *, seen: bool = False) -> None:
        """Put a message in a user's folder as a mail server would; IDLE sessions hear of it."""
        self._config.apply_context()
        date = message_from_bytes(raw, policy=default_policy).get("Date")
        when = parsedate_to_datetime(str(date)) if date else datetime.now(UTC)
        flags = frozenset({Flag(rb"\Seen")}) if seen else frozenset()
        async with Identity(address, self._login, None, frozenset()).new_session() as session:
            target = await session.mailbox_set.get_mailbox(folder)
            await target.append(AppendMessage(raw, when, flags), recent=True)

    async def start(self) -> int:
        self._config.apply_context()
        imap = ProxyProtocolReader(self._config.proxy_protocol).get_callback(IMAPServer(self._login, self._config))

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None  # a connection is served in a task of its own
            self._writers.add(writer)
            self._tasks.add(task)
            try:
                await imap(reader, writer)
            finally:
                self._writers.discard(writer)
                self._tasks.discard(task)

        self._server = await asyncio.start_server(serve, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage = field(repr=False)

    @property
    def kind(self) -> str | None:
        return self.message.get("X-Parting-Kind")

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return body.get_content() if body is not None else ""


class SmtpSink:
    """aiosmtpd on 127.0.0.1 that accepts, records and never relays."""

    def __init__(self, record_dir: Path, deliver_locally: Callable[[str, bytes], Any] | None = None) -> None:
        self.port: int | None = None
        self.messages: list[ReceivedMail] = []
        self.jsonl_path = record_dir / "smtp-received.jsonl"
        self.mbox_path = record_dir / "smtp-received.mbox"
        self._deliver_locally = deliver_locally
        self._arrived = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._sessions: list[SMTP] = []

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO

        def session() -> SMTP:
            smtp = SMTP(self, hostname=SERVER_NAME, ident="demo sink (records, never relays)", loop=loop)
            self._sessions.append(smtp)
            return smtp

        self._server = await loop.create_server(session, LOOPBACK, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for smtp in self._sessions:
            transport = getattr(smtp, "transport", None)
            if transport is not None:
                transport.close()
        with suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), timeout=5)
        self._server = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd API
        raw = bytes(envelope.original_content or envelope.content)
        message = message_from_bytes(raw, policy=default_policy)
        mail = ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), raw, message)
        record = {"received_at": datetime.now(UTC).isoformat(), "mail_from": mail.mail_from,
                  "rcpt_tos": list(mail.rcpt_tos), "kind": mail.kind, "message_id": message.get("Message-ID"),
                  "subject": str(message.get("Subject", "")).strip()}
        with self.jsonl_path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        box = mailbox.mbox(self.mbox_path)
        try:
            box.add(mailbox.mboxMessage(raw))
            box.flush()
        finally:
            box.close()
        self.messages.append(mail)
        if self._deliver_locally is not None:
            for rcpt in mail.rcpt_tos:
                await self._deliver_locally(rcpt, raw)
        self._arrived.set()
        return "250 2.0.0 OK: recorded, not relayed"

    async def wait_for(self, predicate: Callable[[ReceivedMail], bool], *, count: int = 1,
                       timeout: float = 20.0, what: str = "a message") -> list[ReceivedMail]:
        """The recorded messages matching `predicate`, once there are at least `count`."""
        async def arrived() -> list[ReceivedMail]:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                self._arrived.clear()
                await self._arrived.wait()

        try:
            return await asyncio.wait_for(arrived(), timeout)
        except TimeoutError:
            raise TimeoutError(f"the SMTP server did not receive {what} within {timeout:.0f} s") from None

    def of_kind(self, kind: str, to: str | None = None) -> list[ReceivedMail]:
        return [m for m in self.messages if m.kind == kind and (to is None or to in m.rcpt_tos)]
