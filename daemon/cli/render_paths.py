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
