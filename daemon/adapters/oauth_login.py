"""Enrolment for `parting login`: a person (or the app itself) signs in once; the token file is written.

Rules of this module:
- Three ways in, each the provider's recommended one for a daemon without a screen: the device
  authorization grant (RFC 8628: a code to type on any other device), the installed-app flow
  (authorization code with PKCE S256, RFC 7636, redirected to a loopback port; where no browser
  can reach that port, the person pastes the address the browser ended on), and the
  client-credentials grant (Microsoft 365 app-only access: no person's token at all).
- The grants go through Authlib (`fetch_token`); RFC 8628's device authorization request has no
  Authlib client helper, so it is posted through the same Authlib session (its client
  authentication), and its answer is checked here.
- Waiting is injected (`sleep`, `now`) so the tests drive the polling without real waits.
- Every failure is an OAuthProblem that says which (wrong client id or tenant, consent not
  granted, code expired, clock, identity provider unreachable) and what to do.
"""

from __future__ import annotations

import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from daemon.adapters.oauth import (
    HTTP_TIMEOUT,
    OAuthProblem,
    TokenFile,
    explain,
    problem_file,
    session,
    token_record,
    unreachable,
)
from daemon.adapters.oauth_certificate import ClientAuth
from daemon.core.model import OAuthSettings

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
Say = Callable[[str], None]


@dataclass(frozen=True)
class LoginResult:
    flow: str
    token_file: str
    expires_at: float
    has_refresh_token: bool
    rotated_from_previous: bool


@dataclass
class Interaction:
    """How the flows talk to the person; tests replace these."""

    say: Say = print
    ask: Callable[[str], str] = input
    open_browser: Callable[[str], bool] | None = None  # None: print the address only
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], float] = time.time
    loopback_wait: float = 300.0  # seconds the browser flow waits for the redirect before asking


def login(oauth: OAuthSettings, client_secret: ClientAuth, *, flow: str | None = None,
          io: Interaction | None = None) -> LoginResult:
    """Run the configured (or given) flow and write the token file; returns what was done."""
    io = io or Interaction()
    flow = flow or oauth.flow
    tokens = TokenFile(oauth.token_file)
    previous = _quietly(tokens.load)
    if flow == "device":
        token = _device(oauth, client_secret, io)
    elif flow == "browser":
        token = _browser(oauth, client_secret, io)
    elif flow == "client_credentials":
        token = _client_credentials(oauth, client_secret)
    else:
        raise OAuthProblem(f"unknown sign-in flow {flow!r}: use device, browser or client_credentials")
    record = token_record(token, None, flow, io.now())
    tokens.save(record)
    problem_file(oauth).unlink(missing_ok=True)  # the running daemon's "sign-in needed" is over
    return LoginResult(flow, str(tokens.path), record["expires_at"], "refresh_token" in record,
                       bool(previous and previous.get("refresh_token") not in (None, record.get("refresh_token"))))


def _quietly(load: Callable[[], dict[str, Any] | None]) -> dict[str, Any] | None:
    try:
        return load()
    except OAuthProblem:
        return None  # an unreadable old file is replaced


def _grant(oauth: OAuthSettings, client_secret: ClientAuth, what: str, **kwargs: Any) -> dict[str, Any]:
    import requests
    from authlib.integrations.base_client.errors import OAuthError

    client = session(oauth, client_secret, code_challenge_method="S256")
    try:
        return dict(client.fetch_token(oauth.token_url, timeout=HTTP_TIMEOUT, **kwargs))
    except OAuthError as error:
        raise explain(error, what) from None
    except (requests.RequestException, ValueError) as error:
        raise unreachable(error, oauth.token_url) from None
    finally:
        client.close()


def sign_out(oauth: OAuthSettings, client_secret: ClientAuth) -> str:
    """Revoke the refresh token at the provider (RFC 7009, where it has an endpoint) and delete the
    token file; returns what was done. The daemon then shows "sign-in needed"."""
    import requests

    tokens = TokenFile(oauth.token_file)
    token = _quietly(tokens.load) or {}
    revoked = ""
    if oauth.revoke_url and token.get("refresh_token"):
        client = session(oauth, client_secret, revocation_endpoint_auth_method="client_secret_post"
                         if isinstance(client_secret, str) else "none")
        try:
            answer = client.revoke_token(oauth.revoke_url, token=token["refresh_token"],
                                         token_type_hint="refresh_token", timeout=HTTP_TIMEOUT)
        except requests.RequestException as error:
            raise unreachable(error, oauth.revoke_url) from None
        finally:
            client.close()
        if answer.status_code != 200:
            raise OAuthProblem(f"the identity provider refused to revoke the token ({answer.status_code}); the "
                               f"token file {tokens.path} is kept")
        revoked = "refresh token revoked at the identity provider; "
    tokens.path.unlink(missing_ok=True)
    return f"{revoked}token file {tokens.path} deleted"


# --------------------------------------------------------------------------------------------
# The device authorization grant (RFC 8628).


def _device(oauth: OAuthSettings, client_secret: ClientAuth, io: Interaction) -> dict[str, Any]:
    import requests

    if not oauth.device_url:
        raise OAuthProblem("this provider has no device sign-in (Google does not allow it for mail): set "
                           "mailbox.oauth.flow: browser, or run `parting login --flow browser`")
    client = session(oauth, client_secret)
    try:
        # A public client names itself in the form; a confidential one through Authlib's client auth.
        form = {"scope": " ".join(oauth.scopes), **({} if client_secret else {"client_id": oauth.client_id})}
        answer = client.post(oauth.device_url, data=form, timeout=HTTP_TIMEOUT, withhold_token=True,
                             auth=client.client_auth(client.token_endpoint_auth_method) if client_secret else None)
        body = answer.json()
    except (requests.RequestException, ValueError) as error:
        raise unreachable(error, oauth.device_url) from None
    finally:
        client.close()
    if "error" in body or "device_code" not in body:
        raise _device_refusal(body)
    uri = body.get("verification_uri") or body.get("verification_url", "")
    io.say(f"To sign in, open {uri} on any device and enter the code {body['user_code']}")
    if body.get("verification_uri_complete"):
        io.say(f"(or open {body['verification_uri_complete']}, which carries the code)")
    interval = float(body.get("interval", 5))
    deadline = io.now() + float(body.get("expires_in", 900))
    while io.now() < deadline:
        io.sleep(interval)
        try:
            return _grant(oauth, client_secret, "signing in with the device code", grant_type=DEVICE_GRANT,
                          device_code=body["device_code"])
        except OAuthProblem as problem:
            text = str(problem)
            if "(authorization_pending" in text:
                continue
            if "(slow_down" in text:  # RFC 8628 3.5: wait five seconds longer from now on
                interval += 5
                continue
            raise
    raise OAuthProblem("the code expired before the sign-in was finished: run `parting login` again and enter "
                       "the code within the time shown")


def _device_refusal(body: dict[str, Any]) -> OAuthProblem:
    class _Refusal(Exception):
        error = str(body.get("error", "invalid_request"))
        description = str(body.get("error_description", ""))

    return explain(_Refusal(), "asking for a device code failed")


# --------------------------------------------------------------------------------------------
# The installed-app flow: authorization code with PKCE, loopback redirect, paste-back fallback.


def _browser(oauth: OAuthSettings, client_secret: ClientAuth, io: Interaction) -> dict[str, Any]:
    if not oauth.authorize_url:
        raise OAuthProblem("mailbox.oauth.authorize_url is needed for the browser flow")
    catcher = _RedirectCatcher()
    redirect_uri = f"http://127.0.0.1:{catcher.port}/"
    verifier = secrets.token_urlsafe(64)
    client = session(oauth, client_secret, code_challenge_method="S256", redirect_uri=redirect_uri)
    url, state = client.create_authorization_url(oauth.authorize_url, code_verifier=verifier,
                                                 access_type="offline", prompt="consent")
    client.close()
    io.say(f"To sign in, open this address in a browser:\n{url}")
    if io.open_browser is not None:
        io.open_browser(url)
    try:
        landed = catcher.wait(io.loopback_wait)
    finally:
        catcher.close()
    if landed is None:  # no browser on this machine could reach the loopback port
        landed = io.ask("After signing in, the browser shows an address starting with "
                        f"{redirect_uri} (the page may not load): paste it here: ").strip()
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(landed).query))
    if "error" in query:
        class _Refusal(Exception):
            error = query["error"]
            description = query.get("error_description", "")
        raise explain(_Refusal(), "the sign-in was not completed")
    if query.get("state") != state or "code" not in query:
        raise OAuthProblem("that address is not the answer to this sign-in (state or code missing): run "
                           "`parting login` again and paste the whole address")
    return _grant(oauth, client_secret, "exchanging the sign-in code", grant_type="authorization_code",
                  code=query["code"], code_verifier=verifier, redirect_uri=redirect_uri)


class _RedirectCatcher:
    """A one-shot HTTP server on a free loopback port that keeps the first path it is sent to."""

    def __init__(self) -> None:
        caught: list[str] = []
        arrived = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                caught.append(f"http://127.0.0.1{self.path}")
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"parting: signed in; you can close this page.\n")
                arrived.set()

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._caught, self._arrived = caught, arrived
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def wait(self, seconds: float) -> str | None:
        return self._caught[0] if self._arrived.wait(seconds) else None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# --------------------------------------------------------------------------------------------
# Client credentials (Microsoft 365 app-only access to the mailbox).


def _client_credentials(oauth: OAuthSettings, client_secret: ClientAuth) -> dict[str, Any]:
    if not client_secret:
        raise OAuthProblem("client_credentials needs the app's secret or certificate: set "
                           "mailbox.oauth.client_secret_file, or client_certificate_file and client_private_key_file")
    return _grant(oauth, client_secret, "signing in as the app (client credentials)", grant_type="client_credentials")
