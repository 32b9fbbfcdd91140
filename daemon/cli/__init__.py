"""The `parting` command line: each command is one call into the library, its docstring its help.

The group and its shared options live in group.py; importing the command modules registers them.
"""

from __future__ import annotations

import sys

from daemon.cli import login, path_commands, reports, service_commands  # noqa: F401 - importing them registers their commands
from daemon.cli.group import cli


def main() -> None:
    from daemon.runtime.shutdown import catch_early_stop, is_run_command

    if is_run_command(sys.argv[1:]):
        catch_early_stop()  # a SIGTERM while starting up is a clean stop, not a kill
    cli(prog_name="parting")


if __name__ == "__main__":
    main()
