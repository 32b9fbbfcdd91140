"""The typed commands import only what they use: rich (only
for text output) and core/review.py with its reply parser (only status and the listing of drafts need it) stay out
of a `--json` run, as `python -X importtime` shows for a real `parting` process."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from test_cli_reports import REPO, setup  # noqa: F401 - setup is a fixture


def imported(setup: dict, *args: str) -> set[str]:  # noqa: F811
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "daemon", *args, "--config",
                           str(setup["config"]), "--json"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", done.stderr, flags=re.M))


@pytest.mark.parametrize("command", [("status",), ("outbox",), ("deadlines",), ("explain", "acme")])
def test_json_commands_leave_out_what_they_do_not_use(setup, command) -> None:  # noqa: F811
    modules = imported(setup, *command)
    assert "daemon.adapters.store" in modules  # the measurement sees our own imports
    assert not {"rich", "rich.console", "daemon.cli.render"} & modules
    if command[0] in ("outbox", "deadlines"):
        assert "daemon.core.review" not in modules
