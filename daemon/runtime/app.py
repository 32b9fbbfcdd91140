"""The library behind the CLI: each command is one call here, returning data the CLI renders."""

from __future__ import annotations

from pathlib import Path

from daemon.adapters.settings.load import load_settings
from daemon.core.policy import policy_hash


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
    for key, value in mailbox.preset_filled:
        lines.append(f"  filled by provider {mailbox.provider}: {key} = {value}")
    if not settings.review.require_authentication:
        lines.append("  WARNING: review.require_authentication is false: replies are trusted without"
                     " Authentication-Results (test setups only)")
    return lines


def run_service(config_path: str | Path, *, once: bool = False, tick: float = 60.0, grace: float = 20.0,
                log_format: str = "text", log_level: str = "info") -> int:
    """Run the daemon until SIGTERM (or one cycle with `once`); returns the exit status."""
    import asyncio
    import sys

    from daemon.runtime.clock import FileClock, clock_from_environment
    from daemon.runtime.logs import get_logger, setup_logging
    from daemon.runtime.progress import progress_reporter
    from daemon.runtime.service import Service

    setup_logging(log_format, log_level)
    clock = clock_from_environment()
    if isinstance(clock, FileClock):
        get_logger("service").warning("TEST CLOCK: time is read from %s (PARTING_TEST_CLOCK_FILE)", clock.path)
    service = Service(config_path, clock=clock, tick=tick, grace=grace,
                      on_progress=progress_reporter(sys.stderr.isatty()))
    return asyncio.run(service.run(once=once))
