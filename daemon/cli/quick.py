"""The typed JSON reports without click: `parting status|explain CLIENT|drafts|outbox|deadlines --json`.

Why: scripts and people run these reports many times a day, and importing click and building
its command tree is a tenth of each (issue 21: import click only where a command needs it).

Rules of this module:
- click stays the one definition of the command line. Only the plainest form of these five is
  answered here: the command first, `--json`, `--config FILE` (`-c FILE`, `--config=FILE`) and
  explain's CLIENT, each at most as click reads them. Anything else (another option, `--help`,
  a group option such as the test clock, a value that starts with '-', PARTING_DEBUG, a
  terminal that is not UTF-8) is declined: `main` hands the arguments to click unchanged.
- The same answer as the click command: the same query call, the same JSON text (`json_text`,
  which the click commands print too), a PartingError as the same `error:` lines and exit 2.
  tests/test_cli_quick.py holds each form to click's output, and each command's options to the
  ones read here (an option added to one of these commands fails that test until it is read
  here or declined).
- Imports only the query it runs; never click, rich or the command modules.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_CONFIG = "/etc/parting/config.yaml"
CONFIG_ENV = "PARTING_CONFIG"

# command -> how many CLIENT arguments it takes (explain: one).
QUICK_COMMANDS = {"status": 0, "explain": 1, "drafts": 0, "outbox": 0, "deadlines": 0}
# The options of those commands, as click names them (the test compares with the click commands).
QUICK_OPTIONS = ("config_path", "as_json")


def json_text(data: Any) -> str:
    """What `--json` prints (without the final newline): the one format of every command."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def parse(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, str, list[str]] | None:
    """(command, config path, arguments) for a form answered here, or None to leave it to click."""
    if not argv or argv[0] not in QUICK_COMMANDS or environ.get("PARTING_DEBUG"):
        return None
    command, rest = argv[0], list(argv[1:])
    config = environ.get(CONFIG_ENV) or DEFAULT_CONFIG  # click: an empty variable is no variable
    as_json = False
    arguments: list[str] = []
    while rest:
        word = rest.pop(0)
        if word == "--json":
            as_json = True
        elif word in ("--config", "-c"):
            if not rest or rest[0].startswith("-"):
                return None
            config = rest.pop(0)
        elif word.startswith("--config="):
            config = word.removeprefix("--config=")
        elif word.startswith("-"):
            return None
        else:
            arguments.append(word)
    if not as_json or len(arguments) != QUICK_COMMANDS[command]:
        return None
    return command, config, arguments


def answer(command: str, config: str, arguments: list[str]) -> Any:
    """What the click command of the same name passes to --json (daemon/cli/reports.py)."""
    from daemon.runtime.clock import clock_for

    now = clock_for(None).now()
    if command == "status":
        from daemon.queries import status

        return status.status(config, now=now)
    if command == "explain":
        from daemon.queries import explain

        return explain.explain(config, arguments[0], now=now)
    from daemon.queries import listings

    return {"drafts": listings.drafts, "outbox": listings.outbox, "deadlines": listings.deadlines}[command](
        config, now=now)


def _utf8(stream: Any) -> bool:
    return str(getattr(stream, "encoding", "") or "").lower().replace("-", "").replace("_", "") == "utf8"


def run(argv: Sequence[str]) -> int | None:
    """Answer `argv` (without the program name) here and return the exit status, or None when
    click must (nothing has been printed then)."""
    found = parse(argv, os.environ)
    if found is None or not (_utf8(sys.stdout) and _utf8(sys.stderr)):
        return None
    from daemon.core.errors import PartingError

    try:
        data = answer(*found)
        sys.stdout.write(json_text(data) + "\n")
        sys.stdout.flush()
    except PartingError as exc:  # as group.friendly_errors and click's UserError.show print it
        _echo_error([f"error: {line}" for line in exc.lines()])
        return 2
    except (EOFError, KeyboardInterrupt):  # as click's standalone mode
        _echo_error(["", "Aborted!"])
        return 1
    except BrokenPipeError:  # as click: the reader went away; say nothing more
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter's final flush must not fail
        return 1
    return 0


def _echo_error(lines: list[str]) -> None:
    """Lines on stderr as click.echo writes them: ANSI styles removed unless stderr is a terminal."""
    text = "".join(f"{line}\n" for line in lines)
    if not sys.stderr.isatty():
        import re

        text = re.sub(r"\033\[[0-?]*[ -/]*[@-~]", "", text)  # click's own pattern (click._compat._ansi_re)
    sys.stderr.write(text)
    sys.stderr.flush()
