"""The typed commands import only what they use, as sys.modules shows at the end of a real
`parting` process (issue 21: a command's imports were most of its time):

- rich (only for text output) stays out of every `--json` run;
- sqlite-utils (with pluggy, click's types and dateutil) is imported on a store's first write, so
  no report imports it, and a command that writes still does;
- the holidays package's `holidays.countries`, which imports all ~280 countries, is never
  imported: only the configured country's module is (daemon/core/holiday_tables.py);
- the listings (drafts, outbox, deadlines) import no policy and no holidays package at all (the
  configured country and subdivision are checked from its files: settings/holiday_codes.py);
- no report imports the reply parser (core/review.py), and the listings no email parser;
- `drafts` works out what a draft in review misses from the two-person rule (core/endorsements.py),
  without the release state machine and its dataclasses;
- each listing creates only the store rows it shows (each kind of row has its module, imported where
  its rows are read),
  and no values of the ingest side (core/mailvalues.py) or OAuth settings (core/oauthsettings.py);
- sign-in libraries (authlib, requests, cryptography) and templates (jinja2) stay out of reports;
- no `--json` report imports click or the command modules: daemon/cli/quick.py answers them
  (tests/test_cli_quick.py holds its answers to the click commands').
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_cli_reports import REPO, fill_deadlines, fill_drafts, fill_outbox, setup  # noqa: F401 - setup is a fixture

from daemon.adapters.store import Store

REPORTS = [("status",), ("explain", "acme"), ("drafts",), ("outbox",), ("deadlines",)]
NEVER_IN_REPORTS = {"rich", "rich.console", "daemon.cli.render", "sqlite_utils", "pluggy", "holidays.countries",
                    "authlib", "requests", "cryptography", "jinja2", "daemon.adapters.oauth",
                    "click", "daemon.cli.group", "daemon.cli.reports", "daemon.cli.service_commands"}


# `python -m daemon ARGS`, printing every module it imported as it exits (-X importtime would miss
# the country module holiday_tables.py executes itself).
RUN = """
import atexit, json, runpy, sys
atexit.register(lambda: sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["parting", *sys.argv[1:]]
runpy.run_module("daemon", run_name="__main__", alter_sys=True)
"""


def imported(setup: dict, *args: str) -> set[str]:  # noqa: F811
    done = subprocess.run([sys.executable, "-c", RUN, *args, "--config", str(setup["config"]), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stderr.rsplit("MODULES ", 1)[1]))


@pytest.mark.parametrize("command", REPORTS)
def test_json_commands_leave_out_what_they_do_not_use(setup, command) -> None:  # noqa: F811
    fill_drafts(setup)  # a draft in review: `drafts` works out what its endorsements still miss
    with Store.open(setup["database"]) as store:  # rows to list: outbox subjects, deadlines due
        fill_outbox(store)
        fill_deadlines(store)
    modules = imported(setup, *command)
    assert "daemon.adapters.store" in modules  # the measurement sees our own imports
    assert not NEVER_IN_REPORTS & modules
    assert "daemon.core.review" not in modules
    assert "difflib" not in modules  # only a mistake in the settings, or `drafts show`, compares texts
    assert "_hashlib" not in modules  # OpenSSL: a policy's hash and the holidays' identity use core/digest.py
    if command[0] == "status":  # it counts the drafts in review by their states, without the state machine
        assert "daemon.core.release_states" in modules and "daemon.core.release" not in modules
        # ... and counts them, the outbox rows and the due deadlines in SQL, without their row classes;
        # nothing parked, in triage or learned: no row class of those either.
        assert not {"daemon.adapters.store.draft_rows", "daemon.adapters.store.outbox_rows",
                    "daemon.adapters.store.deadline_rows", "daemon.adapters.store.rows"} & modules
    if command[0] in ("drafts", "outbox", "deadlines"):
        assert not {"daemon.core.policy", "daemon.core.workhours", "holidays"} & modules
        assert not {"email.parser", "email.policy"} & modules  # outbox subjects are read without the parser
        assert not {"daemon.core.replytext", "html.parser"} & modules  # drafts: release rules, not replies
        assert "daemon.core.release" not in modules  # drafts: the two-person rule, not the state machine
    else:  # the working-hours calendar of the configured country (GB, England), and only that country
        # Histories: bounces' failures are read as plain values, and nothing was recorded by hand.
        assert "daemon.adapters.store.history_rows" not in modules
        assert "holidays.countries.united_kingdom" in modules
        assert not {m for m in modules if m.startswith("holidays.countries.") and not m.endswith("united_kingdom")}


def test_a_command_that_writes_still_uses_sqlite_utils(setup) -> None:  # noqa: F811
    modules = imported(setup, "pause", "acme")
    assert "sqlite_utils" in modules


# The same, printing the dataclasses that exist as it exits: each costs about a millisecond to create.
# (A report freezes its objects before it exits, daemon/cli/__init__.py: get_objects sees them once unfrozen.)
RUN_CLASSES = RUN.replace("sorted(sys.modules)", "(__import__('gc').unfreeze(), sorted(f'{c.__module__}.{c.__qualname__}'"
                          " for c in __import__('gc').get_objects() if isinstance(c, type)"
                          " and '__dataclass_fields__' in c.__dict__))[1]")


@pytest.mark.parametrize("command", REPORTS)
def test_reports_create_only_the_values_they_read(setup, command) -> None:  # noqa: F811
    fill_drafts(setup)
    with Store.open(setup["database"]) as store:
        fill_outbox(store)
        fill_deadlines(store)
    done = subprocess.run([sys.executable, "-c", RUN_CLASSES, *command, "--config", str(setup["config"]), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    names = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    made = {name.rsplit(".", 1)[1] for name in names}
    assert "OAuthSettings" not in made  # a password mailbox (core/oauthsettings.py, made on first use)
    assert "ParsedMessage" not in made  # ingest's (core/mailvalues.py); a bounce's failures apart (deliveryfailure.py)
    if command[0] == "explain":  # a history's failures and records (store/history_rows.py), not the daemon's rows
        assert not [name for name in names if name.startswith("daemon.adapters.store.rows.")]
    if command[0] in ("drafts", "outbox", "deadlines"):
        assert "DeliveryFailure" not in made  # what a bounce says: only where histories are read
        rows = {name.rsplit(".", 1)[1] for name in names if name.startswith("daemon.adapters.store.")}
        listed = {"drafts": {"Draft", "Endorsement"}, "outbox": {"OutboxRow"}, "deadlines": {"Deadline"}}
        assert rows == listed[command[0]]  # each module of rows is imported where its rows are read


# The same, saying at exit whether the cycle collector was on and how many objects were frozen.
RUN_COLLECTOR = RUN.replace("sorted(sys.modules)", "[__import__('gc').isenabled(), __import__('gc').get_freeze_count()]")


@pytest.mark.parametrize("command", REPORTS)
def test_reports_run_without_the_cycle_collector_and_skip_its_pass_at_exit(setup, command) -> None:  # noqa: F811
    """daemon/cli/__init__.py: a report quick.py answers keeps the collector off and freezes what is
    left before it exits, so neither its passes nor the interpreter's last one at exit walk every object."""
    done = subprocess.run([sys.executable, "-c", RUN_COLLECTOR, *command, "--config", str(setup["config"]), "--json"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, frozen = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    assert not enabled
    assert frozen > 10_000  # every module, class and settings value made is in the permanent generation


def test_commands_click_answers_keep_the_cycle_collector(setup) -> None:  # noqa: F811
    done = subprocess.run([sys.executable, "-c", RUN_COLLECTOR, "status", "--config", str(setup["config"])],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    enabled, frozen = json.loads(done.stderr.rsplit("MODULES ", 1)[1])
    assert enabled and frozen == 0
