"""OAuth2 sign-in against a real Dovecot (oauth2 passdb, introspection) and an XOAUTH2/OAUTHBEARER
SMTP sink, both asking the fake identity provider in fake_idp.py whether a token is active."""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from fake_idp import FakeIdp, OAuthBearerSmtpSink, OAuthSmtpSink
from servers import DovecotServer, scratch_dir

from daemon.adapters import smtp as mailer
from daemon.adapters.imap.connection import ImapConnection, ImapSignInNeeded
from daemon.adapters.oauth import RENEW_BEFORE, OAuthCredential, SignInNeeded, TokenFile, sign_in_problem
from daemon.core.model import ImapSettings, OAuthSettings, SmtpSettings
from daemon.runtime.logs import _mask

pytestmark = pytest.mark.integration


def oauth_settings(idp: FakeIdp, folder: Path, **overrides: object) -> OAuthSettings:
    values: dict = {"client_id": idp.client_id, "token_url": f"{idp.url}/token", "device_url": f"{idp.url}/device",
                    "revoke_url": f"{idp.url}/revoke", "scopes": ("imap", "smtp", "offline_access"),
                    "token_file": str(folder / "oauth-token.json")}
    return OAuthSettings(**{**values, **overrides})


def enrolled(idp: FakeIdp, folder: Path, **overrides: object) -> OAuthCredential:
    """A credential whose token file holds a refresh token, as `parting login` leaves it."""
    oauth = oauth_settings(idp, folder, **overrides)
    TokenFile(oauth.token_file).save({"refresh_token": idp.issue_refresh_token(), "expires_at": 0})
    return OAuthCredential(oauth, None)


def imap_settings(dovecot: DovecotServer) -> ImapSettings:
    return ImapSettings(host=dovecot.host, port=dovecot.port, security="none", username=dovecot.user,
                        connect_timeout=5, read_timeout=10)


def test_imap_signs_in_with_a_refreshed_token_and_rotation_is_written_0600(idp, dovecot_oauth, tmp_path):
    credential = enrolled(idp, tmp_path)
    first_refresh = idp.active_refresh_tokens()[0]
    with ImapConnection(imap_settings(dovecot_oauth), credential) as connection:
        assert connection.select("INBOX").exists == 0
        assert connection.auth_mechanism == "OAUTHBEARER"  # offered too, and preferred (RFC 7628)
    saved = json.loads(Path(credential.oauth.token_file).read_text())
    assert saved["refresh_token"] != first_refresh  # rotated ...
    assert idp.active_refresh_tokens() == [saved["refresh_token"]]  # ... and the new one is the live one
    assert stat.S_IMODE(Path(credential.oauth.token_file).stat().st_mode) == 0o600
    assert _mask(f"token {saved['refresh_token']} {saved['access_token']}") == "token ******** ********"


def test_a_token_the_server_refuses_is_renewed_once_before_its_expiry(idp, dovecot_oauth, tmp_path):
    credential = enrolled(idp, tmp_path)
    with ImapConnection(imap_settings(dovecot_oauth), credential):
        pass
    idp.expire_access_tokens()  # revoked early: our copy still looks valid for an hour
    with ImapConnection(imap_settings(dovecot_oauth), credential) as connection:
        assert connection.connected
    assert credential.renewals == 2 and idp.refreshes == 2


def test_a_server_offering_only_xoauth2_gets_xoauth2_and_the_retry_works(idp, tmp_path):
    workdir = scratch_dir("parting-xoauth2-")
    server = DovecotServer(workdir, oauth_introspection_url=f"{idp.url}/introspect", oauth_mechanisms="xoauth2")
    try:
        server.start()
        credential = enrolled(idp, tmp_path)
        with ImapConnection(imap_settings(server), credential):
            pass
        idp.expire_access_tokens()
        with ImapConnection(imap_settings(server), credential) as connection:
            assert connection.auth_mechanism == "XOAUTH2"
        assert credential.renewals == 2
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def test_the_rotated_refresh_token_survives_a_restart(idp, dovecot_oauth, tmp_path):
    credential = enrolled(idp, tmp_path)
    with ImapConnection(imap_settings(dovecot_oauth), credential):
        pass
    idp.expire_access_tokens()
    restarted = OAuthCredential(credential.oauth, None)  # a new process reads only the file
    with ImapConnection(imap_settings(dovecot_oauth), restarted) as connection:
        assert connection.connected
    assert idp.refreshes == 2  # the first refresh token was spent: only the rotated one could work


def test_a_revoked_refresh_token_says_sign_in_needed(idp, dovecot_oauth, tmp_path):
    credential = enrolled(idp, tmp_path)
    idp.revoke_refresh_tokens()
    with pytest.raises(ImapSignInNeeded) as caught:
        ImapConnection(imap_settings(dovecot_oauth), credential).connect()
    assert "revoked or has expired" in str(caught.value) and "parting login" in str(caught.value)
    assert "revoked" in sign_in_problem(credential.oauth)
    # a new login writes a fresh token: the next connection works and the problem is forgotten
    TokenFile(credential.oauth.token_file).save({"refresh_token": idp.issue_refresh_token(), "expires_at": 0})
    with ImapConnection(imap_settings(dovecot_oauth), OAuthCredential(credential.oauth, None)):
        pass
    assert sign_in_problem(credential.oauth) is None


def test_no_token_file_yet_says_run_parting_login(idp, tmp_path):
    credential = OAuthCredential(oauth_settings(idp, tmp_path), None)
    with pytest.raises(SignInNeeded, match="parting login"):
        credential.access_token()


def test_an_unreachable_identity_provider_is_temporary(idp, tmp_path, dovecot_oauth):
    credential = enrolled(idp, tmp_path)
    idp.unreachable = True
    with pytest.raises(Exception) as caught:
        ImapConnection(imap_settings(dovecot_oauth), credential).connect()
    assert not isinstance(caught.value, ImapSignInNeeded)
    assert sign_in_problem(credential.oauth) is None


@pytest.mark.parametrize("mechanism", ["XOAUTH2", "OAUTHBEARER"])
async def test_smtp_sends_with_xoauth2_or_oauthbearer(idp, tmp_path, mechanism):
    credential = enrolled(idp, tmp_path)
    sink = OAuthSmtpSink(idp) if mechanism == "XOAUTH2" else OAuthBearerSmtpSink(idp)  # offers both
    with sink:
        settings = SmtpSettings(host=sink.host, port=sink.port, security="none", username="office@example.com")
        idp.expire_access_tokens()  # the first token is refused: renewed once, then accepted
        await mailer.check_login(settings, credential)
        raw = b"From: office@example.com\r\nTo: jane@acme.example\r\nSubject: hi\r\nMessage-ID: <a@b>\r\n\r\nhello\r\n"
        await mailer.send_message(raw, sender="office@example.com", recipients=["jane@acme.example"],
                                  settings=settings, password=credential)
        assert [m.login for m in sink.wait_for(1)] == ["office@example.com"]
        assert sink.mechanisms_used[-1] == mechanism


def test_an_access_token_is_renewed_shortly_before_it_expires(idp, tmp_path):
    clock = [1_000_000.0]
    oauth = oauth_settings(idp, tmp_path)
    TokenFile(oauth.token_file).save({"refresh_token": idp.issue_refresh_token(), "access_token": "at-old",
                                      "expires_at": clock[0] + 3600})
    credential = OAuthCredential(oauth, None, now=lambda: clock[0])
    assert credential.access_token() == "at-old" and credential.renewals == 0
    clock[0] += 3600 - RENEW_BEFORE + 1  # within RENEW_BEFORE of the expiry: renewed before any refusal
    assert credential.access_token() != "at-old" and credential.renewals == 1


def test_before_the_first_login_status_already_says_sign_in_needed(idp, tmp_path):
    from daemon.queries.status import sign_in_status

    oauth = oauth_settings(idp, tmp_path)
    assert sign_in_status(oauth) == f"sign-in needed: run parting login (no OAuth token yet ({oauth.token_file}))"
    TokenFile(oauth.token_file).save({"refresh_token": idp.issue_refresh_token(), "expires_at": 0})
    assert sign_in_status(oauth) is None
