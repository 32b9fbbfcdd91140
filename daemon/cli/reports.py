"""The read-side commands: status, explain, simulate, drafts, outbox, deadlines, pause/resume.

Registered on the `parting` group (daemon/cli/group.py); each is one call into a module of daemon/queries
(or daemon/flows/operator_actions.py for a decision), rendered by daemon/cli/render.py (or printed as JSON with --json).
"""

from __future__ import annotations

import click

from daemon.cli.group import _inherited, _now, _show, _who, cli, config_option, friendly_errors, json_option


@cli.command()
@config_option
@json_option
@friendly_errors
def status(config_path: str, as_json: bool) -> None:
    """Every client's state now, and what waits for a person.

    States are evaluated afresh from the stored mail history (the daemon need not be running);
    a client whose every address bounced is `unreachable` (never escalated: fix the address);
    times are in the working-hours zone. The footer counts drafts in review, outbox rows that
    need a person (uncertain or failed), deadlines due, quarantined messages and triage items.

    \b
    Example: parting status --config /etc/parting/config.yaml
    \b
    --json keys: now, timezone, config,
      clients: [{id, name, owner, owner_name, state, policy, ignored, open_requests, ladder,
                 last_in, last_out, next_due}],
      drafts_in_review, outbox_attention, deadlines_due, quarantined,
      triage: [{id, message_id, client, reason, at}],
      learned_addresses: [{address, client, by, at}]    (times ISO 8601 UTC, null if none)
    """
    from daemon.queries import status

    _show(status.status(config_path, now=_now()), as_json, "status")


@cli.command()
@click.argument("client")
@config_option
@json_option
@friendly_errors
def explain(client: str, config_path: str, as_json: bool) -> None:
    """Why CLIENT is in its state: the evidence in plain words, the rules that fired on which
    messages, the policy and its hash, and what happens next.

    \b
    Example: parting explain acme
    \b
    --json keys: client_id, state, reasons [{rule, message_ids, detail, at}], open_requests,
      ignored_count, next_due, ladder, episode, policy_hash, policy_name, evaluated_at,
      client_name, owner, owner_name, timezone, config, explain [lines], next,
      messages [{id, at, direction, subject}]
    """
    from daemon.queries import explain

    _show(explain.explain(config_path, client, now=_now()), as_json, "explain")


@cli.command()
@click.option("--policy", "policy_path", required=True, metavar="FILE", type=click.Path(dir_okay=False),
              help="A full config, or a file with just `policy:` and/or `policies:`.")
@click.option("--at", "at", metavar="DATE", help="Evaluate at this date or time (working-hours zone) instead of now.")
@config_option
@json_option
@friendly_errors
def simulate(policy_path: str, at: str | None, config_path: str, as_json: bool) -> None:
    """Who would change state under another policy, and why. Changes nothing.

    The stored history is re-evaluated under both policies (read-only: the database file stays
    byte-identical). FILE is a full configuration (its policies are used with this config's
    clients) or a policy-only file; a key it leaves out comes from the main config. --at takes
    2026-11-20 (the start of that day) or '2026-11-20 14:30'.

    \b
    Example: parting simulate --policy stricter.yaml --at 2026-11-20
    \b
    --json keys: now, timezone, config, at, policy_file, policy_hash_before, policy_hash_after,
      changes: [{client, name, before, after, ladder_before, ladder_after, ignored_before,
                 ignored_after, why, rules_fired, rules_cleared}], unchanged
    """
    from daemon.queries import simulate

    _show(simulate.simulate(config_path, policy_path, now=_now(), at=at), as_json, "simulate")


@cli.group(invoke_without_command=True)
@config_option
@json_option
@click.pass_context
@friendly_errors
def drafts(ctx: click.Context, config_path: str, as_json: bool) -> None:
    """Release and nudge drafts: their state, version and who endorsed it.

    \b
    Examples: parting drafts
              parting drafts show 3
    \b
    --json keys: now, timezone, config,
      drafts: [{id, client, client_name, kind, state, subject, version, writer, writer_name,
                endorsements [{person, name, role, how, version, at, via_message_id,
                authentication}], missing, hold_until, created_at, updated_at}]
    """
    if ctx.invoked_subcommand is not None:
        return
    from daemon.queries import listings

    _show(listings.drafts(config_path, now=_now()), as_json, "drafts")


@drafts.command("show")
@click.argument("draft_id", metavar="ID", type=int)
@config_option
@json_option
@friendly_errors
def drafts_show(draft_id: int, config_path: str, as_json: bool) -> None:
    """One draft: its current text, the changes between versions, endorsements and history.

    \b
    Example: parting drafts show 3
    \b
    --json keys: now, timezone, config, draft {as in `parting drafts`}, text,
      versions [{version, writer, writer_name, created_at, text_sha256, text, endorsements}],
      diffs [{from, to, diff}], history [{id, at, kind, who, message_ids, data}], outbox [rows]
    """
    from daemon.queries import listings

    config_path, as_json = _inherited(config_path, as_json)
    _show(listings.draft(config_path, draft_id, now=_now()), as_json, "draft")


@cli.group(invoke_without_command=True)
@config_option
@json_option
@click.pass_context
@friendly_errors
def outbox(ctx: click.Context, config_path: str, as_json: bool) -> None:
    """Every message parting sends, and where its sending stands.

    A row left uncertain (a crash during sending) or failed waits for a person: resend it, or
    cancel it. A duplicate release email is worse than a late one, so look in the Sent folder first.

    \b
    Examples: parting outbox
              parting outbox resend 12
              parting outbox confirm 12
              parting outbox cancel 12
    \b
    --json keys: now, timezone, config,
      rows: [{id, kind, client, client_name, to, subject, state, attempts, last_error, message_id,
              draft_id, created_at, updated_at, sent_at, not_before, next_attempt_at}]
    """
    if ctx.invoked_subcommand is not None:
        return
    from daemon.queries import listings


    _show(listings.outbox(config_path, now=_now()), as_json, "outbox")


@outbox.command("resend")
@click.argument("row_id", metavar="ID", type=int)
@config_option
@json_option
@friendly_errors
def outbox_resend(row_id: int, config_path: str, as_json: bool) -> None:
    """Queue an uncertain or failed row again; recorded with your $USER.

    \b
    Example: parting outbox resend 12
    """
    from daemon.flows import operator_actions

    config_path, as_json = _inherited(config_path, as_json)
    _show(operator_actions.resend_outbox(config_path, row_id, who=_who(), now=_now()), as_json, "outbox_decision")


@outbox.command("confirm")
@click.argument("row_id", metavar="ID", type=int)
@config_option
@json_option
@friendly_errors
def outbox_confirm(row_id: int, config_path: str, as_json: bool) -> None:
    """Mark an uncertain row as delivered after you checked it arrived; recorded with your $USER.

    What a send sets off follows (a release's phone-call and retrospective deadlines). Use it
    instead of resend when the message did reach the recipient: nothing is sent again.

    \b
    Example: parting outbox confirm 12
    """
    from daemon.flows import operator_actions

    config_path, as_json = _inherited(config_path, as_json)
    _show(operator_actions.confirm_outbox(config_path, row_id, who=_who(), now=_now()), as_json, "outbox_decision")


@outbox.command("cancel")
@click.argument("row_id", metavar="ID", type=int)
@config_option
@json_option
@friendly_errors
def outbox_cancel(row_id: int, config_path: str, as_json: bool) -> None:
    """Cancel a queued, uncertain or failed row: it is never sent. Recorded with your $USER.

    \b
    Example: parting outbox cancel 12
    """
    from daemon.flows import operator_actions

    config_path, as_json = _inherited(config_path, as_json)
    _show(operator_actions.cancel_outbox(config_path, row_id, who=_who(), now=_now()), as_json, "outbox_decision")


@cli.group(invoke_without_command=True)
@config_option
@json_option
@click.pass_context
@friendly_errors
def deadlines(ctx: click.Context, config_path: str, as_json: bool) -> None:
    """Follow-up calls and retrospectives: overdue first, then open, then closed.

    \b
    Examples: parting deadlines
              parting deadlines done 4 --note "called Jane, she will reply by Friday"
    \b
    --json keys: now, timezone, config, overdue, open, closed,
      deadlines: [{id, kind, client, client_name, phone, contact, draft_id, due_at, state,
                   status (overdue|open|done|cancelled), reminded_at, closed_at, closed_by, note}]
    """
    if ctx.invoked_subcommand is not None:
        return
    from daemon.queries import listings


    _show(listings.deadlines(config_path, now=_now()), as_json, "deadlines")


@deadlines.command("done")
@click.argument("deadline_id", metavar="ID", type=int)
@click.option("--note", required=True, metavar="TEXT", help="What happened, for the case file.")
@config_option
@json_option
@friendly_errors
def deadlines_done(deadline_id: int, note: str, config_path: str, as_json: bool) -> None:
    """Mark an open deadline done, with a note; recorded with your $USER.

    \b
    Example: parting deadlines done 4 --note "called, left a message"
    """
    from daemon.flows import operator_actions

    config_path, as_json = _inherited(config_path, as_json)
    _show(operator_actions.close_deadline(config_path, deadline_id, note, who=_who(), now=_now()), as_json,
          "deadline_closed")


@cli.command()
@click.argument("client")
@config_option
@json_option
@friendly_errors
def pause(client: str, config_path: str, as_json: bool) -> None:
    """Stop escalating CLIENT (no nudges, notices or drafts) until `parting resume`.

    \b
    Example: parting pause acme
    """
    from daemon.flows import operator_actions

    _show(operator_actions.set_paused(config_path, client, True, who=_who(), now=_now()), as_json, "paused")


@cli.command()
@click.argument("client")
@config_option
@json_option
@friendly_errors
def resume(client: str, config_path: str, as_json: bool) -> None:
    """Evaluate CLIENT again after `parting pause`.

    \b
    Example: parting resume acme
    """
    from daemon.flows import operator_actions

    _show(operator_actions.set_paused(config_path, client, False, who=_who(), now=_now()), as_json, "paused")
