"""The daemon signed in with OAuth2: token renewal while it watches, a revoked sign-in, recovery.

Dovecot (oauth2 passdb) and the SMTP sink ask the fake identity provider whether a token is
active; the test makes tokens expire or be revoked there, as an identity provider would.
"""

from __future__ import annotations

from collections.abc import Iterator

import mailfactory as mf
import pytest
import yaml
from fake_idp import FakeIdp, OAuthSmtpSink
from harness import RunningDaemon, utc, write_config
from servers import DovecotServer

from daemon.adapters.oauth import TokenFile

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)


@pytest.fixture
def sink(idp: FakeIdp) -> Iterator[OAuthSmtpSink]:
    with OAuthSmtpSink(idp) as server:
        yield server


@pytest.fixture
def config(tmp_path, idp, dovecot_oauth, sink):
    path = write_config(tmp_path / "parting", dovecot_oauth, sink)
    tree = yaml.safe_load(path.read_text())
    mailbox = tree["mailbox"]
    del mailbox["imap"]["password_file"]
    mailbox["smtp"]["username"] = "office@example.com"
    mailbox["auth"] = "oauth2"
    mailbox["oauth"] = {"client_id": idp.client_id, "token_url": f"{idp.url}/token",
                        "device_url": f"{idp.url}/device", "scopes": ["imap", "smtp", "offline_access"]}
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def sign_in(idp: FakeIdp, config) -> None:
    """What `parting login` leaves behind (its own test drives the device grant end to end)."""
    TokenFile(config.parent / "oauth-token.json").save({"refresh_token": idp.issue_refresh_token(),
                                                         "expires_at": 0})


def deliver(dovecot: DovecotServer, tag: str, hour: int) -> str:
    raw, mid = mf.reply("jane@acme.example", f"<req-{tag}@example.com>", f"About {tag}", utc(2026, 11, 1, hour), tag)
    mf.deliver(dovecot, "INBOX", raw)
    return mid.strip("<>")


async def test_an_access_token_expiring_mid_idle_is_renewed_without_missing_mail(config, idp, dovecot_oauth):
    sign_in(idp, config)
    first = deliver(dovecot_oauth, "first", 9)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message(first), timeout=20, what="the first message")
        refreshes = idp.refreshes
        idp.expire_access_tokens()  # the token the IDLE sessions logged in with is dead now ...
        dovecot_oauth.restart()  # ... and the server drops them: reconnecting needs a new one
        second = deliver(dovecot_oauth, "second", 10)
        await daemon.wait_for(lambda: daemon.store.message(second), timeout=30, what="mail after the renewal")
        assert idp.refreshes > refreshes
        assert "sign-in needed" not in daemon.service.status_line()


WAITING = (b"From: office@example.com\r\nTo: jane@acme.example\r\nSubject: Hello\r\n"
           b"Message-ID: <waiting@example.com>\r\n\r\nHello\r\n")


async def test_a_revoked_sign_in_shows_in_status_and_recovers_after_a_new_login(config, idp, dovecot_oauth, sink,
                                                                                  caplog):
    from click.testing import CliRunner

    from daemon.cli import cli

    sign_in(idp, config)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: all(w.connected.is_set() for w in daemon.service.watchers), timeout=20,
                              what="both folders watched")
        idp.revoke_refresh_tokens()
        idp.expire_access_tokens()
        dovecot_oauth.restart()
        meanwhile = [deliver(dovecot_oauth, f"meanwhile{n}", 9 + n) for n in range(3)]
        await daemon.wait_for(lambda: "sign-in needed: run parting login" in daemon.service.status_line(),
                              timeout=30, what="the sign-in problem in the STATUS line")
        status = CliRunner().invoke(cli, ["status", "--config", str(config), "--json"])
        assert '"sign_in": "sign-in needed: run parting login' in status.output
        shown = CliRunner().invoke(cli, ["status", "--config", str(config)], terminal_width=200)
        assert shown.output.startswith("sign-in needed: run parting login"), shown.output
        assert any(r.getMessage().endswith("(sign-in needed: run parting login)") for r in caplog.records)
        assert not any(daemon.store.message(mid) for mid in meanwhile)  # nothing read, nothing lost
        row_id = daemon.store.enqueue("<waiting@example.com>", "nudge", "office@example.com", ["jane@acme.example"],
                                      WAITING, daemon.clock.now())
        await daemon.settle()
        assert daemon.store.row(row_id).attempts == 0 and daemon.store.row(row_id).state == "queued"
        idp.approve_after_polls = 0  # a person runs `parting login` and enters the code at once
        login = CliRunner().invoke(cli, ["login", "--config", str(config)])
        assert login.exit_code == 0 and "signed in with a device code" in login.output, login.output
        await daemon.wait_for(lambda: all(daemon.store.message(mid) for mid in meanwhile), timeout=30,
                              what="the mail that arrived meanwhile")
        await daemon.settle()
        assert "sign-in needed" not in daemon.service.status_line()
        await daemon.wait_for(lambda: daemon.store.row(row_id).state == "sent", timeout=20, what="the send")
        assert [m.login for m in sink.messages] == ["office@example.com"]


async def test_the_rotated_refresh_token_is_used_after_a_restart(config, idp, dovecot_oauth):
    sign_in(idp, config)
    first = deliver(dovecot_oauth, "before", 9)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message(first), timeout=20, what="mail before the restart")
    assert idp.refreshes >= 1 and len(idp.active_refresh_tokens()) == 1  # the enrolled token was rotated away
    idp.expire_access_tokens()  # the next start needs a refresh, which only the rotated token can do
    second = deliver(dovecot_oauth, "after", 10)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message(second), timeout=20, what="mail after the restart")
        assert "sign-in needed" not in daemon.service.status_line()


def test_doctor_checks_the_oauth_sign_in_and_logs_in_with_it(config, idp, dovecot_oauth):
    from click.testing import CliRunner

    from daemon.cli import cli

    before = CliRunner().invoke(cli, ["doctor", "--config", str(config)])
    assert before.exit_code == 1
    assert "✗ OAuth sign-in" in before.stdout and f"fix: run `parting login --config {config}`" in before.stdout
    assert "- IMAP login" in before.stdout and "skipped: needs OAuth sign-in" in before.stdout
    sign_in(idp, config)
    after = CliRunner().invoke(cli, ["doctor", "--config", str(config)])
    assert "✓ OAuth sign-in" in after.stdout, after.stdout
    assert "✓ IMAP login" in after.stdout and "✓ SMTP login" in after.stdout
    idp.expire_access_tokens()
    sign_in(idp, config)
    idp.stop()  # the identity provider cannot be reached: said so, with what to do
    down = CliRunner().invoke(cli, ["doctor", "--config", str(config)])
    assert "✗ OAuth sign-in" in down.stdout and "cannot be reached" in down.stdout
    assert "fix: check the network or proxy to the identity provider" in down.stdout
