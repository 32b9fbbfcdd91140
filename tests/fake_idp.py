"""A small OAuth2 identity provider on 127.0.0.1 for the sign-in tests, and an SMTP sink that
checks bearer tokens against it.

Why not node's oidc-provider: its device grant is finished by a person in its own HTML
interaction pages (login, then consent), which a test would have to drive form by form; its
token lifetimes run on the wall clock; and making a refresh token revoked, an access token expire
mid-IDLE or a client unknown on demand would need adapters around its storage. The tests need
exactly those faults, deterministically, so this keeps the endpoints parting talks to and nothing
else: token (refresh_token with rotation, device_code, client_credentials, authorization_code
with PKCE S256), device authorization (RFC 8628), introspection (RFC 7662, what Dovecot's oauth2
passdb asks) and revocation (RFC 7009). Errors are the RFC's codes. A client may authenticate with a
client assertion signed by its registered certificate's key (RFC 7523 private_key_jwt), checked as
Microsoft's token endpoint does: signature, aud = token endpoint, iss = sub = client id, exp, an
unused jti, and the certificate's thumbprint in the header.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.smtp import AuthResult
from servers import SmtpSink


@dataclass
class _Grant:
    user: str
    active: bool = True
    expires: float = 0.0  # access tokens only


@dataclass
class _Device:
    user_code: str
    user: str | None = None
    denied: bool = False


@dataclass
class FakeIdp:
    client_id: str = "parting-test-client"
    client_secret: str | None = None  # required by client_credentials only
    client_certificate: bytes | None = None  # PEM: client assertions must be signed by its key
    user: str = "office@example.com"
    access_ttl: float = 3600.0
    rotate: bool = True  # every refresh returns a new refresh token and revokes the old one
    unreachable: bool = False  # answer every request with a 503
    approve_after_polls: int | None = None  # the person approves a device code after this many polls
    deny_consent: bool = False  # the person (or the tenant's admin) declines
    access: dict[str, _Grant] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    devices: dict[str, _Device] = field(default_factory=dict)
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, user)
    refreshes: int = 0
    introspections: int = 0
    assertions: list[dict[str, Any]] = field(default_factory=list)  # headers of the accepted client assertions
    used_jti: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeIdp:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                status, body = idp._answer(self.path.split("?")[0], form, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- what a test does to it ------------------------------------------------------------

    def approve(self, user_code: str, user: str | None = None) -> None:
        """The person at the verification page signs in and grants consent."""
        with self._lock:
            device = next(d for d in self.devices.values() if d.user_code == user_code)
            device.user = user or self.user

    def deny(self, user_code: str) -> None:
        with self._lock:
            next(d for d in self.devices.values() if d.user_code == user_code).denied = True

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working now (as if its lifetime ran out)."""
        with self._lock:
            for grant in self.access.values():
                grant.active = False

    def revoke_refresh_tokens(self) -> None:
        """An admin (or a password change) ends every session: refresh tokens stop working."""
        with self._lock:
            for grant in self.refresh.values():
                grant.active = False

    def issue_refresh_token(self, user: str | None = None) -> str:
        token = "rt-" + secrets.token_urlsafe(16)
        with self._lock:
            self.refresh[token] = _Grant(user or self.user)
        return token

    def active_refresh_tokens(self) -> list[str]:
        with self._lock:
            return [token for token, grant in self.refresh.items() if grant.active]

    def introspect(self, token: str) -> str | None:
        """The user an access token stands for, None when it is not active."""
        with self._lock:
            grant = self.access.get(token)
            if grant is None or not grant.active or grant.expires <= time.time():
                return None
            return grant.user

    # -- the endpoints ---------------------------------------------------------------------

    def _answer(self, path: str, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        if self.unreachable:
            return 503, {"error": "temporarily_unavailable"}
        if path == "/introspect":
            self.introspections += 1
            user = self.introspect(form.get("token", ""))
            return 200, {"active": True, "username": user} if user else {"active": False}
        if path == "/revoke":
            with self._lock:
                for table in (self.access, self.refresh):
                    if form.get("token") in table:
                        table[form["token"]].active = False
            return 200, {}
        assertion_ok = False
        if "client_assertion" in form:
            refusal = self._check_assertion(form, f"{self.url}{path}")
            if refusal:
                return 401, {"error": "invalid_client", "error_description": refusal}
            assertion_ok = True
        if form.get("client_id") != self.client_id and not (authorization or "").startswith("Basic "):
            return 400 if path == "/device" else 401, {
                "error": "invalid_client", "error_description": f"unknown client {form.get('client_id')!r}"}
        if path == "/device":
            device_code, user_code = secrets.token_urlsafe(16), secrets.token_hex(4).upper()
            with self._lock:
                self.devices[device_code] = _Device(user_code)
            return 200, {"device_code": device_code, "user_code": user_code, "expires_in": 900, "interval": 0,
                         "verification_uri": f"{self.url}/device/verify"}
        if path == "/token":
            return self._token(form, assertion_ok)
        return 404, {"error": "not_found"}

    def _check_assertion(self, form: dict[str, str], endpoint: str) -> str | None:
        """Why this client assertion is refused (Microsoft's words), None when it is good."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from joserfc import jwt
        from joserfc.errors import JoseError
        from joserfc.jwk import RSAKey

        if form.get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer":
            return "AADSTS50027: client_assertion_type is not jwt-bearer"
        if self.client_certificate is None:
            return "AADSTS700027: no certificate is registered for this application"
        certificate = x509.load_pem_x509_certificate(self.client_certificate)
        public = certificate.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            token = jwt.decode(form["client_assertion"], RSAKey.import_key(public), algorithms=["RS256"])
        except JoseError as error:
            return f"AADSTS700027: Client assertion contains an invalid signature ({error.error})."
        der = certificate.public_bytes(serialization.Encoding.DER)
        thumbprint = base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()
        claims = token.claims
        if token.header.get("x5t#S256") != thumbprint:
            return "AADSTS700027: the assertion's x5t#S256 is not the registered certificate's thumbprint"
        if claims.get("aud") != endpoint:
            return f"AADSTS50013: Assertion audience {claims.get('aud')!r} is not the token endpoint"
        if not claims.get("iss") == claims.get("sub") == self.client_id:
            return "AADSTS700021: Client assertion application identifier doesn't match client_id"
        if float(claims.get("exp", 0)) <= time.time():
            return "AADSTS700024: Client assertion is not within its valid time range"
        with self._lock:
            if not claims.get("jti") or claims["jti"] in self.used_jti:
                return "AADSTS700025: Client assertion jti is missing or was used before"
            self.used_jti.add(claims["jti"])
            self.assertions.append(dict(token.header))
        return None

    def _token(self, form: dict[str, str], assertion_ok: bool = False) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type")
        with self._lock:
            if grant == "refresh_token":
                old = self.refresh.get(form.get("refresh_token", ""))
                if old is None or not old.active:
                    return 400, {"error": "invalid_grant", "error_description": "refresh token revoked or expired"}
                self.refreshes += 1
                if self.rotate:
                    old.active = False
                return 200, self._issue(old.user, refresh=self.rotate, keep=None if self.rotate else
                                        form["refresh_token"])
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                device = self.devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "expired_token"}
                if device.denied:
                    return 400, {"error": "access_denied", "error_description": "the user declined consent"}
                if self.deny_consent:
                    device.denied = True
                    return 400, {"error": "access_denied", "error_description": "the user declined consent"}
                if device.user is None and self.approve_after_polls is not None:
                    self.approve_after_polls -= 1
                    if self.approve_after_polls < 0:
                        device.user = self.user
                if device.user is None:
                    return 400, {"error": "authorization_pending"}
                del self.devices[form["device_code"]]
                return 200, self._issue(device.user, refresh=True)
            if grant == "client_credentials":
                if not assertion_ok and (self.client_secret is None or form.get("client_secret") != self.client_secret):
                    return 401, {"error": "invalid_client", "error_description": "bad client secret"}
                return 200, self._issue(self.user, refresh=False)
            if grant == "authorization_code":
                challenge, user = self.codes.pop(form.get("code", ""), ("", ""))
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if not challenge or digest != challenge:
                    return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                return 200, self._issue(user, refresh=True)
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, user: str, *, refresh: bool, keep: str | None = None) -> dict[str, Any]:
        access = "at-" + secrets.token_urlsafe(16)
        self.access[access] = _Grant(user, expires=time.time() + self.access_ttl)
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": int(self.access_ttl)}
        if refresh:
            token = "rt-" + secrets.token_urlsafe(16)
            self.refresh[token] = _Grant(user)
            body["refresh_token"] = token
        elif keep:
            body["refresh_token"] = keep
        return body

    def authorize(self, query: str) -> str:
        """What the browser does at the authorization URL: returns the code the redirect carries."""
        params = dict(urllib.parse.parse_qsl(query))
        code = secrets.token_urlsafe(12)
        with self._lock:
            self.codes[code] = (params["code_challenge"], self.user)
        return code


class OAuthSmtpSink(SmtpSink):
    """An SmtpSink that accepts AUTH XOAUTH2 with tokens the FakeIdp calls active (and OAUTHBEARER
    too in OAuthBearerSmtpSink: aiosmtpd offers every auth_* method of its handler)."""

    def __init__(self, idp: FakeIdp, **kwargs: Any) -> None:
        super().__init__(require_auth=True, **kwargs)
        self.idp = idp
        self.refused = 0
        self.mechanisms_used: list[str] = []

    async def _bearer(self, server: Any, args: list[str], mechanism: str) -> AuthResult:
        blob = base64.b64decode(args[1]) if len(args) > 1 else await server.challenge_auth("")
        fields = dict(part.split("=", 1) if mechanism == "XOAUTH2" else part.split("=", 1)
                      for part in blob.decode().split("\x01")[(0 if mechanism == "XOAUTH2" else 1):] if "=" in part)
        user = fields.get("user") or blob.decode().split(",")[1].removeprefix("a=")
        token = fields.get("auth", "").removeprefix("Bearer ")
        self.mechanisms_used.append(mechanism)
        if self.idp.introspect(token) == user:
            return AuthResult(success=True, auth_data=user)
        self.refused += 1
        await server.challenge_auth(json.dumps({"status": "invalid_token", "schemes": "bearer"}))
        return AuthResult(success=False, message="535 5.7.8 token not active")

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's naming
        return await self._bearer(server, args, "XOAUTH2")


class OAuthBearerSmtpSink(OAuthSmtpSink):
    async def auth_OAUTHBEARER(self, server: Any, args: list[str]) -> AuthResult:  # noqa: N802
        return await self._bearer(server, args, "OAUTHBEARER")
