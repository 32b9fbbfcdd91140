"""The test servers themselves: what the adapter and daemon tests rely on must really hold."""
from __future__ import annotations

import shutil
import socket
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage

import aiosmtplib
import imapclient
import pytest
from imapclient.exceptions import LoginError
from servers import DovecotServer, SmtpSink, TlsFiles, process_group_members, scratch_dir

pytestmark = pytest.mark.integration


def raw_mail(subject: str, message_id: str = "<m1@client.example>") -> bytes:
    return (f"From: Jane Doe <jane@acme.example>\r\nTo: office@example.com\r\n"
            f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n"
            f"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nHello.\r\n").encode()


def outgoing(subject: str = "Release") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "office@example.com"
    message["To"] = "jane@acme.example"
    message["Subject"] = subject
    message.set_content("Dear Jane,\n\nThank you.\n")
    return message


@contextmanager
def own_dovecot(**options: object) -> Iterator[DovecotServer]:
    workdir = scratch_dir("parting-dovecot-")
    try:
        with DovecotServer(workdir, **options) as server:  # type: ignore[arg-type]
            yield server
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# -- Dovecot -------------------------------------------------------------------------------


def test_login_offers_the_extensions_the_adapter_uses(dovecot: DovecotServer) -> None:
    with dovecot.client() as imap:
        capabilities = set(imap.capabilities())
    assert {b"IDLE", b"UIDPLUS", b"SPECIAL-USE", b"MULTIAPPEND"} <= capabilities


def test_wrong_password_is_refused(dovecot: DovecotServer) -> None:
    with pytest.raises(LoginError):
        dovecot.client(password="not-the-secret")


def test_append_returns_the_uid_and_headers_can_be_fetched(dovecot: DovecotServer) -> None:
    first = dovecot.append("INBOX", raw_mail("Invoice", "<a@acme.example>"))
    second = dovecot.append("INBOX", raw_mail("Question", "<b@acme.example>"))
    assert second > first
    assert dovecot.uids("INBOX") == [first, second]
    with dovecot.client("INBOX") as imap:
        fetched = imap.fetch([second], ["BODY.PEEK[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"])
    headers = fetched[second][b"BODY[HEADER.FIELDS (SUBJECT MESSAGE-ID)]"]
    assert b"Subject: Question" in headers
    assert b"Message-ID: <b@acme.example>" in headers


def test_append_keeps_flags_and_internal_date(dovecot: DovecotServer) -> None:
    when = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    uid = dovecot.append("INBOX", raw_mail("Seen"), flags=[imapclient.SEEN], msg_time=when)
    with dovecot.client("INBOX") as imap:
        fetched = imap.fetch([uid], ["FLAGS", "INTERNALDATE"])[uid]
    assert imapclient.SEEN in fetched[b"FLAGS"]
    assert fetched[b"INTERNALDATE"].astimezone(UTC) == when


def test_append_many_returns_every_uid_in_order(dovecot: DovecotServer) -> None:
    raws = [raw_mail(f"Number {n}", f"<{n}@acme.example>") for n in range(5)]
    uids = dovecot.append_many("INBOX", raws)
    assert uids == dovecot.uids("INBOX")
    assert len(uids) == 5
    assert dovecot.fetch_all("INBOX") == raws


def test_sent_folder_is_marked_special_use(dovecot: DovecotServer) -> None:
    with dovecot.client() as imap:
        assert imap.find_special_folder(b"\\Sent") == "Sent"


def test_sent_folder_can_be_absent() -> None:
    with own_dovecot(sent_folder=None) as server, server.client() as imap:
        assert imap.find_special_folder(b"\\Sent") is None
        assert [name for _, _, name in imap.list_folders()] == ["INBOX"]


def test_sent_folder_name_is_configurable() -> None:
    with own_dovecot(sent_folder="Sent Items") as server, server.client() as imap:
        assert imap.find_special_folder(b"\\Sent") == "Sent Items"


def test_folders_can_be_created_and_deleted(dovecot: DovecotServer) -> None:
    dovecot.create_folder("Archive/2025")
    uid = dovecot.append("Archive/2025", raw_mail("Old"))
    assert dovecot.uids("Archive/2025") == [uid]
    dovecot.delete_folder("Archive/2025")
    with dovecot.client() as imap:
        assert not imap.folder_exists("Archive/2025")


def test_users_added_while_running_can_log_in(dovecot: DovecotServer) -> None:
    dovecot.add_user("bob@example.com", "bob-secret")
    with dovecot.client(user="bob@example.com", password="bob-secret") as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0


def test_idle_reports_a_message_appended_from_another_connection(
        dovecot: DovecotServer) -> None:
    seen: list[object] = []
    with dovecot.client("INBOX") as watcher:
        watcher.idle()
        dovecot.append("INBOX", raw_mail("Arrives during IDLE"))
        deadline = time.monotonic() + 3
        while (1, b"EXISTS") not in seen and time.monotonic() < deadline:
            seen += watcher.idle_check(timeout=max(0.1, deadline - time.monotonic()))
        watcher.idle_done()
    assert (1, b"EXISTS") in seen


def test_restart_keeps_the_port_and_the_mail(dovecot: DovecotServer) -> None:
    uid = dovecot.append("INBOX", raw_mail("Survives"))
    port, old_pid = dovecot.port, dovecot.pid
    dovecot.restart()
    assert (dovecot.port, dovecot.uids("INBOX")) == (port, [uid])
    assert dovecot.pid != old_pid


def test_stop_leaves_no_dovecot_process(dovecot: DovecotServer) -> None:
    dovecot.append("INBOX", raw_mail("Spawns an imap process"))
    group = dovecot.pid
    assert group is not None
    dovecot.stop()
    assert process_group_members(group) == []
    with pytest.raises(RuntimeError, match="not running"):
        dovecot.client()


def test_restart_on_a_taken_port_fails_clearly(dovecot: DovecotServer) -> None:
    uid = dovecot.append("INBOX", raw_mail("Waits for the port"))
    dovecot.stop()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((dovecot.host, dovecot.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match="Address already in use"):
            dovecot.start()
    dovecot.start()
    assert dovecot.uids("INBOX") == [uid]


def test_start_failure_quotes_dovecot(tmp_path_factory: pytest.TempPathFactory) -> None:
    broken = TlsFiles.create(tmp_path_factory.mktemp("broken-tls"))
    broken.key_file.unlink()
    workdir = scratch_dir("parting-dovecot-")
    server = DovecotServer(workdir, tls=broken)
    try:
        with pytest.raises(RuntimeError, match="Dovecot did not start") as failed:
            server.start()
        assert str(broken.key_file) in str(failed.value)
        assert server.pid is None
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_tls_login_trusts_only_the_test_ca(dovecot_tls: DovecotServer) -> None:
    with dovecot_tls.client(tls=True) as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
    with pytest.raises(ssl.SSLCertVerificationError):
        imapclient.IMAPClient(dovecot_tls.host, dovecot_tls.tls_port, ssl=True, timeout=5,
                              ssl_context=ssl.create_default_context())


def test_starttls_on_the_plain_port(dovecot_tls: DovecotServer,
                                    tls_files: TlsFiles) -> None:
    imap = imapclient.IMAPClient(dovecot_tls.host, dovecot_tls.port, ssl=False, timeout=5)
    try:
        assert b"STARTTLS" in imap.capabilities()
        imap.starttls(tls_files.client_context())
        imap.login(dovecot_tls.user, dovecot_tls.password)
        assert imap.find_special_folder(b"\\Sent") == "Sent"
    finally:
        imap.logout()


# -- SMTP sink -----------------------------------------------------------------------------


async def test_sink_records_what_it_accepts(smtp_sink: SmtpSink) -> None:
    await aiosmtplib.send(outgoing("Hello"), hostname=smtp_sink.host, port=smtp_sink.port)
    [received] = smtp_sink.wait_for(1)
    assert received.mail_from == "office@example.com"
    assert received.rcpt_tos == ["jane@acme.example"]
    assert received.message["Subject"] == "Hello"
    assert b"Dear Jane," in received.data
    assert (received.login, received.tls) == (None, False)
    assert received.received_at.tzinfo is not None


def test_wait_for_gives_up_when_nothing_arrives(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="got 0"):
        smtp_sink.wait_for(1, timeout=0.2)


async def test_auth_accepts_the_right_password_only() -> None:
    with SmtpSink(users={"office": "smtp-secret"}) as sink:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port,
                                  username="office", password="wrong")
        with pytest.raises(aiosmtplib.SMTPResponseException) as anonymous:
            await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port)
        assert anonymous.value.code == 530
        await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port,
                              username="office", password="smtp-secret")
        [received] = sink.wait_for(1)
        assert received.login == "office"


async def test_starttls_with_the_test_ca(tls_files: TlsFiles) -> None:
    with SmtpSink(tls=tls_files, users={"office": "smtp-secret"}) as sink:
        await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port, start_tls=True,
                              tls_context=tls_files.client_context(),
                              username="office", password="smtp-secret")
        [received] = sink.wait_for(1)
    assert (received.tls, received.login) == (True, "office")


async def test_implicit_tls_with_the_test_ca(tls_files: TlsFiles) -> None:
    with SmtpSink(tls=tls_files, implicit_tls=True) as sink:
        await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port, use_tls=True,
                              tls_context=tls_files.client_context())
        [received] = sink.wait_for(1)
        assert received.tls
        with pytest.raises(aiosmtplib.SMTPConnectError):
            await aiosmtplib.send(outgoing(), hostname=sink.host, port=sink.port,
                                  use_tls=True, timeout=5)  # system CAs: not trusted


@pytest.mark.parametrize("reply", ["421 4.3.2 Service shutting down",
                                   "451 4.3.0 Try again later",
                                   "550 5.1.1 No such user"])
async def test_reply_with_refuses_the_next_message_only(smtp_sink: SmtpSink, reply: str) -> None:
    smtp_sink.reply_with(reply)
    with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
        await aiosmtplib.send(outgoing("Refused"), hostname=smtp_sink.host, port=smtp_sink.port)
    assert refused.value.code == int(reply[:3])
    assert smtp_sink.messages == []
    await aiosmtplib.send(outgoing("Accepted"), hostname=smtp_sink.host, port=smtp_sink.port)
    assert [m.message["Subject"] for m in smtp_sink.wait_for(1)] == ["Accepted"]


async def test_faults_apply_times_then_reset(smtp_sink: SmtpSink) -> None:
    smtp_sink.reply_with("451 4.3.0 Try again later", times=2)
    for _ in range(2):
        with pytest.raises(aiosmtplib.SMTPResponseException):
            await aiosmtplib.send(outgoing(), hostname=smtp_sink.host, port=smtp_sink.port)
    smtp_sink.reply_with("451 4.3.0 Try again later", times=3)
    smtp_sink.reset_faults()
    await aiosmtplib.send(outgoing(), hostname=smtp_sink.host, port=smtp_sink.port)
    assert len(smtp_sink.wait_for(1)) == 1


async def test_drop_after_data_records_the_message_but_never_answers(
        smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_after_data()
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await aiosmtplib.send(outgoing("Arrived, unacknowledged"),
                              hostname=smtp_sink.host, port=smtp_sink.port, timeout=10)
    assert [m.message["Subject"] for m in smtp_sink.messages] == ["Arrived, unacknowledged"]


async def test_stall_makes_the_client_time_out_and_records_nothing(
        smtp_sink: SmtpSink) -> None:
    smtp_sink.stall(30)
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await aiosmtplib.send(outgoing(), hostname=smtp_sink.host, port=smtp_sink.port,
                              timeout=1)
    assert smtp_sink.messages == []


def test_reply_with_rejects_what_is_not_an_smtp_reply(smtp_sink: SmtpSink) -> None:
    with pytest.raises(ValueError):
        smtp_sink.reply_with("250 OK\r\n250 injected")
