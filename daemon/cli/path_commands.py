"""Commands for what happened outside the mailbox: an answer by phone or in a meeting, and triage."""

from __future__ import annotations

import click

from daemon.cli.group import _now, _show, _who, cli, config_option, friendly_errors, json_option


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
