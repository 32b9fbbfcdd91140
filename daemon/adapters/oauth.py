"""OAuth2 access tokens for IMAP and SMTP: from the refresh token in the state folder, renewed in time.

Rules of this module:
- The grants go through Authlib's requests client (`OAuth2Session`): a well-kept, RFC-complete
  OAuth client (RFC 6749, 7009, 7636 PKCE, client authentication methods) whose token object knows
  its own expiry. No grant is written as hand-made HTTP here.
- The token file lives in the state folder, written atomically with mode 0600; a refresh token
  the identity provider rotates is written before the new access token is used, so a crash can
  never leave only a token the provider has already forgotten. Tokens never reach the YAML, a log
  line (each is registered with the log redaction) or the database.
- An access token is renewed `RENEW_BEFORE` seconds before it expires, and once more when a
  server refuses it (`invalidate`), whatever its expiry says: clocks and revocations disagree.
- Every failure leaves as `SignInNeeded` (a person must run `parting login`: revoked or expired
  refresh token, consent withdrawn, unknown client) or `IdpUnreachable` (try again later), with a
  message that says which and what to do.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.adapters.files import write_atomically
from daemon.adapters.oauth_certificate import ClientAuth, ClientCertificate
from daemon.adapters.redaction import register_secret
from daemon.core.errors import PartingError
from daemon.core.model import OAuthSettings

if TYPE_CHECKING:  # Authlib and requests are imported where used: `parting status` must start fast
    from authlib.integrations.requests_client import OAuth2Session

RENEW_BEFORE = 300.0  # seconds: renew this long before the access token's expiry
HTTP_TIMEOUT = 20.0
LOGIN_HINT = "run `parting login`"


class OAuthProblem(PartingError):
    """A sign-in problem; the message says what happened and what to do."""


class SignInNeeded(OAuthProblem):
    """No usable refresh token: a person has to sign in again with `parting login`."""


class IdpUnreachable(OAuthProblem):
    """The identity provider could not be reached or answered nonsense: try again later."""


# What the identity provider's error codes (RFC 6749 5.2, RFC 8628 3.5) mean for the person.
_ERRORS = {
    "invalid_grant": "the refresh token was revoked or has expired (a password change, an admin, or "
                     "months unused end it)",
    "invalid_client": "the identity provider does not know this client: check mailbox.oauth.client_id "
                      "(and tenant, and the client secret or certificate)",
    "unauthorized_client": "this app registration may not use this sign-in flow: check the app "
                           "registration's platform settings (allow public client flows for device code)",
    "invalid_scope": "the identity provider refused the scopes: check mailbox.oauth.scopes and the app's "
                     "API permissions",
    "consent_required": "nobody has granted this app access to the mailbox yet: an admin grants consent "
                        "in the app registration (API permissions), then sign in again",
    "access_denied": "consent was not granted: the person signing in (or an admin) declined",
    "expired_token": "the code expired before the sign-in was finished",
    "invalid_request": "the identity provider refused the request",
}
# Microsoft's AADSTS codes name the cause more precisely than the RFC error does.
_AADSTS = {
    "AADSTS700016": "the application (client) id is not registered in this tenant: check "
                    "mailbox.oauth.client_id and mailbox.oauth.tenant",
    "AADSTS90002": "the tenant does not exist: check mailbox.oauth.tenant",
    "AADSTS65001": "consent was not granted to this app: an admin grants it in the app registration",
    "AADSTS700082": "the refresh token expired after being unused too long",
    "AADSTS50173": "the refresh token was revoked (a password change or an admin)",
    "AADSTS700024": "the client assertion is outside its time window: check this machine's clock",
    "AADSTS700027": "the certificate's signature was not accepted: upload this certificate to the app "
                    "registration (Certificates & secrets), or give the key that belongs to the one there",
    "AADSTS700023": "the certificate is not registered for this app: upload it in the app registration "
                    "(Certificates & secrets)",
}


def explain(error: Exception, what: str) -> OAuthProblem:
    """The identity provider's error as a SignInNeeded / OAuthProblem with words a person can act on."""
    code = getattr(error, "error", "") or "error"
    description = getattr(error, "description", "") or ""
    text = next((words for key, words in _AADSTS.items() if key in description), None) or _ERRORS.get(code)
    if text is None and ("clock" in description.lower() or "not yet valid" in description.lower()
                         or code == "invalid_token" and "iat" in description):
        text = "the identity provider says the times do not match: check this machine's clock (NTP)"
    detail = f"{what}: {text or 'the identity provider refused it'} ({code}"
    detail += f": {description})" if description else ")"
    if code in ("invalid_grant", "consent_required", "access_denied", "expired_token", "invalid_client",
                "unauthorized_client", "invalid_scope") or text is not None:
        return SignInNeeded(f"{detail}; then {LOGIN_HINT}" if code != "invalid_client" else detail)
    return OAuthProblem(detail)


def unreachable(error: BaseException, url: str) -> IdpUnreachable:
    return IdpUnreachable(f"the identity provider at {url} cannot be reached ({type(error).__name__}: "
                          f"{error}); parting keeps trying; check the network or proxy")


def session(oauth: OAuthSettings, client_secret: ClientAuth, **kwargs: Any) -> OAuth2Session:
    """An Authlib session for this app registration: authenticated by its secret, by a JWT signed
    with its certificate's key (private_key_jwt), or not at all (a public client)."""
    from authlib.integrations.requests_client import OAuth2Session

    if isinstance(client_secret, ClientCertificate):
        # Authlib's PrivateKeyJWT signs with the session's client_secret: here the PEM private key.
        return OAuth2Session(
            client_id=oauth.client_id, client_secret=client_secret.private_key_pem.decode("ascii"),
            scope=" ".join(oauth.scopes), token_endpoint_auth_method=client_secret.client_auth(oauth.token_url),
            **kwargs)
    return OAuth2Session(
        client_id=oauth.client_id, client_secret=client_secret, scope=" ".join(oauth.scopes),
        token_endpoint_auth_method="client_secret_post" if client_secret else "none", **kwargs)


def client_authentication(client_secret: ClientAuth) -> str:
    """In words, how the app proves itself at the token endpoint (for doctor and login)."""
    if isinstance(client_secret, ClientCertificate):
        return client_secret.describe()
    return "client secret (client_secret_post)" if client_secret else "none (public client)"


# --------------------------------------------------------------------------------------------
# The token file.


class TokenFile:
    """The JSON file of the current tokens: written whole or not at all, mode 0600."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def identity(self) -> tuple[int, int] | None:
        """(inode, mtime): changes whenever the file is replaced."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_ino, info.st_mtime_ns

    def load(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise SignInNeeded(f"cannot read the token file {self.path} ({error}); {LOGIN_HINT} to write "
                               "a new one") from None
        if not isinstance(data, dict):
            raise SignInNeeded(f"the token file {self.path} is not a token file; {LOGIN_HINT}")
        for key in ("access_token", "refresh_token"):
            register_secret(data.get(key))
        return data

    def save(self, token: dict[str, Any]) -> None:
        for key in ("access_token", "refresh_token"):
            register_secret(token.get(key))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp creates the temporary file 0600 before anything is written into it.
        write_atomically(self.path, json.dumps(token, indent=1, sort_keys=True) + "\n")
        os.chmod(self.path, 0o600)


def token_record(token: dict[str, Any], previous: dict[str, Any] | None, flow: str, now: float) -> dict[str, Any]:
    """What is kept: the new token, keeping the previous refresh token when the provider did not rotate it."""
    record: dict[str, Any] = {key: token[key] for key in ("access_token", "token_type", "scope") if key in token}
    refresh = token.get("refresh_token") or (previous or {}).get("refresh_token")
    if refresh:
        record["refresh_token"] = refresh
    expires_in = token.get("expires_in")
    expires_at = token.get("expires_at")
    record["expires_at"] = float(expires_at) if expires_at else now + float(expires_in or 3600)
    record["flow"] = flow
    record["saved_at"] = now
    return record


# --------------------------------------------------------------------------------------------
# The credential IMAP and SMTP sign in with.


class OAuthCredential:
    """Access tokens for one mailbox, safe to share between the IMAP threads and the SMTP sender."""

    def __init__(self, oauth: OAuthSettings, client_secret: ClientAuth, *,
                 now: Callable[[], float] = time.time) -> None:
        self.oauth = oauth
        self._client_secret = client_secret
        self._now = now
        self._file = TokenFile(oauth.token_file)
        self._lock = threading.Lock()
        self._token: dict[str, Any] | None = None
        self._seen: tuple[int, int] | None = None  # the token file as last read or written
        self.renewals = 0  # how many access tokens were fetched (for status and tests)
        self.problem: str | None = None  # why the last sign-in failed; None once it worked

    def __eq__(self, other: object) -> bool:  # a reload with the same settings keeps the connections
        return (isinstance(other, OAuthCredential) and other.oauth == self.oauth
                and other._client_secret == self._client_secret)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"OAuthCredential(client_id={self.oauth.client_id!r}, token_file={str(self._file.path)!r})"

    def access_token(self) -> str:
        """A current access token, renewed when it expires within RENEW_BEFORE seconds. Blocking."""
        with self._lock:
            # `parting login` (another process) may have written a new token file meanwhile.
            seen = self._file.identity()
            token = self._token if self._token is not None and seen == self._seen else self._file.load()
            self._seen = seen
            if token is None and self.oauth.flow != "client_credentials":
                raise SignInNeeded(f"no OAuth token yet (looked for {self._file.path}): {LOGIN_HINT} to sign in")
            if token is None or float(token.get("expires_at", 0)) - RENEW_BEFORE <= self._now():
                token = self._renew(token)
            self._token = token
            return str(token["access_token"])

    def invalidate(self, access_token: str) -> None:
        """A server refused this access token: the next access_token() fetches a new one."""
        with self._lock:
            if self._token is not None and self._token.get("access_token") == access_token:
                self._token = {**self._token, "expires_at": 0.0}

    def record_problem(self, problem: str | None) -> None:
        """Remember (None: forget) why signing in failed, for `status` and the systemd STATUS line,
        which may run in another process: in a file beside the token file."""
        self.problem = problem
        marker = problem_file(self.oauth)
        if problem is None:
            marker.unlink(missing_ok=True)
        else:
            marker.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(marker, problem + "\n")

    def _renew(self, token: dict[str, Any] | None) -> dict[str, Any]:
        import requests
        from authlib.integrations.base_client.errors import OAuthError

        oauth = self.oauth
        client = session(oauth, self._client_secret)
        try:
            if oauth.flow == "client_credentials":
                fresh = client.fetch_token(oauth.token_url, grant_type="client_credentials", timeout=HTTP_TIMEOUT)
            else:
                assert token is not None
                if not token.get("refresh_token"):
                    raise SignInNeeded(f"the token file {self._file.path} holds no refresh token; {LOGIN_HINT}")
                fresh = client.refresh_token(oauth.token_url, refresh_token=token["refresh_token"],
                                             timeout=HTTP_TIMEOUT)
        except OAuthError as error:
            raise explain(error, "renewing the access token failed") from None
        except (requests.RequestException, ValueError) as error:
            raise unreachable(error, oauth.token_url) from None
        finally:
            client.close()
        record = token_record(dict(fresh), token, oauth.flow, self._now())
        self._file.save(record)  # a rotated refresh token is on disk before anyone uses the new access token
        self._seen = self._file.identity()
        self.renewals += 1
        return record


def problem_file(oauth: OAuthSettings) -> Path:
    return Path(oauth.token_file + ".problem")


def sign_in_problem(oauth: OAuthSettings | None) -> str | None:
    """Why the daemon could not sign in lately (None: it could, or it uses a password)."""
    if oauth is None:
        return None
    if oauth.flow != "client_credentials" and not Path(oauth.token_file).exists():
        return f"no OAuth token yet ({oauth.token_file})"
    try:
        return problem_file(oauth).read_text().strip() or None
    except OSError:
        return None


Login = str | OAuthCredential | None  # what IMAP and SMTP sign in with: a password, OAuth, or nothing
