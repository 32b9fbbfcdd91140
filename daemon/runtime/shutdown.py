"""A stop request that arrives while the daemon is still starting is kept, not fatal.

Until the event loop installs its own handlers, SIGTERM would kill the process with the default
action (exit -15, with a store half-opened). `catch_early_stop` is called first thing by
`parting run`; the service reads `requested` once its loop handlers are in place.
"""

from __future__ import annotations

requested = False


def _remember(signum: int, frame: object) -> None:
    global requested
    requested = True


def catch_early_stop() -> None:
    import signal  # here: every command starts by asking is_run_command, and only `run` needs it

    signal.signal(signal.SIGTERM, _remember)


def is_run_command(argv: list[str]) -> bool:
    """Whether these arguments (without the program name) start `parting run`, group options
    (`--debug`, the hidden `--clock-file FILE`) skipped."""
    args = list(argv)
    while args and args[0].startswith("-"):
        takes_value = args[0] == "--clock-file"
        args = args[2:] if takes_value else args[1:]
    return args[:1] == ["run"]
