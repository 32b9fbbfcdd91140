"""The library behind the CLI: each command is one call here, returning data the CLI renders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from daemon.adapters.settings.load import load_settings
from daemon.core.policy import policy_hash

_CLIENT_AUTH = {"private_key_jwt": "certificate (private_key_jwt: a JWT signed with the app's private key)",
                "client_secret_post": "client secret (client_secret_post)", "none": "none (public client)"}


def check_config(path: str | Path) -> list[str]:
    """Validate a configuration file; returns a short summary, raises SettingsError listing every problem."""
    settings = load_settings(path)
    reviewers = ", ".join(settings.review.reviewers)
    named = f" (+ named: {', '.join(sorted(settings.policies))})" if settings.policies else ""
    lines = [
        f"{path}: OK",
        f"  mailbox {settings.mailbox.address}: IMAP {settings.mailbox.imap.host}, SMTP {settings.mailbox.smtp.host}"
        + (" (dry run: nothing is sent)" if settings.mode == "dry_run" else ""),
        f"  {len(settings.people)} people, {len(settings.clients)} clients, reviewers: {reviewers}",
        f"  policy {policy_hash(settings.policy)}{named}: expects replies to {settings.policy.expects_reply},"
        f" ignored after {settings.policy.ignored_after}",
        "  secret files and the database folder are checked when `parting run` starts",
    ]
    mailbox = settings.mailbox
    if mailbox.provider != "generic" or mailbox.auth != "password":
        lines.append(f"  provider {mailbox.provider}, sign-in {mailbox.auth}"
                     + (f" (token file {mailbox.oauth.token_file}; `parting login` writes it)" if mailbox.oauth else ""))
    if mailbox.oauth is not None:
        lines.append(f"  client authentication: {_CLIENT_AUTH[mailbox.oauth.client_authentication]}")
    for key, value in mailbox.preset_filled:
        lines.append(f"  filled by provider {mailbox.provider}: {key} = {value}")
    if not settings.review.require_authentication:
        lines.append("  WARNING: review.require_authentication is false: replies are trusted without"
                     " Authentication-Results (test setups only)")
    return lines


def login(config_path: str | Path, *, flow: str | None = None, browser: bool = True, revoke: bool = False,
          say: Callable[[str], None] = print, ask: Callable[[str], str] = input) -> list[str]:
    """Sign the mailbox in with OAuth2 (mailbox.auth: oauth2) and write the token file (or, with
    `revoke`, revoke the refresh token and delete the file); what was done."""
    import webbrowser

    from daemon.adapters.oauth import OAuthProblem
    from daemon.adapters.oauth_login import Interaction, sign_out
    from daemon.adapters.oauth_login import login as sign_in
    from daemon.adapters.settings.secret_files import load_secrets

    settings = load_settings(config_path)
    oauth = settings.mailbox.oauth
    if oauth is None:
        raise OAuthProblem(f"{config_path}: mailbox.auth is password, so there is nothing to sign in: set "
                           "mailbox.auth: oauth2 and mailbox.oauth.client_id first (README: Microsoft 365)")
    secrets = load_secrets(settings)
    if revoke:
        return [f"signed out {settings.mailbox.address}: {sign_out(oauth, secrets.oauth_client_auth)}"]
    result = sign_in(oauth, secrets.oauth_client_auth, flow=flow,
                     # Without a browser here the redirect cannot reach this machine: ask for the address at once.
                     io=Interaction(say=say, ask=ask, open_browser=webbrowser.open if browser else None,
                                    loopback_wait=300.0 if browser else 0.0))
    how = {"device": "with a device code", "browser": "through the browser (PKCE)",
           "client_credentials": "as the app itself (client credentials)"}[result.flow]
    proof = "certificate" if secrets.oauth_client_certificate else "secret"
    kept = "a refresh token" if result.has_refresh_token else f"an access token (renewed with the app's {proof})"
    return [f"signed in {how} for {settings.mailbox.address}",
            f"  client authentication: {_CLIENT_AUTH[oauth.client_authentication]}",
            f"  {kept} written to {result.token_file} (mode 0600; never in the config or the log)",
            "  a running `parting run` picks it up by itself; check with `parting doctor`"]


def run_service(config_path: str | Path, *, once: bool = False, tick: float = 60.0, grace: float = 20.0,
                log_format: str = "text", log_level: str = "info", clock_file: str | Path | None = None) -> int:
    """Run the daemon until SIGTERM (or one cycle with `once`); returns the exit status.
    `clock_file` (tests and benchmarks only) makes it read `now` from that file, with a warning."""
    import asyncio
    import sys

    from daemon.runtime.clock import FileClock, clock_for
    from daemon.runtime.logs import get_logger, setup_logging
    from daemon.runtime.progress import progress_reporter
    from daemon.runtime.service import Service

    setup_logging(log_format, log_level)
    clock = clock_for(clock_file)
    if isinstance(clock, FileClock):
        get_logger("service").warning("TEST CLOCK: time is read from %s (--clock-file)", clock.path)
    service = Service(config_path, clock=clock, tick=tick, grace=grace,
                      on_progress=progress_reporter(sys.stderr.isatty()))
    return asyncio.run(service.run(once=once))
