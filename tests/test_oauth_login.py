"""`parting login`: the device grant end to end, the browser flow (loopback and paste-back), client
credentials, and the clear messages for what goes wrong."""

from __future__ import annotations

import json
import stat
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from daemon.adapters.imap.connection import ImapConnection
from daemon.adapters.oauth import OAuthCredential, OAuthProblem, explain
from daemon.adapters.oauth_login import Interaction, login
from daemon.cli import cli
from daemon.core.model import ImapSettings, OAuthSettings

MINIMAL = (Path(__file__).resolve().parent / "data" / "configs" / "minimal.yaml").read_text()


def write_config(folder: Path, idp, **oauth: object) -> Path:
    tree = yaml.safe_load(MINIMAL)
    tree["mailbox"] = {"address": "office@example.com", "auth": "oauth2",
                       "imap": {"host": "127.0.0.1", "security": "none"},
                       "smtp": {"host": "127.0.0.1", "security": "none"},
                       "oauth": {"client_id": idp.client_id, "token_url": f"{idp.url}/token",
                                 "device_url": f"{idp.url}/device", "authorize_url": f"{idp.url}/authorize",
                                 "scopes": ["imap", "offline_access"], **oauth}}
    (folder / "token-key").write_text("k" * 40)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def oauth_settings(idp, folder: Path) -> OAuthSettings:
    return OAuthSettings(client_id=idp.client_id, token_url=f"{idp.url}/token", scopes=("imap",),
                         token_file=str(folder / "oauth-token.json"), flow="browser",
                         authorize_url=f"{idp.url}/authorize")


@pytest.mark.integration
def test_login_by_device_code_end_to_end(idp, dovecot_oauth, tmp_path):
    idp.approve_after_polls = 2  # the person types the code while parting polls
    config = write_config(tmp_path, idp)
    result = CliRunner().invoke(cli, ["login", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"open {idp.url}/device/verify on any device and enter the code" in result.output
    assert "signed in with a device code for office@example.com" in result.output
    token_file = tmp_path / "oauth-token.json"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    saved = json.loads(token_file.read_text())
    assert saved["refresh_token"] in idp.active_refresh_tokens()
    assert saved["refresh_token"] not in result.output and saved["access_token"] not in result.output
    assert saved["refresh_token"] not in config.read_text()
    # the daemon's sign-in uses what login wrote
    oauth = OAuthSettings(client_id=idp.client_id, token_url=f"{idp.url}/token", scopes=("imap",),
                          token_file=str(token_file))
    imap = ImapSettings(host=dovecot_oauth.host, port=dovecot_oauth.port, security="none",
                        username=dovecot_oauth.user, connect_timeout=5, read_timeout=10)
    with ImapConnection(imap, OAuthCredential(oauth, None)) as connection:
        assert connection.connected


def test_consent_not_granted_says_so(idp, tmp_path):
    idp.deny_consent = True
    result = CliRunner().invoke(cli, ["login", "--config", str(write_config(tmp_path, idp))])
    assert result.exit_code == 2
    assert "consent was not granted" in result.output and not (tmp_path / "oauth-token.json").exists()


def test_a_wrong_client_id_points_at_the_setting(idp, tmp_path):
    result = CliRunner().invoke(cli, ["login", "--config", str(write_config(tmp_path, idp, client_id="typo"))])
    assert result.exit_code == 2
    assert "does not know this client: check mailbox.oauth.client_id (and tenant" in result.output


def test_an_unreachable_identity_provider_is_named(idp, tmp_path):
    config = write_config(tmp_path, idp)
    idp.stop()
    result = CliRunner().invoke(cli, ["login", "--config", str(config)])
    assert result.exit_code == 2 and "cannot be reached" in result.output and "/device" in result.output


def test_login_without_oauth2_configured_explains(tmp_path, idp):
    config = write_config(tmp_path, idp)
    tree = yaml.safe_load(config.read_text())
    tree["mailbox"] = yaml.safe_load(MINIMAL)["mailbox"]
    config.write_text(yaml.safe_dump(tree))
    result = CliRunner().invoke(cli, ["login", "--config", str(config)])
    assert result.exit_code == 2 and "mailbox.auth is password" in result.output


def test_browser_flow_catches_the_loopback_redirect_with_pkce(idp, tmp_path):
    def browser(url: str) -> bool:  # the browser: signs in at the IdP, which redirects to our port
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        assert query["code_challenge_method"] == "S256" and query["redirect_uri"].startswith("http://127.0.0.1:")
        code = idp.authorize(parts.query)
        target = f"{query['redirect_uri']}?code={code}&state={query['state']}"
        with urllib.request.urlopen(target, timeout=5) as page:
            assert b"signed in" in page.read()
        return True

    result = login(oauth_settings(idp, tmp_path), None,
                   io=Interaction(say=lambda line: None, ask=pytest.fail, open_browser=browser))
    assert result.flow == "browser" and result.has_refresh_token


def test_browser_flow_on_a_server_reads_the_address_pasted_back(idp, tmp_path):
    shown: list[str] = []

    def person_pastes(prompt: str) -> str:
        url = next(line for line in shown[0].splitlines() if line.startswith("http"))
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        return f"{query['redirect_uri']}?code={idp.authorize(parts.query)}&state={query['state']}"

    result = login(oauth_settings(idp, tmp_path), None,
                   io=Interaction(say=shown.append, ask=person_pastes, open_browser=None, loopback_wait=0))
    assert result.has_refresh_token and len(idp.active_refresh_tokens()) == 1


def test_a_pasted_address_from_another_sign_in_is_refused(idp, tmp_path):
    with pytest.raises(OAuthProblem, match="not the answer to this sign-in"):
        login(oauth_settings(idp, tmp_path), None,
              io=Interaction(say=lambda line: None, ask=lambda prompt: "http://127.0.0.1:1/?code=x&state=forged",
                             loopback_wait=0))


def test_client_credentials_signs_in_as_the_app(idp, tmp_path):
    idp.client_secret = "app-secret"
    (tmp_path / "app-secret").write_text("app-secret\n")
    config = write_config(tmp_path, idp, flow="client_credentials", client_secret_file="app-secret")
    result = CliRunner().invoke(cli, ["login", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "as the app itself (client credentials)" in result.output
    assert "app-secret" not in (tmp_path / "oauth-token.json").read_text()


@pytest.mark.parametrize(("error", "description", "words"), [
    ("invalid_grant", "AADSTS700082: The refresh token has expired due to inactivity.", "expired after being unused"),
    ("invalid_client", "AADSTS700016: Application with identifier 'x' was not found in the directory",
     "check mailbox.oauth.client_id and mailbox.oauth.tenant"),
    ("invalid_request", "AADSTS90002: Tenant 'contoso.example' not found.", "the tenant does not exist"),
    ("invalid_client", "AADSTS700024: Client assertion is not within its valid time range.", "check this machine's clock"),
    ("invalid_grant", "", "revoked or has expired"),
    ("consent_required", "", "an admin grants consent"),
])
def test_provider_errors_become_advice(error, description, words):
    class Refusal(Exception):
        pass

    refusal = Refusal()
    refusal.error, refusal.description = error, description
    assert words in str(explain(refusal, "signing in"))


def test_login_no_browser_with_flow_browser_asks_for_the_address_at_once(idp, tmp_path):
    from daemon.runtime.app import login as app_login

    shown: list[str] = []

    def person_pastes(prompt: str) -> str:
        url = next(line for line in "\n".join(shown).splitlines() if line.startswith(f"{idp.url}/authorize"))
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        return f"{query['redirect_uri']}?code={idp.authorize(parts.query)}&state={query['state']}"

    config = write_config(tmp_path, idp)  # flow device in the file: --flow browser overrides it
    lines = app_login(config, flow="browser", browser=False, say=shown.append, ask=person_pastes)
    assert lines[0] == "signed in through the browser (PKCE) for office@example.com"
    assert json.loads((tmp_path / "oauth-token.json").read_text())["flow"] == "browser"


def test_login_revoke_signs_out_at_the_provider_and_deletes_the_token_file(idp, tmp_path):
    idp.approve_after_polls = 0
    config = write_config(tmp_path, idp, revoke_url=f"{idp.url}/revoke")
    assert CliRunner().invoke(cli, ["login", "--config", str(config)]).exit_code == 0
    assert len(idp.active_refresh_tokens()) == 1
    result = CliRunner().invoke(cli, ["login", "--revoke", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "refresh token revoked at the identity provider; token file" in result.output
    assert idp.active_refresh_tokens() == [] and not (tmp_path / "oauth-token.json").exists()
