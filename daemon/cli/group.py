"""The `parting` group and what its commands share: options, error display, JSON output, the clock.

Every command module registers its commands on `cli` here; nothing here imports a command module,
so the commands can import this without a cycle."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from datetime import datetime
from typing import Any

import click

from daemon import __version__
from daemon.cli.quick import CONFIG_ENV, DEFAULT_CONFIG, json_text


class UserError(click.ClickException):
    """A problem the user can fix: printed as lines, exit 2, no traceback."""

    exit_code = 2

    def __init__(self, lines: str | list[str]) -> None:
        self.lines = [lines] if isinstance(lines, str) else list(lines)
        super().__init__("\n".join(self.lines))

    def show(self, file=None) -> None:  # noqa: D401 - click API
        for line in self.lines:
            click.echo(f"error: {line}", err=True)


def config_option(func: Callable) -> Callable:
    return click.option(
        "--config", "-c", "config_path", metavar="FILE", envvar=CONFIG_ENV, default=DEFAULT_CONFIG,
        show_default=True, help="The YAML configuration (or $PARTING_CONFIG).",
    )(func)


def json_option(func: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(func)


def friendly_errors(func: Callable) -> Callable:
    """Turn the library's user-facing errors into `error:` lines and exit 2 (tracebacks with --debug)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from daemon.core.errors import PartingError

        try:
            return func(*args, **kwargs)
        except PartingError as exc:
            if os.environ.get("PARTING_DEBUG"):
                raise
            raise UserError(exc.lines()) from None

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json_text(data))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="parting")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--clock-file", metavar="FILE", type=click.Path(dir_okay=False), hidden=True,
              help="Tests and benchmarks only: read `now` from this file (an ISO time; real time while it is "
                   "absent). Every command that uses it says so on stderr, and `run` logs it as a warning.")
def cli(debug: bool, clock_file: str | None) -> None:
    """parting: notice clients who keep ignoring you, and part with them politely.

    It watches the company mailbox, applies your YAML policy, drafts a calm release email,
    has the client's owner and a colleague approve it by replying to a review email, sends it
    exactly once, and keeps the follow-up call and the case file.

    Start with `parting demo`, then `parting check-config /etc/parting/config.yaml`.
    """
    if debug:
        os.environ["PARTING_DEBUG"] = "1"
    click.get_current_context().obj = {"clock_file": clock_file}


# ---- shared by the commands that read the store ------------------------------------------------


def clock_file() -> str | None:
    """The hidden --clock-file of the group (tests and benchmarks drive time with it), or None."""
    root = click.get_current_context().find_root()
    return (root.obj or {}).get("clock_file")


def _now() -> datetime:
    """Now, from the system clock; from the --clock-file if given, and then said loudly on stderr."""
    from daemon.runtime.clock import clock_for

    path = clock_file()
    if path:
        click.echo(f"warning: TEST CLOCK: now is read from {path} (--clock-file)", err=True)
    return clock_for(path).now()


def _who() -> str:
    return os.environ.get("USER") or "command line"


def _inherited(config_path: str, as_json: bool = False) -> tuple[str, bool]:
    """A subcommand's --config and --json, or its group's when only the group was given them."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    parent = ctx.parent
    if parent is None or parent.command is cli:
        return config_path, as_json
    if ctx.get_parameter_source("config_path") is ParameterSource.DEFAULT:
        config_path = parent.params.get("config_path", config_path)
    return config_path, as_json or bool(parent.params.get("as_json"))


def _show(data: Any, as_json: bool, view: Callable[[Any], None] | str) -> None:
    """Print data as JSON, or with a view (a function, or the name of one in render.py, which is
    imported only then: rich takes longer to import than many commands take to run)."""
    if as_json:
        emit_json(data)
    elif isinstance(view, str):
        from daemon.cli import render

        getattr(render, view)(data)
    else:
        view(data)
