"""The commands that run or check a deployment: check-config, run, doctor, demo, casefile."""

from __future__ import annotations

import click

from daemon.cli.group import (
    UserError,
    _inherited,
    _now,
    _who,
    cli,
    clock_file,
    config_option,
    emit_json,
    friendly_errors,
    json_option,
)


@cli.command("check-config")
@click.argument("file", required=False, type=click.Path(dir_okay=False))
@config_option
@friendly_errors
def check_config(file: str | None, config_path: str) -> None:
    """Check a configuration file: syntax, keys, types, references and policy sanity.

    Prints every problem as FILE:LINE: KEY: MESSAGE and exits 2, or prints a summary and exits 0.
    Secret files and the database folder are checked when `parting run` starts.

    Example: parting check-config /etc/parting/config.yaml
    """
    from daemon.runtime.app import check_config as run_check

    for line in run_check(file or config_path):
        click.echo(line)


@cli.command()
@config_option
@click.option("--once", is_flag=True, help="One full cycle (catch up, decide, send), then exit: for cron and debugging.")
@click.option("--tick", type=click.FloatRange(min=0.05), default=60.0, show_default=True, metavar="SECONDS",
              help="How often to look again when no mail arrives (deadlines fall due without mail); a tick"
                   " judges only clients whose verdict may have changed, everyone at least hourly.")
@click.option("--grace", type=click.FloatRange(min=0), default=20.0, show_default=True, metavar="SECONDS",
              help="At SIGTERM, how long a send in flight may take to finish before it is cut off"
                   " (its outbox row then waits, recoverable, for the next start).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="One event per line on stdout; json for log shippers.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
@friendly_errors
def run(config_path: str, once: bool, tick: float, grace: float, log_format: str, log_level: str) -> None:
    """Run the daemon: watch the mailbox, apply the policy, handle review replies, send.

    Under systemd it reports READY=1, STATUS= and WATCHDOG=1; SIGHUP re-reads the
    configuration (a broken file is refused and the old one kept), SIGTERM stops within
    a bounded time.

    Example: parting run --config /etc/parting/config.yaml
    """
    from daemon.runtime.app import run_service

    raise SystemExit(run_service(config_path, once=once, tick=tick, grace=grace, log_format=log_format,
                                 log_level=log_level, clock_file=clock_file()))


@cli.command()
@config_option
@json_option
@friendly_errors
def doctor(config_path: str, as_json: bool) -> None:
    """Check a deployment end to end: config, secrets, database, IMAP, SMTP, templates, mode.

    Each check prints ✓ and what it found, or ✗ and exactly what to fix (! is a warning,
    - a check skipped because one it needs failed). Nothing is changed: no mail is sent, the
    database is opened read-only and IMAP folders are only examined. Run it as the service user
    with the service's environment, so secrets and folders are seen as `parting run` sees them.
    Exits 0 when every check passes, 1 when one fails, 2 when the config file cannot be
    loaded (its problems are listed as by check-config).

    \b
    Example: parting doctor --config /etc/parting/config.yaml
    \b
    --json keys: ok, checks: [{name, ok, detail, fix, warning}]
    """
    import asyncio

    from daemon.queries.doctor import as_json as checks_json
    from daemon.queries.doctor import config_problems, report_lines, run_checks

    checks = asyncio.run(run_checks(config_path))
    unusable = config_problems(checks)
    if as_json:
        emit_json(checks_json(checks))
    elif unusable:
        raise UserError(unusable)
    else:
        for line in report_lines(checks):
            click.echo(line)
    raise SystemExit(2 if unusable else 0 if all(check.ok for check in checks) else 1)


@cli.command()
@click.option("--workdir", metavar="DIR", type=click.Path(file_okay=False),
              help="Where the config, secrets, database, SMTP record and case file go"
                   " (default: a fresh temporary folder, printed).")
@click.option("--keep", is_flag=True, help="Leave the mail servers and the daemon running, with their ports and"
                                           " logins printed, until Ctrl-C.")
@friendly_errors
def demo(workdir: str | None, keep: bool) -> None:
    """The whole practice, end to end, in under a minute, with nothing to set up.

    Starts an IMAP server (pymap) and a recording SMTP server (aiosmtpd) in this process on
    127.0.0.1, fills the mailbox of a small company whose client Acme stops answering while
    Globex answers, and runs the real daemon against them with a simulated clock: the verdict
    and its evidence, the nudge and the note to the owner, the release draft, the owner's and a
    colleague's APPROVE by reply, the release email sent once, the phone-call deadline, the case
    file and the status table. Nothing is sent anywhere else; nothing is left running.

    \b
    Example: parting demo
             parting demo --workdir ./demo --keep
    """
    try:
        from daemon.demo import run_demo
    except ImportError as missing:
        raise UserError(f"the demo needs the `demo` extra ({missing.name} is missing):"
                        " pip install 'parting[demo]'") from None
    run_demo(workdir, keep=keep)


# ---- the case file ------------------------------------------------------------------------------


class _ClientOrCommand(click.Group):
    """`parting casefile CLIENT`: a first word that is not a subcommand is a client, shown by the
    hidden `show` subcommand. So a client whose id is a subcommand's name ("note", "show") is
    reached with `parting casefile show note`."""

    def resolve_command(self, ctx: click.Context, args: list[str]):  # noqa: ANN201 - click API
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            return "show", self.commands["show"], args
        return super().resolve_command(ctx, args)


@cli.group(cls=_ClientOrCommand, invoke_without_command=True,
           subcommand_metavar="CLIENT [--format md|html|json] [--output FILE] | note CLIENT TEXT")
@config_option
@click.pass_context
def casefile(ctx: click.Context, config_path: str) -> None:
    """One client's case file: every message in and out (with its content hash), each verdict
    with the rules that fired and the policy hash, every draft version and its changes, each
    review decision and how its sender was authenticated, each send with the server's reply,
    the deadlines and how they closed, refused replies, and your notes; all in time order.

    The HTML form is one self-contained page (no scripts, nothing fetched) that prints well,
    with a picture of the relationship at the top. parting also writes the case file beside
    the database, in casefiles/, when a release email has been sent.

    \b
    Examples: parting casefile acme                  (Markdown on stdout)
              parting casefile acme --format html --output acme.html
              parting casefile acme --format json    (docs/casefile.schema.json)
              parting casefile note acme "Called Jane: they changed suppliers in May."
              parting casefile show note             (a client whose id is "note")

    \b
    After CLIENT:
      --format md|html|json  Markdown (the default), a printable HTML page, or JSON (or --json)
      --output FILE          write it to FILE (atomically) instead of printing it
    """
    if ctx.invoked_subcommand is None:
        raise click.UsageError("name a client: parting casefile CLIENT (see --help)")


@casefile.command("show", hidden=True)
@click.argument("client")
@click.option("--format", "fmt", type=click.Choice(["md", "html", "json"]), default="md", show_default=True,
              help="Markdown, a printable HTML page, or JSON (docs/casefile.schema.json).")
@click.option("--output", "-o", metavar="FILE", type=click.Path(dir_okay=False),
              help="Write the case file to FILE (atomically) instead of printing it.")
@config_option
@json_option
@friendly_errors
def casefile_show(client: str, fmt: str, output: str | None, config_path: str, as_json: bool) -> None:
    """CLIENT's case file: `parting casefile CLIENT` is short for `parting casefile show CLIENT`.
    --json is short for --format json."""
    from daemon.flows.casefiles import write_text_atomically
    from daemon.queries.casefile.build import casefile_text

    config_path, _ = _inherited(config_path)
    fmt = "json" if as_json else fmt
    text = casefile_text(config_path, client, fmt, now=_now())
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        path = write_text_atomically(output, text)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror or error}") from None
    click.echo(f"Case file of {client} written to {path} ({fmt}).", err=True)


@casefile.command("note")
@click.argument("client")
@click.argument("text")
@config_option
@json_option
@friendly_errors
def casefile_note(client: str, text: str, config_path: str, as_json: bool) -> None:
    """Keep a note in CLIENT's case file: a retrospective answer, what a call brought.
    Recorded with your $USER and the time; shown in the timeline and under Notes.

    \b
    Example: parting casefile note acme "They never had a contact person after March."
    --json keys: id, client, name, author, text, at
    """
    from daemon.flows.casefiles import add_note

    config_path, as_json = _inherited(config_path, as_json)
    note = add_note(config_path, client, text, who=_who(), now=_now())
    if as_json:
        emit_json(note)
    else:
        click.echo(f"Note {note['id']} kept in the case file of {note['name']} ({note['client']}),"
                   f" by {note['author']}.")
