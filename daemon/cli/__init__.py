"""The `parting` command line: each command is one call into the library, its docstring its help.

The group and its shared options live in group.py; importing the command modules registers them.
`main` first lets quick.py answer the plainest JSON reports, which need no click; `cli`, the
click group with every command, is built when first asked for (`from daemon.cli import cli`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.cli.group import cli as cli


def main() -> None:
    from daemon.runtime.shutdown import catch_early_stop, is_run_command

    if is_run_command(sys.argv[1:]):
        catch_early_stop()  # a SIGTERM while starting up is a clean stop, not a kill
    else:
        from daemon.cli.quick import run

        status = run(sys.argv[1:])
        if status is not None:
            raise SystemExit(status)
    _group()(prog_name="parting")


def _group() -> Any:
    """The click group, with every command module imported (importing one registers its commands)."""
    from daemon.cli import login, path_commands, reports, service_commands  # noqa: F401 - they register their commands
    from daemon.cli.group import cli

    return cli


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _group()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main()
