"""Rendering for the commands of daemon/cli/path_commands.py (answered, triage)."""

from __future__ import annotations

from typing import Any

from daemon.cli.render import make_console

Data = dict[str, Any]


def answered(data: Data, console: Any = None) -> None:
    console = console or make_console()
    how = {"phone": "by phone", "meeting": "in a meeting"}.get(data["how"], "outside email")
    console.print(f"{data['name']} ({data['client']}) answered {how} at {data['at']}, recorded by {data['by']}: "
                  f"{data['note']}. A new episode begins ({data['episode']}); the daemon judges the client again.")


def triage(data: Data, console: Any = None) -> None:
    console = console or make_console()
    if not data["items"]:
        console.print("Nothing in triage.")
        return
    for item in data["items"]:
        likely = (f"most likely {item['likely_client']} ({item['likely_because']})" if item["likely_client"]
                  else "no likely client")
        state = f"closed by {item['closed_by']}: {item['note']}" if item["closed_at"] else "open"
        console.print(f"[{item['id']}] {item['received_at']} from {item['from']}: {item['subject']!r}\n"
                      f"    {item['reason']}; {likely}; {state}")
    if data["open"]:
        console.print("Place one with: parting triage assign ID CLIENT [--learn-address] | "
                      "parting triage dismiss ID --note TEXT")


def triage_closed(data: Data, console: Any = None) -> None:
    console = console or make_console()
    if data.get("client"):
        learned = f"; later mail from {data['from']} is theirs too" if data.get("learned_address") else ""
        console.print(f"Triage item {data['id']} ({data['from']}) assigned to {data['client']} by "
                      f"{data['closed_by']}{learned}. The daemon judges {data['client']} again.")
    else:
        console.print(f"Triage item {data['id']} ({data['from']}) dismissed by {data['closed_by']}: {data['note']}")
