"""The `parting` command line: each command is one call into the library, its docstring its help.

The group and its shared options live in group.py; importing the command modules registers them.
`main` first lets quick.py answer the plainest JSON reports, which need no click; `cli`, the
click group with every command, is built when first asked for (`from daemon.cli import cli`).

A report quick.py answers is a short process that makes no reference cycles worth collecting, so
`main` keeps the cycle collector off while it runs (its passes walked every object the imports and
the history made, ~7 ms of `parting status`) and freezes what is left before the exit (the
interpreter's last collection at exit walked it all again, another ~10 ms, to free nothing: the
process ends). Anything click answers runs with the collector on, as before.
"""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from daemon.cli.group import cli as cli


def main() -> None:
    from daemon.runtime.shutdown import catch_early_stop, is_run_command

    if is_run_command(sys.argv[1:]):
        catch_early_stop()  # a SIGTERM while starting up is a clean stop, not a kill
    else:
        gc.disable()
        from daemon.cli.quick import run

        status = run(sys.argv[1:])
        if status is not None:
            gc.freeze()  # the exit's collection leaves frozen objects alone; the OS frees them at once
            raise SystemExit(status)
        gc.enable()
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
