"""How the reports look to a person: rich tables and plain words, readable at 100 columns.

Rules of this module:
- Views only lay out what daemon/queries returned; nothing is computed here that a `--json`
  reader would miss.
- Times are shown in the report's zone as "Mon 2 Nov 10:00" (with the year when it is not the
  year of `now`), the same in every locale.
- Colour only marks states and things that need a person; rich drops it when the output is not
  a terminal, and honours NO_COLOR.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from daemon.core import events

Data = dict[str, Any]

STATE_STYLES = {
    "active": "green", "awaiting": "cyan", "overdue": "yellow", "unresponsive": "bold red", "unreachable": "bold magenta",
    "paused": "magenta", "exempt": "dim",
    # drafts
    "owner_review": "cyan", "second_review": "cyan", "held": "magenta", "sendable": "yellow",
    "rejected": "dim", "sent": "green",
    # outbox
    "queued": "cyan", "sending": "yellow", "failed": "bold red", "uncertain": "bold red", "cancelled": "dim",
    # deadlines
    "open": "cyan", "overdue_deadline": "bold red", "done": "green",
}
NONE = "-"


def make_console() -> Console:
    """A console on stdout: the terminal's width, or 100 columns (or $COLUMNS) when piped."""
    width = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 100)
    # Subjects and reasons are shown as written: no [markup] or :emoji: codes are interpreted.
    return Console(width=width, highlight=False, markup=False, emoji=False)


def when(iso: str | None, data: Data, empty: str = NONE, *, weekday: bool = True) -> str:
    """An ISO time from a report in its zone: 'Mon 2 Nov 10:00', with the year if not now's;
    without `weekday`, '2 Nov 10:00' (for narrow bookkeeping columns)."""
    if not iso:
        return empty
    text = wording(data).when(iso)
    return text if weekday else text.split(" ", 1)[1]


def state(name: str, style_key: str | None = None) -> Text:
    return Text(name, style=STATE_STYLES.get(style_key or name, ""))


def _table(title: str | None = None, **options: Any) -> Table:
    return Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
                 header_style="bold", pad_edge=False, collapse_padding=True, **options)


def _columns(table: Table, *names: str, wrap: tuple[str, ...] = (), right: tuple[str, ...] = ()) -> None:
    """Columns that never wrap (times, states, numbers) except those named in `wrap`."""
    for name in names:
        table.add_column(name, no_wrap=name not in wrap, overflow="fold",
                         justify="right" if name in right else "left")


def _count(label: str, number: int, alarming: bool = True) -> Text:
    style = "bold yellow" if number and alarming else ""
    return Text.assemble(f"{label}: ", (str(number), style))


# ---- status -------------------------------------------------------------------------------------


def status(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    if data.get("sign_in"):
        console.print(Text(data["sign_in"], style="bold red"))
    table = _table(f"{len(data['clients'])} clients, as of {when(data['now'], data)} ({data['timezone']})")
    # Owners by id: at 100 columns the client's name needs the room more.
    _columns(table, "Client", "Owner", "State", "Ign.", "Open", "Last in", "Last out", "Next due",
             wrap=("Client", "Owner"), right=("Ign.", "Open"))
    for row in data["clients"]:
        table.add_row(
            Text.assemble((row["id"], "bold"), "\n", row["name"]), row["owner"], state(row["state"]),
            str(row["ignored"]), str(row["open_requests"]), when(row["last_in"], data, "never"),
            when(row["last_out"], data, "never"), when(row["next_due"], data),
        )
    if not data["clients"]:
        table.add_row("no clients in the configuration", "", "", "", "", "", "", "")
    console.print(table)
    console.print(Text("  ").join([
        _count("Drafts in review", data["drafts_in_review"]),
        _count("Outbox needing a person", data["outbox_attention"]),
        _count("Deadlines due", data["deadlines_due"]),
        _count("Quarantined", data["quarantined"]),
        _count("Triage", len(data["triage"])),
    ]))
    for item in data["triage"][:3]:
        console.print(f"  triage #{item['id']}: {item['reason']} ({item['message_id']}, {when(item['at'], data)})")
    if len(data["triage"]) > 3:
        console.print(f"  ... and {len(data['triage']) - 3} more triage item(s)")
    for learned in data.get("learned_addresses", []):
        console.print(f"  learned address {learned['address']} -> {learned['client']} (by {learned['by']}, "
                      f"{when(learned['at'], data)}; add it to clients[].addresses to keep it in the YAML)")
    for item in data.get("parked", []):
        console.print(f"  set aside: {item['what']}: {item['reason']} ({when(item['at'], data)})")


# ---- explain ------------------------------------------------------------------------------------


def explain(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(Text.assemble((f"{data['client_name']} ({data['client_id']})", "bold"), ": ",
                                state(data["state"]), f"  owner {data['owner_name']}"))
    console.print()
    console.print(Text("Evidence", style="bold"))
    for line in data["explain"][1:-1]:
        console.print(Padding(Text(line), (0, 0, 0, 2)))
    console.print()
    subjects = {m["id"]: m["subject"] for m in data["messages"]}
    table = _table("Rules that fired")
    _columns(table, "Rule", "Messages", "Detail", wrap=("Messages", "Detail"))
    for hit in data["reasons"]:
        messages = "\n".join(f"{mid} {subjects.get(mid, '')!r}" for mid in hit["message_ids"]) or NONE
        table.add_row(hit["rule"], messages, hit["detail"])
    console.print(table)
    console.print(f"Policy {data['policy_name']!r} [{data['policy_hash']}], times in {data['timezone']}.")
    console.print(Text(data["next"], style="bold"))


# ---- simulate -----------------------------------------------------------------------------------


def simulate(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    hashes = (f"policy {data['policy_hash_before']} -> {data['policy_hash_after']}"
              if data["policy_hash_before"] != data["policy_hash_after"] else f"policy {data['policy_hash_after']}")
    console.print(Text.assemble(("Simulated ", "bold"), f"{data['policy_file']} at {when(data['at'], data)} "
                                f"({data['timezone']}); default {hashes}."))
    if data["changes"]:
        table = _table(f"{len(data['changes'])} client(s) would change")
        _columns(table, "Client", "State", "Ladder", "Why", wrap=("Ladder", "Why"))
        for change in data["changes"]:
            moved = Text.assemble(state(change["before"]), " -> ", state(change["after"])) \
                if change["before"] != change["after"] else Text.assemble("still ", state(change["after"]))
            ladder = "unchanged" if change["ladder_before"] == change["ladder_after"] else \
                f"{', '.join(change['ladder_before']) or 'none'} -> {', '.join(change['ladder_after']) or 'none'}"
            why = [f"now: {hit['detail']}" for hit in change["rules_fired"]]
            why += [f"no longer: {hit['detail']}" for hit in change["rules_cleared"]]
            table.add_row(change["client"], moved, ladder, "\n".join(why) or change["why"].split(": ", 1)[-1])
        console.print(table)
    else:
        console.print("No client would change state or ladder.")
    console.print(f"{data['unchanged']} client(s) unchanged. Nothing was written: the database was only read.")


# ---- drafts -------------------------------------------------------------------------------------


def _endorsed(row: Data) -> str:
    return "\n".join(f"{e['name']} ({e['role']}) {e['how']}" for e in row["endorsements"]) or "nobody yet"


def drafts(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    table = _table(f"{len(data['drafts'])} draft(s)")
    _columns(table, "ID", "Client", "Kind", "State", "Ver.", "Endorsed", "Created", "Updated",
             wrap=("Client", "Endorsed"), right=("ID", "Ver."))
    for row in data["drafts"]:
        table.add_row(str(row["id"]), row["client"], row["kind"], state(row["state"]), str(row["version"]),
                      _endorsed(row), when(row["created_at"], data, weekday=False),
                      when(row["updated_at"], data, weekday=False))
    console.print(table)
    if not data["drafts"]:
        console.print("No drafts: the policy has proposed no release or nudge yet.")
    else:
        console.print("See one with: parting drafts show ID")


def draft(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    row = data["draft"]
    console.print(Text.assemble((f"Draft {row['id']}", "bold"), f": {row['kind']} for {row['client_name']} "
                                f"({row['client']}), ", state(row["state"]), f", version {row['version']}"
                                f" by {row['writer_name']}"))
    if row["hold_until"]:
        console.print(f"Held until {when(row['hold_until'], data)}.")
    if row["missing"]:
        console.print(Text(f"Before it can be sent: {row['missing']}.", style="yellow"))
    console.print(Panel(data["text"].rstrip("\n") or "(empty)", title=f"Subject: {row['subject']}",
                        title_align="left", box=box.ROUNDED))
    endorsements = _table("Endorsements")
    _columns(endorsements, "Version", "Person", "How", "When", "Authentication", wrap=("Person", "Authentication"),
             right=("Version",))
    for version in data["versions"]:
        for e in version["endorsements"]:
            endorsements.add_row(str(version["version"]), f"{e['name']} ({e['role']})", e["how"], when(e["at"], data),
                                 _authentication(e["authentication"]))
    if endorsements.row_count:
        console.print(endorsements)
    for diff in data["diffs"]:
        console.print(Text(f"Changes from version {diff['from']} to {diff['to']}", style="bold"))
        console.print(_diff_text(diff["diff"]) if diff["diff"] else Text("  (same text)"))
    history = _table("History")
    _columns(history, "When", "What", wrap=("What",))
    for event in data["history"]:
        history.add_row(when(event["at"], data), describe_event(event, data))
    for out in data["outbox"]:
        if out["sent_at"]:
            history.add_row(when(out["sent_at"], data), f"outbox row {out['id']} sent to {', '.join(out['to'])}")
    console.print(history)


def _diff_text(diff: str) -> Text:
    text = Text()
    for line in diff.splitlines():
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else \
            "cyan" if line.startswith("@@") else ""
        text.append("  " + line + "\n", style=style)
    return text


def _authentication(verdict: dict[str, Any] | None) -> str:
    return events.authentication_words(verdict)


def describe_event(event: Data, data: Data) -> str:
    """One event of a draft's history in plain words (the words are declared in core/events.py)."""
    return events.describe(event["kind"], event["data"], event["who"], wording(data))


def wording(data: Data) -> events.Wording:
    """How a report's times read in event words: its zone, and its `now` to leave out the year."""
    return events.Wording(ZoneInfo(data["timezone"]), datetime.fromisoformat(data["now"]) if data.get("now") else None)


# ---- outbox -------------------------------------------------------------------------------------


def outbox(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    table = _table(f"{len(data['rows'])} outbox row(s)")
    _columns(table, "ID", "Kind", "Client", "To", "State", "Tries", "Last error", "Created", "Sent",
             wrap=("Kind", "Client", "Last error"), right=("ID", "Tries"))
    for row in data["rows"]:
        table.add_row(str(row["id"]), row["kind"], row["client"] or NONE, "\n".join(row["to"]), state(row["state"]),
                      str(row["attempts"]), row["last_error"] or NONE, when(row["created_at"], data, weekday=False),
                      when(row["sent_at"], data, weekday=False))
    console.print(table)
    waiting = [row for row in data["rows"] if row["state"] in ("uncertain", "failed")]
    if waiting:
        console.print(Text(f"{len(waiting)} row(s) need a person: parting outbox resend ID | parting outbox cancel ID",
                           style="yellow"))


def outbox_decision(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(Text.assemble(f"Outbox row {data['id']} ({data['kind']} to {', '.join(data['to'])}): ",
                                state(data["from_state"]), " -> ", state(data["state"]), f", by {data['by']}."))


# ---- deadlines ----------------------------------------------------------------------------------


def deadlines(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    table = _table(f"Deadlines: {data['overdue']} overdue, {data['open']} open, {data['closed']} closed")
    _columns(table, "ID", "Status", "Kind", "Client", "Call", "Due", "Closed", wrap=("Client", "Closed"),
             right=("ID",))
    for row in data["deadlines"]:
        closed = NONE
        if row["closed_at"]:
            note = f": {row['note']}" if row["note"] else ""
            closed = f"{when(row['closed_at'], data)} by {row['closed_by']}{note}"
        style = "overdue_deadline" if row["status"] == "overdue" else row["status"]
        call = "\n".join(part for part in (row["contact"], row["phone"]) if part) or NONE
        table.add_row(str(row["id"]), state(row["status"], style), row["kind"].replace("_", " "), row["client"], call,
                      when(row["due_at"], data), closed)
    console.print(table)
    if data["open"]:
        console.print("Close one with: parting deadlines done ID --note 'what happened'")


def deadline_closed(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    console.print(f"Deadline {data['id']} ({data['kind'].replace('_', ' ')}, {data['client_name']}) is done, "
                  f"by {data['closed_by']}: {data['note']}")


# ---- pause / resume -----------------------------------------------------------------------------


def paused(data: Data, console: Console | None = None) -> None:
    console = console or make_console()
    word = "paused" if data["paused"] else "resumed"
    if data["changed"]:
        detail = ("parting will not escalate it until `parting resume`" if data["paused"]
                  else "it is evaluated again from its whole history")
        console.print(f"{data['name']} ({data['client']}) {word} by {data['by']}: {detail}.")
    else:
        was = "was already paused" if data["paused"] else "was not paused"
        console.print(f"{data['name']} ({data['client']}) {was}: nothing changed.")
