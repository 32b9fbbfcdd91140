"""The SMTP adapter against the real aiosmtpd sink on loopback: outcomes classified by phase."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servers import SmtpSink, TlsFiles

from daemon.adapters.smtp import (
    PermanentFailure,
    SendResult,
    TemporaryFailure,
    UncertainDelivery,
    check_login,
    send_message,
    write_eml,
)
from daemon.core.model import SmtpSettings
from daemon.core.outgoing import build_message, make_message_id

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

SENDER = "office@example.com"
CLIENT = "jane@acme.example"
MESSAGE_ID = make_message_id("release", "draft:17:v2", "example.com")
RAW = build_message(
    from_addr=SENDER, from_name="Alice Smith", to=[("Jane Doe", CLIENT)],
    subject="Our work together", body="Dear Jane,\n.\n.leading dot stays\nThank you.\n",
    message_id=MESSAGE_ID, date=datetime(2026, 3, 3, 10, 0, tzinfo=UTC), auto_submitted=False,
    kind="release",
)


def settings_for(sink: SmtpSink, **overrides) -> SmtpSettings:
    fields = dict(host=sink.host, port=sink.port, security="none", connect_timeout=5.0,
                  data_timeout=10.0)
    fields.update(overrides)
    return SmtpSettings(**fields)


async def send(sink: SmtpSink, *, recipients=(CLIENT,), password: str | None = None,
               command_timeout: float = 10.0, **overrides) -> SendResult:
    return await send_message(RAW, sender=SENDER, recipients=list(recipients),
                              settings=settings_for(sink, **overrides), password=password,
                              command_timeout=command_timeout)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_plain_send_arrives_once_and_exact(smtp_sink: SmtpSink) -> None:
    result = await send(smtp_sink)
    assert result.code == 250
    [mail] = await asyncio.to_thread(smtp_sink.wait_for, 1)
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == [CLIENT]
    assert mail.message["Message-ID"] == MESSAGE_ID
    # Dot-stuffing is undone by the server: the body arrives byte for byte.
    assert mail.data.replace(b"\r\n", b"\n") == RAW.replace(b"\r\n", b"\n")
    assert len(smtp_sink.messages) == 1


async def test_each_message_uses_its_own_connection(smtp_sink: SmtpSink) -> None:
    await send(smtp_sink)
    await send(smtp_sink)
    assert len(await asyncio.to_thread(smtp_sink.wait_for, 2)) == 2


@pytest.mark.parametrize("reply", ["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"])
async def test_4xx_after_data_is_temporary(smtp_sink: SmtpSink, reply: str) -> None:
    smtp_sink.reply_with(reply)
    with pytest.raises(TemporaryFailure) as caught:
        await send(smtp_sink)
    assert caught.value.code == int(reply[:3])
    assert reply[4:] in caught.value.reason
    assert smtp_sink.messages == []


async def test_5xx_after_data_is_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.reply_with("550 5.7.1 Message rejected")
    with pytest.raises(PermanentFailure) as caught:
        await send(smtp_sink)
    assert caught.value.code == 550
    assert "Message rejected" in caught.value.reason


async def test_dropped_connection_after_the_final_dot_is_uncertain(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_after_data()
    with pytest.raises(UncertainDelivery) as caught:
        await send(smtp_sink)
    assert "may have been delivered" in caught.value.reason
    # The server did take the message: retrying would have sent it twice.
    assert len(smtp_sink.messages) == 1


async def test_silence_after_the_final_dot_is_uncertain_within_data_timeout(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.stall(30)
    with pytest.raises(UncertainDelivery, match="no reply within 1 s"):  # the 1 s data timeout, not the 30 s stall
        await send(smtp_sink, data_timeout=1.0)


async def test_the_final_dot_waits_for_data_timeout_not_the_command_timeout(
    smtp_sink: SmtpSink,
) -> None:
    smtp_sink.stall(2)  # then the sink answers 451
    with pytest.raises(TemporaryFailure) as caught:
        await send(smtp_sink, command_timeout=0.5, data_timeout=20.0)
    assert caught.value.code == 451


async def test_connection_refused_is_temporary() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=closed_port(), security="none",
                            connect_timeout=5.0)
    with pytest.raises(TemporaryFailure, match="connect"):
        await send_message(RAW, sender=SENDER, recipients=[CLIENT], settings=settings,
                           password=None)


async def test_clear_text_is_refused_for_a_remote_host() -> None:
    settings = SmtpSettings(host="smtp.example.com", security="none")
    with pytest.raises(PermanentFailure, match="loopback"):
        await send_message(RAW, sender=SENDER, recipients=[CLIENT], settings=settings,
                           password=None)


class RecipientCheckingSink(SmtpSink):
    """The sink, refusing some recipients the way a real server does at RCPT time."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if address.startswith("gone@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.mark.parametrize("refused,failure,code", [
    ("gone@acme.example", PermanentFailure, 550),
    ("busy@acme.example", TemporaryFailure, 450),
])
async def test_one_refused_recipient_stops_the_whole_message(
    refused: str, failure: type, code: int,
) -> None:
    with RecipientCheckingSink() as sink:
        with pytest.raises(failure) as caught:
            await send(sink, recipients=[CLIENT, refused])
        assert caught.value.code == code
        assert refused in caught.value.reason
        # The connection is still usable afterwards (RSET, QUIT): the next message goes through.
        await send(sink)
        assert [m.rcpt_tos for m in await asyncio.to_thread(sink.wait_for, 1)] == [[CLIENT]]


async def test_malformed_envelope_addresses_fail_before_connecting() -> None:
    settings = SmtpSettings(host="127.0.0.1", port=closed_port(), security="none")
    with pytest.raises(PermanentFailure, match="recipient"):
        await send_message(RAW, sender=SENDER, recipients=["jane@acme.example>\r\nRSET"],
                           settings=settings, password=None)


async def test_starttls_with_the_private_ca_sends_encrypted(tls_files: TlsFiles) -> None:
    with SmtpSink(tls=tls_files) as sink:
        await send(sink, security="starttls", ca_file=str(tls_files.ca_file))
        [mail] = await asyncio.to_thread(sink.wait_for, 1)
    assert mail.tls


async def test_implicit_tls_sends_encrypted(tls_files: TlsFiles) -> None:
    with SmtpSink(tls=tls_files, implicit_tls=True) as sink:
        await send(sink, security="tls", ca_file=str(tls_files.ca_file))
        [mail] = await asyncio.to_thread(sink.wait_for, 1)
    assert mail.tls


@pytest.mark.parametrize("security,implicit", [("starttls", False), ("tls", True)])
async def test_untrusted_certificate_fails_with_a_clear_reason(
    tls_files: TlsFiles, security: str, implicit: bool,
) -> None:
    with SmtpSink(tls=tls_files, implicit_tls=implicit) as sink:
        with pytest.raises(TemporaryFailure, match="certificate was not accepted.*ca_file"):
            await send(sink, security=security)  # no ca_file: the throwaway CA is unknown
        assert sink.messages == []


async def test_starttls_not_offered_is_refused(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TemporaryFailure, match="did not offer STARTTLS"):
        await send(smtp_sink, security="starttls")
    assert smtp_sink.messages == []


async def test_login_then_send(tls_files: TlsFiles) -> None:
    with SmtpSink(users={SENDER: "right horse"}, tls=tls_files) as sink:
        await send(sink, security="starttls", ca_file=str(tls_files.ca_file), username=SENDER,
                   password="right horse")
        [mail] = await asyncio.to_thread(sink.wait_for, 1)
    assert mail.login == SENDER


async def test_check_login_accepts_the_right_password(tls_files: TlsFiles) -> None:
    with SmtpSink(users={SENDER: "right horse"}, tls=tls_files) as sink:
        await check_login(settings_for(sink, security="starttls", ca_file=str(tls_files.ca_file),
                                       username=SENDER), "right horse")
        assert sink.messages == []


async def test_check_login_explains_a_wrong_password(tls_files: TlsFiles) -> None:
    with SmtpSink(users={SENDER: "right horse"}, tls=tls_files) as sink:
        settings = settings_for(sink, security="starttls", ca_file=str(tls_files.ca_file),
                                username=SENDER, password_file="/run/credentials/smtp")
        with pytest.raises(PermanentFailure) as caught:
            await check_login(settings, "battery staple")
    assert caught.value.code == 535
    assert caught.value.reason.startswith(f"SMTP login as {SENDER} failed (535")
    assert caught.value.reason.endswith("check the password file")
    assert "battery staple" not in caught.value.reason


async def test_send_refuses_a_login_without_password(tls_files: TlsFiles) -> None:
    with SmtpSink(users={SENDER: "right horse"}, tls=tls_files) as sink:
        with pytest.raises(PermanentFailure, match="needs a password"):
            await send(sink, security="starttls", ca_file=str(tls_files.ca_file),
                       username=SENDER, password=None)


def test_write_eml_is_named_after_the_message_id(tmp_path: Path) -> None:
    path = write_eml(RAW, tmp_path / "outbox", MESSAGE_ID)
    assert path.parent == tmp_path / "outbox"
    assert path.name == MESSAGE_ID.strip("<>") + ".eml"
    assert path.read_bytes() == RAW
    again = write_eml(RAW, tmp_path / "outbox", MESSAGE_ID)
    assert again == path
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_write_eml_file_names_use_safe_characters_only(tmp_path: Path) -> None:
    path = write_eml(b"x", tmp_path, "<../../etc/passwd\x00 x@host>")
    assert path.parent == tmp_path
    assert set(path.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-")
