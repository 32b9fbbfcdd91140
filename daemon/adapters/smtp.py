"""Sending one message over SMTP with aiosmtplib: one message, one connection, bounded waits.

The conversation is driven command by command so the outcome can be classified by phase:
- before the content was written (connect, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA's 354):
  a 4xx reply or a network/TLS problem is a TemporaryFailure, a 5xx reply a PermanentFailure;
- once the 354 came and the content write began, a lost connection, a timeout or an unreadable
  reply is an UncertainDelivery: the server may hold the message, so it is never retried
  automatically (a duplicate release email is worse than a late one).
A fresh connection per message avoids reused connections that hang (cole/aiosmtplib#243).
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPException,
    SMTPRecipientRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)

from daemon.adapters.files import write_atomically
from daemon.adapters.oauth import Login, OAuthCredential
from daemon.adapters.oauth_smtp import oauth_login
from daemon.adapters.smtp_outcomes import (
    DeliveryProblem,
    PermanentFailure,
    SendResult,
    TemporaryFailure,
    UncertainDelivery,
)
from daemon.adapters.smtp_outcomes import endpoint as _endpoint
from daemon.core.hosts import is_loopback
from daemon.core.model import SmtpSettings
from daemon.core.outgoing import InvalidAddress, check_address

__all__ = [
    "COMMAND_TIMEOUT",
    "DeliveryProblem",
    "PermanentFailure",
    "SendResult",
    "TemporaryFailure",
    "UncertainDelivery",
    "check_login",
    "eml_filename",
    "send_message",
    "write_eml",
]

# RFC 5321 4.5.3.2 allows 5 minutes for most replies; a minute is plenty for a live server and
# keeps a hung one from holding the outbox. The final "." waits settings.data_timeout instead.
COMMAND_TIMEOUT = 60.0
# QUIT is a courtesy: the message's fate is already known when it is sent.
QUIT_TIMEOUT = 10.0

_LINE_ENDS = re.compile(rb"\r\n|\n|\r(?!\n)")
_LEADING_DOT = re.compile(rb"(?m)^\.")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._@+-]")


def _by_code(code: int, reason: str) -> DeliveryProblem:
    if 500 <= code < 600:
        return PermanentFailure(code, reason)
    return TemporaryFailure(reason, code)


def _tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise PermanentFailure(
            None, f"SMTP ca_file {settings.ca_file} cannot be used as a certificate authority: {exc}"
        ) from exc


def _cause_chain(exc: BaseException) -> list[BaseException]:
    chain, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def _classify(exc: BaseException, settings: SmtpSettings, phase: str) -> DeliveryProblem:
    """A failure before any of the content was written: nothing was delivered."""
    where = f"SMTP {_endpoint(settings)} during {phase}"
    for link in _cause_chain(exc):
        if isinstance(link, ssl.SSLCertVerificationError):
            return TemporaryFailure(
                f"{where}: the server's TLS certificate was not accepted ({link.verify_message}); "
                "if the server uses a private certificate authority, set smtp.ca_file"
            )
        if isinstance(link, ssl.SSLError):
            return TemporaryFailure(f"{where}: TLS failed ({link.reason or link})")
    if isinstance(exc, SMTPResponseException) and exc.code > 0:
        return _by_code(exc.code, f"{where}: the server replied {exc.code} {exc.message}")
    if isinstance(exc, (SMTPTimeoutError, asyncio.TimeoutError, TimeoutError)):
        return TemporaryFailure(f"{where}: timed out ({exc})")
    if isinstance(exc, (SMTPServerDisconnected, aiosmtplib.SMTPConnectError, OSError)):
        return TemporaryFailure(f"{where}: connection failed ({exc})")
    return TemporaryFailure(f"{where}: {exc}")


async def _greet(smtp: aiosmtplib.SMTP, command_timeout: float) -> None:
    try:
        await smtp.ehlo(timeout=command_timeout)
    except aiosmtplib.SMTPHeloError:
        await smtp.helo(timeout=command_timeout)


async def _open(
    settings: SmtpSettings, password: Login, command_timeout: float
) -> aiosmtplib.SMTP:
    """Connect, greet, secure and log in; on failure the connection is closed and classified."""
    if settings.security == "none" and not is_loopback(settings.host):
        raise PermanentFailure(
            None,
            f"SMTP security 'none' is allowed only for a loopback host, not {settings.host}: "
            "use tls or starttls",
        )
    if settings.username and password is None:
        raise PermanentFailure(
            None, f"SMTP login as {settings.username} needs a password: set smtp.password_file"
        )
    context = _tls_context(settings) if settings.security != "none" else None
    smtp = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        timeout=command_timeout,
        use_tls=settings.security == "tls",
        start_tls=False,  # done below, so a server that does not offer it is refused
        tls_context=context,
    )
    phase = "connect"
    try:
        await smtp.connect(timeout=settings.connect_timeout)
        phase = "EHLO"
        await _greet(smtp, command_timeout)
        if settings.security == "starttls":
            if not smtp.supports_extension("starttls"):
                raise TemporaryFailure(
                    f"SMTP {_endpoint(settings)} did not offer STARTTLS; refusing to send "
                    "in clear text (a misconfigured server, or someone removing it on the way)"
                )
            phase = "STARTTLS"
            await smtp.starttls(tls_context=context, timeout=command_timeout)
            phase = "EHLO after STARTTLS"
            await _greet(smtp, command_timeout)
        if settings.username:
            phase = "login"
            if isinstance(password, OAuthCredential):
                await oauth_login(smtp, settings, password, command_timeout)
            else:
                await _login(smtp, settings, password or "", command_timeout)
    except DeliveryProblem:
        smtp.close()
        raise
    except (TimeoutError, SMTPException, OSError) as exc:
        smtp.close()
        raise _classify(exc, settings, phase) from exc
    except BaseException:
        smtp.close()
        raise
    return smtp


async def _login(
    smtp: aiosmtplib.SMTP, settings: SmtpSettings, password: str, command_timeout: float
) -> None:
    where_secret = (
        "check the password file" if settings.password_file or not settings.password_env
        else f"check the password in ${settings.password_env}"
    )
    try:
        await smtp.login(settings.username or "", password, timeout=command_timeout)
    except SMTPAuthenticationError as exc:
        reason = f"SMTP login as {settings.username} failed ({exc.code} {exc.message}): {where_secret}"
        raise _by_code(exc.code, reason) from exc
    except SMTPException as exc:
        if isinstance(exc, (SMTPServerDisconnected, SMTPTimeoutError, SMTPResponseException)):
            raise
        raise PermanentFailure(
            None,
            f"SMTP login as {settings.username} is not possible at {_endpoint(settings)} "
            f"({exc}): check smtp.security, or remove smtp.username if no login is needed",
        ) from exc


async def _close(smtp: aiosmtplib.SMTP) -> None:
    try:
        if smtp.is_connected:
            await smtp.quit(timeout=QUIT_TIMEOUT)
    except (TimeoutError, SMTPException, OSError):
        pass  # the outcome is already decided; only the goodbye failed
    finally:
        smtp.close()


async def _abandon_transaction(smtp: aiosmtplib.SMTP, command_timeout: float) -> None:
    try:
        if smtp.is_connected:
            await smtp.rset(timeout=min(command_timeout, QUIT_TIMEOUT))
    except (TimeoutError, SMTPException, OSError):
        smtp.close()


async def _envelope(
    smtp: aiosmtplib.SMTP,
    settings: SmtpSettings,
    sender: str,
    recipients: Sequence[str],
    command_timeout: float,
) -> None:
    """MAIL FROM and RCPT TO for every recipient; all of them must be accepted."""
    phase = "MAIL FROM"
    try:
        await smtp.mail(sender, timeout=command_timeout)
        refused: list[SMTPRecipientRefused] = []
        for recipient in recipients:
            phase = f"RCPT TO {recipient}"
            try:
                await smtp.rcpt(recipient, timeout=command_timeout)
            except SMTPRecipientRefused as exc:
                refused.append(exc)
                if not smtp.is_connected:
                    break
    except (TimeoutError, SMTPException, OSError) as exc:
        await _abandon_transaction(smtp, command_timeout)
        raise _classify(exc, settings, phase) from exc
    if refused:
        await _abandon_transaction(smtp, command_timeout)
        worst = max(refused, key=lambda r: r.code)
        listing = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in refused)
        raise _by_code(
            worst.code, f"SMTP {_endpoint(settings)} refused recipient(s), nothing sent: {listing}"
        )


def _wire_form(raw: bytes) -> bytes:
    """CRLF line ends, dot-stuffing (RFC 5321 4.5.2) and the terminating "." line."""
    body = _LINE_ENDS.sub(b"\r\n", raw)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return _LEADING_DOT.sub(b"..", body) + b".\r\n"


async def _transmit(
    smtp: aiosmtplib.SMTP,
    settings: SmtpSettings,
    raw: bytes,
    command_timeout: float,
) -> SendResult:
    """DATA, then the content, then the wait for the final reply bounded by data_timeout.

    aiosmtplib's `data()` uses one timeout for the 354 and the final reply and does not say
    which of the two failed, so the two halves are done here with the protocol's public
    `write` and `read_response`.
    """
    try:
        start = await smtp.execute_command(b"DATA", timeout=command_timeout)
    except (TimeoutError, SMTPException, OSError) as exc:
        raise _classify(exc, settings, "DATA") from exc
    if start.code != 354:
        await _abandon_transaction(smtp, command_timeout)
        raise _by_code(
            start.code, f"SMTP {_endpoint(settings)} refused DATA: {start.code} {start.message}"
        )
    protocol = smtp.protocol
    wire = _wire_form(raw)
    try:
        if protocol is None:
            raise SMTPServerDisconnected("connection closed after the 354 reply")
        protocol.write(wire)
    except SMTPServerDisconnected as exc:
        smtp.close()
        raise TemporaryFailure(
            f"SMTP {_endpoint(settings)}: the connection closed before the content was sent ({exc})"
        ) from exc
    # From here on the server may have the whole message.
    try:
        reply = await protocol.read_response(timeout=settings.data_timeout)
    except (TimeoutError, SMTPException, OSError) as exc:
        smtp.close()
        what = (
            f"no reply within {settings.data_timeout:g} s"
            if isinstance(exc, (SMTPTimeoutError, asyncio.TimeoutError)) else str(exc)
        )
        raise UncertainDelivery(
            f"SMTP {_endpoint(settings)}: the whole message was sent but the server's answer "
            f"was lost ({what}); it may have been delivered, so it is not sent again "
            "automatically: check the recipient's mailbox or the Sent folder, then decide"
        ) from exc
    except BaseException:
        smtp.close()
        raise
    if 200 <= reply.code < 300:
        return SendResult(reply.code, reply.message)
    if 400 <= reply.code < 600:
        raise _by_code(
            reply.code,
            f"SMTP {_endpoint(settings)} did not accept the message: {reply.code} {reply.message}",
        )
    smtp.close()
    raise UncertainDelivery(
        f"SMTP {_endpoint(settings)} answered the message with an unexpected "
        f"{reply.code} {reply.message}; it may have been delivered"
    )


async def send_message(
    raw: bytes,
    *,
    sender: str,
    recipients: Sequence[str],
    settings: SmtpSettings,
    password: Login,
    command_timeout: float = COMMAND_TIMEOUT,
) -> SendResult:
    """Send `raw` to `recipients` on a fresh connection; the server's final reply on success.

    Raises TemporaryFailure (retry later), PermanentFailure (do not retry) or UncertainDelivery
    (the message may have arrived: a person decides). `password` is read by the caller from
    the configured secret; it is never logged.
    """
    try:
        check_address(sender, role="SMTP sender")
        if isinstance(recipients, str) or not recipients:
            raise InvalidAddress("SMTP recipients: a non-empty list of addresses is required")
        for recipient in recipients:
            check_address(recipient, role="SMTP recipient")
    except InvalidAddress as exc:
        raise PermanentFailure(None, str(exc)) from exc
    smtp = await _open(settings, password, command_timeout)
    try:
        await _envelope(smtp, settings, sender, recipients, command_timeout)
        return await _transmit(smtp, settings, raw, command_timeout)
    finally:
        await _close(smtp)


async def check_login(
    settings: SmtpSettings, password: Login, *, command_timeout: float = COMMAND_TIMEOUT
) -> None:
    """Connect, EHLO, STARTTLS and AUTH as configured, then QUIT; no mail is sent.

    For `parting doctor`: raises TemporaryFailure or PermanentFailure with a readable reason.
    """
    smtp = await _open(settings, password, command_timeout)
    await _close(smtp)


def eml_filename(message_id: str) -> str:
    """A file name made of safe characters only, derived from the message id."""
    core = message_id.strip().strip("<>")
    safe = _UNSAFE_FILENAME.sub("_", core).lstrip(".")[:200]
    if not safe:
        raise ValueError(f"message id {message_id!r} gives no usable file name")
    return f"{safe}.eml"


def write_eml(raw: bytes, folder: str | os.PathLike[str], message_id: str) -> Path:
    """Write the message into `folder` as `<message id>.eml` atomically (temp file + rename).

    Used by `mode: dry_run`. The same message id always maps to the same file, so writing a
    message twice leaves one file.
    """
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / eml_filename(message_id)
    return write_atomically(target, raw)
