"""The IMAP adapter against a real Dovecot on loopback (and, for the failure modes Dovecot cannot
show on demand, a bare socket that stays silent or a scripted server that splits a line)."""

from __future__ import annotations

import asyncio
import email.parser
import logging
import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import imapclient
import pytest
from servers import DovecotServer

from daemon.adapters.imap import fetchreader
from daemon.adapters.imap.connection import ImapConnection as _Connection
from daemon.adapters.imap.connection import _groups_within
from daemon.adapters.imap.watcher import (
    Backoff,
    FolderState,
    FolderWatcher,
    ImapAuthError,
    ImapConnection,
    ImapConnectionError,
    ImapConnectionLost,
    ImapFolderError,
    append_message,
    find_in_folder,
)
from daemon.core.model import ImapSettings, parse_duration

pytestmark = pytest.mark.integration


def message(n: int, *, message_id: str | None = None, body: bytes = b"Hello.\r\n") -> bytes:
    mid = message_id or f"m{n}@client.example"
    return (f"From: Jane <jane@client.example>\r\nTo: office@example.com\r\n"
            f"Subject: message {n}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\n").encode() + body


def settings_for(server: DovecotServer, **overrides: object) -> ImapSettings:
    values: dict[str, object] = dict(host=server.host, port=server.port, security="none",
                                     username=server.user, connect_timeout=5.0, read_timeout=10.0)
    values.update(overrides)
    return ImapSettings(**values)


@pytest.fixture
def connection(dovecot: DovecotServer) -> Iterator[ImapConnection]:
    with ImapConnection(settings_for(dovecot), dovecot.password) as conn:
        yield conn


class SilentServer:
    """Accepts connections and never says a word."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.accepted:
            conn.close()


# ------------------------------------------------------------------------------- connecting


def test_connect_and_login_reports_capabilities(connection: ImapConnection) -> None:
    assert connection.connected and connection.tls_version is None
    assert connection.has_idle and connection.has_condstore
    assert connection.select("INBOX").highestmodseq is not None  # CONDSTORE was enabled


def test_wrong_password_names_user_and_host_but_not_the_password(dovecot: DovecotServer) -> None:
    settings = settings_for(dovecot)
    with pytest.raises(ImapAuthError) as raised:
        ImapConnection(settings, "not-the-Secret-42").connect()
    text = str(raised.value)
    assert dovecot.user in text and f"{dovecot.host}:{dovecot.port}" in text
    assert "not-the-Secret-42" not in text


def test_missing_password_is_an_auth_error(dovecot: DovecotServer) -> None:
    with pytest.raises(ImapAuthError, match="no IMAP password"):
        ImapConnection(settings_for(dovecot), None).connect()


def test_plain_imap_is_refused_to_a_remote_host() -> None:
    settings = ImapSettings(host="imap.example.com", port=143, security="none", username="u")
    with pytest.raises(ImapConnectionError, match="loopback"):
        ImapConnection(settings, "pw").connect()


def test_refused_connection_says_so() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    settings = ImapSettings(host="127.0.0.1", port=port, security="none", username="u")
    with pytest.raises(ImapConnectionError, match=rf"127\.0\.0\.1:{port} refused"):
        ImapConnection(settings, "pw").connect()


def test_implicit_tls_with_private_ca(dovecot_tls: DovecotServer, tls_files) -> None:
    settings = settings_for(dovecot_tls, port=dovecot_tls.tls_port, security="tls",
                            ca_file=str(tls_files.ca_file))
    with ImapConnection(settings, dovecot_tls.password) as conn:
        assert conn.tls_version in ("TLSv1.2", "TLSv1.3")
        assert conn.select("INBOX").name == "INBOX"


def test_starttls_with_private_ca(dovecot_tls: DovecotServer, tls_files) -> None:
    settings = settings_for(dovecot_tls, security="starttls", ca_file=str(tls_files.ca_file))
    with ImapConnection(settings, dovecot_tls.password) as conn:
        assert conn.tls_version in ("TLSv1.2", "TLSv1.3")
        assert conn.select("INBOX").exists == 0


def test_tls_certificate_from_an_unknown_ca_is_rejected(dovecot_tls: DovecotServer) -> None:
    settings = settings_for(dovecot_tls, port=dovecot_tls.tls_port, security="tls")
    with pytest.raises(ImapConnectionError, match="certificate") as raised:
        ImapConnection(settings, dovecot_tls.password).connect()
    assert f":{dovecot_tls.tls_port}" in str(raised.value)


def test_starttls_is_required_when_configured(dovecot: DovecotServer) -> None:
    with pytest.raises(ImapConnectionError, match="does not offer STARTTLS"):
        ImapConnection(settings_for(dovecot, security="starttls"), dovecot.password).connect()


@pytest.mark.parametrize("security", ["none", "tls", "starttls"])
def test_connect_timeout_is_enforced_against_a_silent_server(security: str) -> None:
    silent = SilentServer()
    settings = ImapSettings(host="127.0.0.1", port=silent.port, security=security, username="u",
                            connect_timeout=1.0, read_timeout=60.0)
    try:  # the connect timeout, not the 60 s read timeout, is what gave up: the message says which
        with pytest.raises(ImapConnectionError, match=rf"timed out after 1 s .*:{silent.port}"):
            ImapConnection(settings, "pw").connect()
    finally:
        silent.close()


# ------------------------------------------------------------------------------- folders


def test_find_sent_folder(connection: ImapConnection) -> None:
    assert connection.find_sent_folder() == "Sent"


def test_find_sent_folder_absent(dovecot_without_sent: DovecotServer) -> None:
    with ImapConnection(settings_for(dovecot_without_sent), dovecot_without_sent.password) as conn:
        assert conn.find_sent_folder() is None


def test_select_missing_folder_is_a_folder_error(connection: ImapConnection) -> None:
    with pytest.raises(ImapFolderError, match="Nowhere"):
        connection.select("Nowhere")
    assert connection.select("INBOX").name == "INBOX"  # the session is still usable


# ------------------------------------------------------------------------------- reading


def test_new_uids_and_their_headers_read_all_messages(dovecot: DovecotServer,
                                                      connection: ImapConnection) -> None:
    appended = dovecot.append_many("INBOX", [message(n) for n in range(2500)])
    connection.select("INBOX")
    uids = connection.new_uids(0)
    headers = connection.fetch_headers(uids[:1000]) + connection.fetch_headers(uids[1000:])
    assert [h.uid for h in headers] == appended
    parser = email.parser.BytesHeaderParser()
    assert [parser.parsebytes(h.header)["Subject"] for h in headers] == [
        f"message {n}" for n in range(2500)]
    assert all(h.internaldate.tzinfo == UTC and h.size > len(h.header) for h in headers)


def test_uid_search_quirk_never_returns_what_we_already_have(dovecot: DovecotServer,
                                                             connection: ImapConnection) -> None:
    uids = dovecot.append_many("INBOX", [message(n) for n in range(3)])
    connection.select("INBOX")
    assert connection.new_uids(uids[-1]) == []  # "UID 4:*" matches uid 3 on the server
    assert connection.new_uids(uids[-1] + 10) == []
    assert [h.uid for h in connection.fetch_headers(connection.new_uids(uids[0]))] == uids[1:]


def test_since_leaves_out_older_messages(dovecot: DovecotServer, connection: ImapConnection) -> None:
    now = datetime.now(UTC)
    dovecot.append("INBOX", message(1), msg_time=now - timedelta(days=200))
    recent = dovecot.append("INBOX", message(2), msg_time=now - timedelta(days=2))
    connection.select("INBOX")
    assert connection.new_uids(0, since=(now - timedelta(days=90)).date()) == [recent]


def test_header_fields_are_found_whatever_the_spelling(dovecot: DovecotServer,
                                                       connection: ImapConnection) -> None:
    dovecot.append("INBOX", message(1))
    dovecot.append("INBOX", b"X-Other: only this\r\n\r\nno usual headers\r\n")
    connection.select("INBOX")
    first, second = connection.fetch_headers(connection.new_uids(0), ["subject", "MESSAGE-id", "X-None"])
    assert b"Subject: message 1" in first.header and b"Message-ID: <m1@" in first.header
    assert b"From:" not in first.header
    assert second.header.strip() == b""  # none of the fields: an empty header, not a lost message


def test_bad_field_names_are_refused(connection: ImapConnection) -> None:
    connection.select("INBOX")
    with pytest.raises(ValueError, match="Subject\\)"):
        connection.fetch_headers([1], ["Subject)"])


def test_fetch_full(dovecot: DovecotServer, connection: ImapConnection) -> None:
    raw = message(1, body=b"line one\r\nline two\r\n")
    uid = dovecot.append("INBOX", raw)
    connection.select("INBOX")
    assert connection.fetch_full(uid) == raw
    assert connection.fetch_full(uid + 100) is None
    cut = connection.fetch_full(uid, max_bytes=len(raw) - 4)
    assert cut == raw[:raw.rindex(b"line two")]  # cut after the last whole line


def test_fetch_messages_reads_a_batch_in_few_commands(dovecot: DovecotServer, connection: ImapConnection,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    raws = [message(n, body=b"x" * (100 * n) + b"\r\n") for n in range(1, 8)]
    uids = dovecot.append_many("INBOX", raws)
    connection.select("INBOX")
    commands: list[list[int]] = []
    real_fetch = fetchreader.fetch  # the UID FETCH command, its answer read by the narrow reader

    def counting_fetch(client, messages, data, *args, **kwargs):
        commands.append(list(messages))
        return real_fetch(client, messages, data, *args, **kwargs)

    monkeypatch.setattr(fetchreader, "fetch", counting_fetch)
    sizes = {uid: len(raw) for uid, raw in zip(uids, raws)}
    assert connection.fetch_messages([*uids, uids[-1] + 50], sizes=sizes) == dict(zip(uids, raws))
    assert commands == [[*uids, uids[-1] + 50]]  # one command for the whole batch, a gone UID left out
    commands.clear()
    budget = sizes[uids[0]] + sizes[uids[1]] + sizes[uids[2]]
    assert connection.fetch_messages(uids, sizes=sizes, budget=budget) == dict(zip(uids, raws))
    assert commands[0] == uids[:3] and len(commands) > 2  # large mail splits into several commands
    assert [uid for command in commands for uid in command] == uids
    commands.clear()
    assert connection.fetch_messages(uids[:2]) == dict(zip(uids[:2], raws[:2]))
    assert commands == [[uids[0]], [uids[1]]]  # unknown sizes count as the largest message


def test_message_groups_respect_the_budget() -> None:
    groups = list(_groups_within([1, 2, 3, 4, 5], {1: 40, 2: 40, 3: 90, 4: 500, 5: 10}, max_bytes=100, budget=100))
    assert groups == [[1, 2], [3], [4], [5]]  # uid 4 counts as max_bytes; no group is empty
    assert list(_groups_within([], {}, max_bytes=10, budget=10)) == []


def test_search_message_id(dovecot: DovecotServer, connection: ImapConnection) -> None:
    wanted = dovecot.append("Sent", message(1, message_id="release-7@parting.example"))
    dovecot.append("Sent", message(2, message_id="xrelease-7@parting.example.org"))
    assert connection.search_message_id("Sent", "<release-7@parting.example>") == [wanted]
    assert connection.search_message_id("Sent", "release-7@parting.example") == [wanted]
    # the bare id is a substring of the other message's id: the confirmation drops that hit
    assert connection.search_message_id("Sent", "release-7@parting.example.o") == []
    assert connection.search_message_id("Sent", "nothing@parting.example") == []
    with pytest.raises(ValueError):
        connection.search_message_id("Sent", "two words@x")


def test_append(dovecot: DovecotServer, connection: ImapConnection) -> None:
    connection.append("Sent", message(1))
    [uid] = dovecot.uids("Sent")
    with dovecot.client("Sent") as imap:
        assert b"\\Seen" in imap.get_flags([uid])[uid]
    assert dovecot.fetch_all("Sent") == [message(1)]
    with pytest.raises(ImapFolderError):
        connection.append("Nowhere", message(2))


# ------------------------------------------------------------------------------- waiting


def test_idle_wait_sees_an_append_from_another_connection(dovecot: DovecotServer,
                                                          connection: ImapConnection) -> None:
    connection.select("INBOX")
    threading.Timer(0.5, dovecot.append, ("INBOX", message(1))).start()
    assert connection.idle_wait(30).changed


def test_idle_wait_reports_mail_that_came_before_idle(dovecot: DovecotServer,
                                                      connection: ImapConnection) -> None:
    connection.select("INBOX")
    dovecot.append("INBOX", message(1))  # between our commands: Dovecot would keep it for DONE
    assert connection.idle_wait(30).changed


def test_quiet_idle_wait_returns_unchanged_and_stays_usable(connection: ImapConnection) -> None:
    connection.select("INBOX")
    assert not connection.idle_wait(0.5).changed
    assert not connection.idle_wait(0.5).changed
    assert connection.select("INBOX").exists == 0


def test_idle_is_renewed_within_idle_renew(dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    idle_check = imapclient.IMAPClient.idle_check

    def spy(self, timeout=None):
        waits.append(timeout)
        return idle_check(self, timeout=timeout)

    monkeypatch.setattr(imapclient.IMAPClient, "idle_check", spy)
    settings = settings_for(dovecot, idle_renew=parse_duration("1 second"))
    with ImapConnection(settings, dovecot.password) as conn:
        conn.select("INBOX")
        assert not conn.idle_wait(600).changed
    assert waits and all(0 < wait <= 1.0 for wait in waits), f"asked the server to wait {waits} s"


def test_dead_connection_is_detected_during_idle(dovecot: DovecotServer,
                                                 connection: ImapConnection) -> None:
    connection.select("INBOX")
    threading.Timer(0.5, dovecot.stop).start()
    with pytest.raises(ImapConnectionLost, match=f":{dovecot.port}"):
        connection.idle_wait(120)
    assert not connection.connected
    connection.close()  # tolerant of the dead connection


def test_commands_on_a_dead_connection_raise_connection_lost(dovecot: DovecotServer,
                                                             connection: ImapConnection) -> None:
    connection.select("INBOX")
    dovecot.stop()
    with pytest.raises(ImapConnectionLost):
        connection.select("INBOX")
    connection.close()  # tolerant of the dead connection, and says so
    assert not connection.connected


class ScriptedServer:
    """A minimal IMAP server for what Dovecot will not do on demand: it logs anyone in, has one
    empty folder, and answers IDLE and NOOP with the bytes the test gives, in separate packets."""

    def __init__(self, *, capabilities: bytes, idle: list[bytes] = (), noop: bytes = b"") -> None:
        self.capabilities, self.idle, self.noop = capabilities, list(idle), noop
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def settings(self) -> ImapSettings:
        return ImapSettings(host="127.0.0.1", port=self.port, security="none", username="u",
                            connect_timeout=5.0, read_timeout=5.0)

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        caps = b"[CAPABILITY " + self.capabilities + b"]"
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"* OK " + caps + b" ready\r\n")
            idle_tag = b""
            for line in lines:
                tag, command = [*line.split(), b""][:2]
                command = command.upper()
                if tag.upper() == b"DONE":
                    conn.sendall(idle_tag + b" OK idle done\r\n")
                elif command == b"EXAMINE":
                    conn.sendall(b"* 0 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 1] x\r\n"
                                 + tag + b" OK [READ-ONLY] done\r\n")
                elif command == b"IDLE":
                    idle_tag = tag
                    conn.sendall(b"+ idling\r\n")
                    for part in self.idle:
                        time.sleep(0.3)  # a packet of its own
                        conn.sendall(part)
                elif command == b"NOOP":
                    conn.sendall(self.noop + tag + b" OK done\r\n")
                else:  # LOGIN, CAPABILITY, LOGOUT
                    conn.sendall(b"* CAPABILITY " + self.capabilities + b"\r\n"
                                 + tag + b" OK " + caps + b" done\r\n")

    def close(self) -> None:
        self.listener.close()


def test_a_line_split_across_packets_during_idle_is_never_a_hang_or_a_stray_error() -> None:
    """imapclient#519: idle_check reads without blocking, so a response line that arrives in
    two packets may give "unterminated line", after which the stream is out of step. Either the
    change is seen, or the connection counts as lost (and the watcher reconnects)."""
    server = ScriptedServer(capabilities=b"IMAP4rev1 IDLE", idle=[b"* 1 EXI", b"STS\r\n"])
    conn = ImapConnection(server.settings(), "pw")
    conn.connect()
    try:
        assert conn.select("INBOX").uidvalidity == 7
        try:
            assert conn.idle_wait(10).changed
        except ImapConnectionLost as lost:
            assert "unterminated line" in str(lost)
    finally:
        conn.close()
        server.close()


def test_without_idle_the_wait_polls_with_noop() -> None:
    server = ScriptedServer(capabilities=b"IMAP4rev1", noop=b"* 1 EXISTS\r\n")
    with ImapConnection(server.settings(), "pw") as conn:
        assert not conn.has_idle
        conn.select("INBOX")
        assert conn.idle_wait(0.2).changed
    server.close()


# ------------------------------------------------------------------------------- backoff


class HighestDraw(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_grows_exponentially_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(base=1.0, cap=20.0, rng=HighestDraw())
    assert [backoff.next_delay() for _ in range(7)] == [1, 2, 4, 8, 16, 20, 20]
    backoff.reset()
    assert backoff.next_delay() == 1


def test_backoff_jitter_is_full_and_reproducible() -> None:
    draws = [Backoff(base=0.5, cap=30.0, rng=random.Random(7)) for _ in range(2)]
    first = [draws[0].next_delay() for _ in range(40)]
    assert first == [draws[1].next_delay() for _ in range(40)]
    assert all(0 <= delay <= min(30.0, 0.5 * 2 ** n) for n, delay in enumerate(first))
    assert len(set(first)) == len(first)  # jittered, not a fixed ladder
    assert max(first[10:]) > 15  # grows to the cap's range


def test_backoff_survives_many_attempts() -> None:
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(1))
    for _ in range(5000):
        assert 0 <= backoff.next_delay() <= 300.0


@pytest.mark.parametrize("base, cap", [(0, 10), (-1, 10), (5, 1)])
def test_backoff_refuses_nonsense(base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base=base, cap=cap)


# ------------------------------------------------------------------------------- the watcher


class MemoryStore:
    """Stands in for the store: keeps headers by (folder, uidvalidity, uid) and the folder state,
    both updated together as the real store does in one transaction."""

    def __init__(self) -> None:
        self.states: dict[str, FolderState] = {}
        self.headers: dict[tuple[str, int, int], bytes] = {}
        self.deliveries: list[tuple[str, int, int]] = []
        self.uidvalidity_changes: list[tuple[str, int, int]] = []
        self.changed = asyncio.Condition()

    async def on_batch(self, folder, info, headers, read_bodies=None) -> None:
        async with self.changed:
            for header in headers:
                key = (folder, info.uidvalidity, header.uid)
                self.deliveries.append(key)
                self.headers[key] = header.header
            self.states[folder] = FolderState(info.uidvalidity, max(h.uid for h in headers))
            self.changed.notify_all()

    async def get_state(self, folder: str) -> FolderState | None:
        return self.states.get(folder)

    async def on_uidvalidity_change(self, folder: str, old: int, new: int) -> None:
        async with self.changed:
            self.uidvalidity_changes.append((folder, old, new))
            self.headers = {k: v for k, v in self.headers.items() if k[:2] != (folder, old)}
            self.states[folder] = FolderState(new, 0)
            self.changed.notify_all()

    async def wait_for(self, predicate, timeout: float) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), timeout)

    def uids(self, folder: str) -> list[int]:
        return [uid for (name, _, uid) in self.deliveries if name == folder]


class GatedSleep:
    """The watcher's backoff sleep, held until the test opens the gate."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.sleeping = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.sleeping.set()
        await self.gate.wait()


def watcher_for(settings: ImapSettings, password: str | None, store: MemoryStore,
                stop: asyncio.Event, role: str = "inbox", **options) -> FolderWatcher:
    options.setdefault("idle_round", 5.0)
    options.setdefault("backoff", Backoff(base=0.05, cap=0.5, rng=random.Random(3)))
    return FolderWatcher(settings, password, role, on_batch=store.on_batch,
                         get_state=store.get_state,
                         on_uidvalidity_change=store.on_uidvalidity_change, stop=stop,
                         **options)


async def stop_watching(stop: asyncio.Event, task: asyncio.Task) -> None:
    stop.set()
    await asyncio.wait_for(task, timeout=15)


async def test_watcher_backfills_follows_idle_and_survives_a_restart(dovecot: DovecotServer) -> None:
    first = await asyncio.to_thread(dovecot.append_many, "INBOX", [message(n) for n in range(3)])
    store, stop, sleep, progress = MemoryStore(), asyncio.Event(), GatedSleep(), []
    watcher = watcher_for(settings_for(dovecot), dovecot.password, store, stop, sleep=sleep,
                          on_progress=lambda *args: progress.append(args))
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.wait_for(watcher.connected.wait(), 10)
        await store.wait_for(lambda: len(store.deliveries) == 3, 10)
        assert store.uids("INBOX") == first

        await asyncio.sleep(0.5)  # let the watcher settle into IDLE
        during_idle = await asyncio.to_thread(dovecot.append, "INBOX", message(3))
        await store.wait_for(lambda: len(store.deliveries) == 4, 2)
        assert store.uids("INBOX")[-1] == during_idle

        await asyncio.to_thread(dovecot.stop)
        await asyncio.wait_for(sleep.sleeping.wait(), 10)  # it noticed and is backing off
        await asyncio.to_thread(dovecot.start)
        meanwhile = await asyncio.to_thread(
            dovecot.append_many, "INBOX", [message(n) for n in (4, 5)])
        sleep.gate.set()
        await store.wait_for(lambda: len(store.deliveries) >= 6, 15)
        await asyncio.sleep(1)  # time enough to see a duplicate, if one were coming
        assert store.uids("INBOX") == [*first, during_idle, *meanwhile]  # each once, in order
        # progress is drawn for the backfill of each connection, not for each new message
        assert progress == [("INBOX", 0, 3), ("INBOX", 3, 3), ("INBOX", 0, 2), ("INBOX", 2, 2)]
    finally:
        await stop_watching(stop, task)


async def test_watcher_stops_promptly_while_idling(dovecot: DovecotServer) -> None:
    store, stop = MemoryStore(), asyncio.Event()
    watcher = watcher_for(settings_for(dovecot), dovecot.password, store, stop, idle_round=3.0)
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.connected.wait(), 10)
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.wait_for(task, timeout=3.0 + 5)


async def test_cancelling_the_watcher_ends_it_at_once(dovecot: DovecotServer) -> None:
    watcher = watcher_for(settings_for(dovecot), dovecot.password, MemoryStore(),
                          asyncio.Event(), idle_round=60.0)
    task = asyncio.create_task(watcher.run())
    await asyncio.wait_for(watcher.connected.wait(), 10)
    await asyncio.sleep(0.5)  # in IDLE now, for a minute
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=2)


async def test_watcher_handles_a_uidvalidity_change(dovecot: DovecotServer) -> None:
    await asyncio.to_thread(dovecot.create_folder, "Work")
    await asyncio.to_thread(dovecot.append_many, "Work", [message(n) for n in range(2)])
    store, stop = MemoryStore(), asyncio.Event()
    settings = settings_for(dovecot, inbox="Work", idle_renew=parse_duration("2 seconds"))
    watcher = watcher_for(settings, dovecot.password, store, stop, idle_round=1.0)
    task = asyncio.create_task(watcher.run())
    try:
        await store.wait_for(lambda: len(store.deliveries) == 2, 10)
        old = store.states["Work"].uidvalidity
        await asyncio.sleep(1.1)  # Dovecot's UIDVALIDITY is a timestamp: make the new one differ
        await asyncio.to_thread(dovecot.delete_folder, "Work")
        await asyncio.to_thread(dovecot.create_folder, "Work")
        [uid] = await asyncio.to_thread(dovecot.append_many, "Work", [message(9)])
        await store.wait_for(lambda: len(store.deliveries) == 3, 15)
        new = store.states["Work"].uidvalidity
        assert new != old
        assert store.uidvalidity_changes == [("Work", old, new)]
        assert store.deliveries[-1] == ("Work", new, uid)  # read again from the start
        assert [k for k in store.headers if k[1] == old] == []
    finally:
        await stop_watching(stop, task)


async def test_watcher_reports_progress_and_respects_lookback(dovecot: DovecotServer) -> None:
    now = datetime.now(UTC)
    await asyncio.to_thread(dovecot.append, "INBOX", message(0), msg_time=now - timedelta(days=40))
    recent = await asyncio.to_thread(dovecot.append_many, "INBOX", [message(n) for n in range(25)])
    store, progress = MemoryStore(), []
    watcher = watcher_for(settings_for(dovecot), dovecot.password, store, asyncio.Event(),
                          lookback_days=30, batch=10,
                          on_progress=lambda *args: progress.append(args))
    assert await watcher.run_once() == 25
    assert store.uids("INBOX") == recent
    assert progress == [("INBOX", 0, 25), ("INBOX", 10, 25), ("INBOX", 20, 25), ("INBOX", 25, 25)]
    assert watcher.connected.is_set()
    assert await watcher.run_once() == 0  # the store's state is where it resumes


async def test_watcher_for_sent_finds_the_special_use_folder(dovecot: DovecotServer) -> None:
    uid = await asyncio.to_thread(dovecot.append, "Sent", message(1))
    store = MemoryStore()
    watcher = watcher_for(settings_for(dovecot), dovecot.password, store, asyncio.Event(),
                          role="sent")
    assert await watcher.run_once() == 1
    assert watcher.folder == "Sent" and store.uids("Sent") == [uid]


async def test_watcher_for_sent_without_a_sent_folder(dovecot_without_sent: DovecotServer) -> None:
    watcher = watcher_for(settings_for(dovecot_without_sent), dovecot_without_sent.password,
                          MemoryStore(), asyncio.Event(), role="sent")
    with pytest.raises(ImapFolderError, match="Sent"):
        await watcher.run_once()


async def test_watcher_waits_the_full_cap_after_a_refused_login(
        dovecot: DovecotServer, caplog: pytest.LogCaptureFixture) -> None:
    stop, sleep = asyncio.Event(), GatedSleep()
    watcher = watcher_for(settings_for(dovecot), "Wrong-Secret-1", MemoryStore(), stop,
                          backoff=Backoff(base=1.0, cap=123.0), sleep=sleep,
                          log=logging.getLogger("test.watcher"))
    with caplog.at_level(logging.ERROR, logger="test.watcher"):
        task = asyncio.create_task(watcher.run())
        await asyncio.wait_for(sleep.sleeping.wait(), 10)
        await stop_watching(stop, task)  # the stop interrupts the sleep
    assert sleep.delays == [123.0]
    assert not watcher.connected.is_set()
    assert dovecot.user in caplog.text and "Wrong-Secret-1" not in caplog.text


async def test_a_failing_store_loses_nothing_and_duplicates_nothing(
        dovecot: DovecotServer) -> None:
    uids = await asyncio.to_thread(dovecot.append_many, "INBOX", [message(n) for n in range(5)])
    store, stop = MemoryStore(), asyncio.Event()
    calls = []

    async def flaky_on_batch(folder, info, headers, read_bodies) -> None:
        calls.append([h.uid for h in headers])
        if len(calls) == 2:  # the second batch fails after the first was committed
            raise RuntimeError("database is locked")
        await store.on_batch(folder, info, headers)

    watcher = FolderWatcher(settings_for(dovecot), dovecot.password, "inbox",
                            on_batch=flaky_on_batch, get_state=store.get_state,
                            on_uidvalidity_change=store.on_uidvalidity_change, stop=stop,
                            batch=2, idle_round=1.0, backoff=Backoff(base=0.05, cap=0.2))
    task = asyncio.create_task(watcher.run())
    try:
        await store.wait_for(lambda: len(store.deliveries) == 5, 10)
        assert store.uids("INBOX") == uids
        assert calls == [uids[0:2], uids[2:4], uids[2:4], uids[4:5]]  # resumed where it stood
    finally:
        await stop_watching(stop, task)


# ------------------------------------------------------------------------------- one-off helpers


async def test_one_off_helpers(dovecot: DovecotServer) -> None:
    settings = settings_for(dovecot)
    raw = message(1, message_id="release-1@parting.example")
    await append_message(settings, dovecot.password, "auto", raw)
    assert await find_in_folder(settings, dovecot.password, "auto", "release-1@parting.example")
    assert not await find_in_folder(settings, dovecot.password, "Sent", "other@parting.example")
    with pytest.raises(ImapAuthError):
        await find_in_folder(settings, "wrong", "Sent", "release-1@parting.example")


async def test_watcher_reads_bodies_over_its_own_connection(dovecot: DovecotServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    raws = [message(n, body=f"body {n}\r\n".encode()) for n in range(5)]
    uids = await asyncio.to_thread(dovecot.append_many, "INBOX", raws)
    store, stop = MemoryStore(), asyncio.Event()
    read: dict[int, bytes] = {}
    connects = []
    real_connect = _Connection.connect

    def counting_connect(connection):
        connects.append(connection)
        return real_connect(connection)

    monkeypatch.setattr(_Connection, "connect", counting_connect)

    async def on_batch(folder, info, headers, read_bodies) -> None:
        read.update(await read_bodies([h.uid for h in headers if h.uid % 2 == uids[0] % 2]))
        await store.on_batch(folder, info, headers)

    watcher = FolderWatcher(settings_for(dovecot), dovecot.password, "inbox", on_batch=on_batch,
                            get_state=store.get_state, on_uidvalidity_change=store.on_uidvalidity_change,
                            stop=stop, batch=2)
    assert await watcher.run_once() == 5
    assert read == {uid: raw for uid, raw in zip(uids, raws) if uid % 2 == uids[0] % 2}
    assert len(connects) == 1  # the watcher's own: no connection per batch or per message


async def test_mail_announced_while_a_batch_is_read_is_not_left_for_the_resync(dovecot: DovecotServer) -> None:
    # The server announces the new message (EXISTS) in its answer to the batch's body FETCH; that
    # announcement is not repeated, so the watcher must act on it rather than IDLE until a resync.
    await asyncio.to_thread(dovecot.append, "INBOX", message(1))
    store, stop = MemoryStore(), asyncio.Event()
    arrived_during_batch = []

    async def on_batch(folder, info, headers, read_bodies) -> None:
        if not arrived_during_batch:
            arrived_during_batch.append(await asyncio.to_thread(dovecot.append, "INBOX", message(2)))
            await read_bodies([h.uid for h in headers])
        await store.on_batch(folder, info, headers)

    settings = settings_for(dovecot, idle_renew=parse_duration("10 minutes"))
    watcher = FolderWatcher(settings, dovecot.password, "inbox", on_batch=on_batch, get_state=store.get_state,
                            on_uidvalidity_change=store.on_uidvalidity_change, stop=stop, idle_round=5.0)
    task = asyncio.create_task(watcher.run())
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(store.deliveries) < 2:
            await asyncio.sleep(0.05)
        assert [uid for _, _, uid in store.deliveries][-1:] == arrived_during_batch
    finally:
        await stop_watching(stop, task)


async def test_after_news_the_next_idle_round_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    # A unit test with a scripted connection: which IDLE rounds the watcher asks for. pymap does not
    # announce in IDLE what arrived between our last command and IDLE; a short round after each
    # sync finds it within a second instead of a whole round.
    import daemon.adapters.imap.watcher as mailbox_module
    from daemon.adapters.imap.values import FolderInfo, IdleResult

    stop = asyncio.Event()
    script = [True, False, False, True, True, False]
    rounds: list[float] = []

    class ScriptedConnection:
        def __init__(self, *args, **kwargs) -> None:
            pass

        def connect(self) -> None:
            pass

        def close(self) -> None:
            pass

        def select(self, folder: str) -> FolderInfo:
            return FolderInfo(folder, 1, None, 0, None)

        def new_uids(self, last_uid: int, *, since=None) -> list[int]:
            return []

        def idle_wait(self, timeout: float) -> IdleResult:
            rounds.append(timeout)
            if len(rounds) == len(script):
                stop.set()
            return IdleResult(changed=script[len(rounds) - 1])

    monkeypatch.setattr(mailbox_module, "ImapConnection", ScriptedConnection)
    store = MemoryStore()
    watcher = FolderWatcher(ImapSettings(host="127.0.0.1"), "secret", "inbox", on_batch=store.on_batch,
                            get_state=store.get_state, on_uidvalidity_change=store.on_uidvalidity_change,
                            stop=stop, idle_round=10.0)
    await asyncio.wait_for(watcher.run(), timeout=5)
    assert rounds == [10.0, 1.0, 10.0, 10.0, 1.0, 1.0]


def test_imaplib_formats_no_debug_text_unless_its_logger_wants_it(dovecot, caplog) -> None:
    """imapclient sets imaplib's debug level to 5: every response line would be formatted as a
    debug message (a cost in every backfill) that nobody reads. Off, unless that logger is on."""
    with ImapConnection(settings_for(dovecot), dovecot.password) as conn:
        assert conn._client._imap.debug == 0
        conn.select("INBOX")
    with caplog.at_level(logging.DEBUG, logger="imapclient.imaplib"):
        with ImapConnection(settings_for(dovecot), dovecot.password) as conn:
            assert conn._client._imap.debug == 5
            conn.select("INBOX")
    assert any(record.name == "imapclient.imaplib" for record in caplog.records)
