"""Commands for what happened outside the mailbox: an answer by phone or in a meeting, and triage."""

from __future__ import annotations

import click

from daemon.cli.group import _inherited, _now, _show, _who, cli, config_option, friendly_errors, json_option


@cli.command()
@click.argument("client")
@click.option("--by", "how", required=True, type=click.Choice(["phone", "meeting", "other"]),
              help="How the client answered.")
@click.option("--note", required=True, metavar="TEXT", help="What the client said, for the case file.")
@click.option("--at", "at", metavar="WHEN", help="When they answered (2026-11-03 14:30, local time); default now.")
@config_option
@json_option
@friendly_errors
def answered(client: str, how: str, note: str, at: str | None, config_path: str, as_json: bool) -> None:
    """Record that CLIENT answered outside email: it answers the open requests like a real reply
    (a new episode begins), and shows in `explain` and the case file. Recorded with your $USER.

    \b
    Example: parting answered acme --by phone --note "Jane will send the form on Friday"
             parting answered acme --by meeting --note "met at the fair" --at "2026-11-03 14:30"
    \b
    --json keys: client, name, record_id, how, note, by, at, recorded_at, episode
    """
    from daemon.cli import render_paths
    from daemon.flows.answered import answered_from_command

    _show(answered_from_command(config_path, client, how=how, note=note, at=at, who=_who(), now=_now()), as_json,
          render_paths.answered)


@cli.group(invoke_without_command=True)
@config_option
@json_option
@click.option("--all", "include_closed", is_flag=True, help="Closed items too.")
@click.pass_context
@friendly_errors
def triage(ctx: click.Context, config_path: str, as_json: bool, include_closed: bool) -> None:
    """Messages from unknown addresses set aside for a person, and whose they most likely are.

    \b
    Examples: parting triage
              parting triage assign 3 acme --learn-address
              parting triage dismiss 4 --note "a newsletter"
    \b
    --json keys: now, timezone, config, open,
      items: [{id, message_id, from, subject, at, received_at, reason, likely_client, likely_because,
               closed_at, closed_by, note}]
    """
    if ctx.invoked_subcommand is not None:
        return
    from daemon.cli import render_paths
    from daemon.queries.triage import triage as listing

    _show(listing(config_path, now=_now(), include_closed=include_closed), as_json, render_paths.triage)


@triage.command("assign")
@click.argument("triage_id", metavar="ID", type=int)
@click.argument("client")
@click.option("--learn-address", is_flag=True, help="Later mail from the sender's address is CLIENT's too.")
@config_option
@json_option
@friendly_errors
def triage_assign(triage_id: int, client: str, learn_address: bool, config_path: str, as_json: bool) -> None:
    """The message of triage item ID is CLIENT's from now on: it counts in CLIENT's history (a reply
    answers the open requests) and the daemon judges CLIENT again. Recorded with your $USER.

    \b
    Example: parting triage assign 3 acme --learn-address
    \b
    --json keys: those of an item of `parting triage --json`, client, learned_address
    """
    from daemon.cli import render_paths
    from daemon.flows.triage import assign_from_command

    config_path, as_json = _inherited(config_path, as_json)
    _show(assign_from_command(config_path, triage_id, client, learn_address=learn_address, who=_who(), now=_now()),
          as_json, render_paths.triage_closed)


@triage.command("dismiss")
@click.argument("triage_id", metavar="ID", type=int)
@click.option("--note", required=True, metavar="TEXT", help="Why the message needs nothing, for the record.")
@config_option
@json_option
@friendly_errors
def triage_dismiss(triage_id: int, note: str, config_path: str, as_json: bool) -> None:
    """Close triage item ID: the message needs nothing. Recorded with your $USER and the note.

    \b
    Example: parting triage dismiss 4 --note "a newsletter"
    \b
    --json keys: those of an item of `parting triage --json`
    """
    from daemon.cli import render_paths
    from daemon.flows.triage import dismiss_from_command

    config_path, as_json = _inherited(config_path, as_json)
    _show(dismiss_from_command(config_path, triage_id, note, who=_who(), now=_now()), as_json,
          render_paths.triage_closed)
