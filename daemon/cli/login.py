"""`parting login`: sign the company mailbox in with OAuth2 once; the daemon renews from then on."""

from __future__ import annotations

import click

from daemon.cli.group import cli, config_option, friendly_errors


@cli.command()
@config_option
@click.option("--flow", type=click.Choice(["device", "browser", "client_credentials"]), default=None,
              help="Override mailbox.oauth.flow for this sign-in.")
@click.option("--no-browser", is_flag=True,
              help="Browser flow: only print the address; paste back the address the browser ends on.")
@click.option("--revoke", is_flag=True, help="Sign out instead: revoke the refresh token and delete the token file.")
@friendly_errors
def login(config_path: str, flow: str | None, no_browser: bool, revoke: bool) -> None:
    """Sign the mailbox in with OAuth2 (mailbox.auth: oauth2) and keep the refresh token.

    Device flow (Microsoft 365's default): prints an address and a code to enter on any device.
    Browser flow (Google): opens the sign-in page and catches the answer on a loopback port; on a
    server without a browser, open the printed address elsewhere and paste back where it lands.
    client_credentials (Microsoft 365): the app signs in with its own secret, no person at all.
    The token is written to mailbox.oauth.token_file in the state folder (mode 0600); a running
    daemon picks it up and reads the mail that arrived while it could not sign in.
    --revoke signs out: the refresh token is revoked at the provider and the file deleted.

    \b
    Example: parting login --config /etc/parting/config.yaml
    """
    from daemon.runtime.app import login as run_login

    for line in run_login(config_path, flow=flow, browser=not no_browser, revoke=revoke, say=click.echo,
                          ask=lambda prompt: click.prompt(prompt, prompt_suffix="")):
        click.echo(line)
