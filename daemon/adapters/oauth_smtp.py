"""SMTP AUTH with OAuth2 bearer tokens: OAUTHBEARER (RFC 7628) where offered, else XOAUTH2.

Rules of this module:
- aiosmtplib has a helper for XOAUTH2 (`auth_xoauth2`) and none for OAUTHBEARER, whose AUTH
  command is sent here as RFC 7628 describes (initial response, then ^A after an error challenge).
- A refused token is renewed once; a sign-in problem is a TemporaryFailure (the message waits)
  and is recorded for `status`, never a PermanentFailure.
"""

from __future__ import annotations

import asyncio
import base64

import aiosmtplib
from aiosmtplib import SMTPAuthenticationError

from daemon.adapters.oauth import OAuthCredential, OAuthProblem, SignInNeeded
from daemon.adapters.smtp_outcomes import PermanentFailure, TemporaryFailure
from daemon.adapters.smtp_outcomes import endpoint as _endpoint
from daemon.core.model import SmtpSettings


def _oauthbearer(user: str, token: str) -> str:
    """The RFC 7628 initial client response: GS2 header, host-less key/values, ^A separators."""
    identity = user.replace("=", "=3D").replace(",", "=2C")
    return base64.b64encode(f"n,a={identity},\x01auth=Bearer {token}\x01\x01".encode()).decode("ascii")


async def oauth_login(
    smtp: aiosmtplib.SMTP, settings: SmtpSettings, credential: OAuthCredential, command_timeout: float
) -> None:
    """AUTH OAUTHBEARER where offered (aiosmtplib has no helper: the command is sent here), else
    aiosmtplib's XOAUTH2; a refused token is renewed once. A sign-in problem is temporary: the
    message waits until someone signs in again."""
    user = settings.username or ""
    methods = smtp.server_auth_methods
    mechanism = "OAUTHBEARER" if "oauthbearer" in methods else "XOAUTH2"
    if mechanism.lower() not in methods:
        raise PermanentFailure(None, f"SMTP {_endpoint(settings)} offers no OAuth login (AUTH {' '.join(methods)}): "
                               "check smtp.host, or use mailbox.auth: password")
    refused = ""
    for _attempt in range(2):
        try:
            token = await asyncio.to_thread(credential.access_token)
        except SignInNeeded as exc:
            await asyncio.to_thread(credential.record_problem, str(exc))
            raise TemporaryFailure(f"SMTP sign-in needed for {user}: {exc}") from None
        except OAuthProblem as exc:
            raise TemporaryFailure(f"SMTP: no access token for {user}: {exc}") from None
        try:
            if mechanism == "XOAUTH2":
                await smtp.auth_xoauth2(user, token, timeout=command_timeout)
                return
            response = await smtp.execute_command(b"AUTH", b"OAUTHBEARER", _oauthbearer(user, token).encode(),
                                                  timeout=command_timeout)
            if response.code == 334:  # the error challenge (RFC 7628 3.2.3): answer ^A for the final reply
                response = await smtp.execute_command(b"AQ==", timeout=command_timeout)
            if response.code == 235:
                return
            refused = f"{response.code} {response.message}"
        except SMTPAuthenticationError as exc:
            refused = f"{exc.code} {exc.message}"
        await asyncio.to_thread(credential.invalidate, token)
    problem = (f"SMTP {_endpoint(settings)} refused the {mechanism} login of {user} twice, with a fresh access "
               f"token the second time ({refused}): run `parting login` (or check the app's SMTP.Send permission)")
    await asyncio.to_thread(credential.record_problem, problem)
    raise TemporaryFailure(problem)
