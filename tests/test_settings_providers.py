"""mailbox.provider presets and mailbox.auth: oauth2 settings, through the loader and check-config."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.adapters.settings.load import SettingsError, load_settings
from daemon.adapters.settings.secret_files import load_secrets
from daemon.cli import cli

MINIMAL = (Path(__file__).resolve().parent / "data" / "configs" / "minimal.yaml").read_text()
SERVERS = """  imap: {host: imap.example.com, password_file: imap-password}
  smtp: {host: smtp.example.com}
"""


def config(tmp_path: Path, mailbox: str) -> Path:
    """The minimal config with its server lines replaced by `mailbox` (indented under mailbox:)."""
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL.replace(SERVERS, mailbox))
    return path


def problems(path: Path) -> list[tuple[str, str]]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    return [(p.key_path, p.message) for p in caught.value.problems]


def test_the_old_shape_still_means_password_and_generic(tmp_path):
    settings = load_settings(config(tmp_path, SERVERS), environ={})
    assert (settings.mailbox.provider, settings.mailbox.auth, settings.mailbox.oauth) == ("generic", "password", None)
    assert settings.mailbox.preset_filled == ()


def test_microsoft365_fills_hosts_folders_append_and_oauth(tmp_path):
    path = config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n"
                            "  oauth: {client_id: 11111111-2222-3333-4444-555555555555, tenant: contoso.com}\n")
    mailbox = load_settings(path, environ={}).mailbox
    assert (mailbox.imap.host, mailbox.imap.port, mailbox.imap.security) == ("outlook.office365.com", 993, "tls")
    assert (mailbox.smtp.host, mailbox.smtp.port, mailbox.smtp.security) == ("smtp.office365.com", 587, "starttls")
    assert mailbox.imap.sent == "Sent Items" and mailbox.append_to_sent == "false"
    assert mailbox.smtp.username == "office@example.com"  # OAuth signs in as the mailbox
    oauth = mailbox.oauth
    assert oauth.token_url == "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    assert oauth.device_url == "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/devicecode"
    assert "https://outlook.office.com/IMAP.AccessAsUser.All" in oauth.scopes and oauth.flow == "device"
    assert oauth.token_file == str(tmp_path / "oauth-token.json")  # beside the database
    assert ("mailbox.imap.host", "outlook.office365.com") in mailbox.preset_filled


def test_google_prefers_the_browser_flow_and_special_use_sent(tmp_path):
    path = config(tmp_path, "  provider: google\n  auth: oauth2\n  oauth: {client_id: abc.apps.googleusercontent.com}\n")
    mailbox = load_settings(path, environ={}).mailbox
    assert (mailbox.imap.host, mailbox.smtp.host) == ("imap.gmail.com", "smtp.gmail.com")
    assert mailbox.imap.sent == "auto" and mailbox.append_to_sent == "false"
    assert mailbox.oauth.flow == "browser" and mailbox.oauth.scopes == ("https://mail.google.com/",)
    assert mailbox.oauth.device_url is None


def test_every_filled_value_can_be_overridden(tmp_path):
    path = config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n  append_to_sent: true\n"
                            "  oauth: {client_id: cid, token_url: 'http://127.0.0.1:9/token', scopes: [a, b]}\n"
                            "  imap: {host: 127.0.0.1, port: 1143, security: none, folders: {sent: Sent}}\n")
    mailbox = load_settings(path, environ={}).mailbox
    assert (mailbox.imap.host, mailbox.imap.port, mailbox.imap.security, mailbox.imap.sent) == (
        "127.0.0.1", 1143, "none", "Sent")
    assert mailbox.append_to_sent == "true"
    assert mailbox.oauth.token_url == "http://127.0.0.1:9/token" and mailbox.oauth.scopes == ("a", "b")
    filled = dict(mailbox.preset_filled)
    assert "mailbox.imap.host" not in filled and "mailbox.oauth.token_url" not in filled
    assert filled["mailbox.smtp.host"] == "smtp.office365.com"


def test_check_config_shows_what_the_preset_filled(tmp_path):
    path = config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n  oauth: {client_id: cid}\n")
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "provider microsoft365, sign-in oauth2" in result.output
    assert "filled by provider microsoft365: mailbox.imap.host = outlook.office365.com" in result.output
    assert "filled by provider microsoft365: mailbox.append_to_sent = false" in result.output


def test_generic_still_needs_its_servers(tmp_path):
    found = problems(config(tmp_path, "  smtp: {host: smtp.example.com}\n"))
    assert ("mailbox.imap", "required key is missing (mailbox.provider is generic): the IMAP server") in found


def test_oauth2_needs_a_client_id_and_for_generic_its_endpoints(tmp_path):
    found = dict(problems(config(tmp_path, "  auth: oauth2\n  imap: {host: imap.example.com}\n"
                                           "  smtp: {host: smtp.example.com}\n")))
    assert "application (client) id" in found["mailbox.oauth.client_id"]
    assert "token endpoint" in found["mailbox.oauth.token_url"]
    assert "device authorization" in found["mailbox.oauth.device_url"]
    assert "scopes" in found["mailbox.oauth.scopes"]


def test_oauth2_refuses_a_password_that_would_never_be_used(tmp_path):
    found = dict(problems(config(tmp_path, "  provider: google\n  auth: oauth2\n  oauth: {client_id: c}\n"
                                           "  imap: {password_file: imap-password}\n")))
    assert "no password is used" in found["mailbox.imap.password_file"]


def test_client_credentials_needs_the_app_secret_from_a_file(tmp_path):
    found = dict(problems(config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n"
                                           "  oauth: {client_id: c, tenant: t, flow: client_credentials}\n")))
    assert "client_secret_file" in found["mailbox.oauth.flow"]
    inline = dict(problems(config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n"
                                            "  oauth: {client_id: c, client_secret: s3cret}\n")))
    assert "never written in the config" in inline["mailbox.oauth.client_secret"]


def test_the_client_secret_is_read_from_its_file_and_never_shown(tmp_path):
    (tmp_path / "token-key").write_text("k" * 40)
    (tmp_path / "app-secret").write_text("the-app-secret\n")
    path = config(tmp_path, "  provider: microsoft365\n  auth: oauth2\n"
                            "  oauth: {client_id: c, tenant: t, flow: client_credentials, client_secret_file: app-secret}\n")
    secrets = load_secrets(load_settings(path, environ={}), environ={})
    assert secrets.oauth_client_secret == "the-app-secret"
    assert "the-app-secret" not in repr(secrets)


def test_a_provider_brings_its_own_evidence_so_authserv_id_is_optional(tmp_path):
    without = MINIMAL.replace("  authserv_id: mx.example.com\n", "")
    path = tmp_path / "config.yaml"
    path.write_text(without.replace(SERVERS, "  provider: microsoft365\n  auth: oauth2\n  oauth: {client_id: c}\n"))
    assert load_settings(path, environ={}).review.authserv_id == ""
    path.write_text(without)
    assert "review.authserv_id" in [key for key, _ in problems(path)]
