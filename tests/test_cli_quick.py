"""The JSON reports answered without click (daemon/cli/quick.py) say what the click commands say.

Each form quick.py answers is run both ways on the same store: quick.run in process, and the
click command through CliRunner; the JSON (but for the time of the run), the `error:` lines and
the exit status must be the same. Every other form must be left to click, untouched.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner
from test_cli_reports import REPO, fill_deadlines, fill_drafts, fill_outbox, setup  # noqa: F401 - setup is a fixture

from daemon.adapters.store import Store
from daemon.cli import cli, quick

REPORTS = [("status",), ("explain", "acme"), ("drafts",), ("outbox",), ("deadlines",)]
MOMENT = {"now": None, "evaluated_at": None}  # the time of the run (explain names it evaluated_at)


@pytest.fixture
def filled(setup):  # noqa: F811
    fill_drafts(setup)  # a draft in review, outbox rows and deadlines: every listing has rows
    with Store.open(setup["database"]) as store:
        fill_outbox(store)
        fill_deadlines(store)
    return setup


def quick_run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | None, str, str]:
    status = quick.run(argv)
    out, err = capsys.readouterr()
    return status, out, err


def click_run(argv: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, argv)
    return result.exit_code, result.stdout, result.stderr


def same_report(a: str, b: str) -> bool:
    return _at_no_moment(json.loads(a)) == _at_no_moment(json.loads(b))


def _at_no_moment(report: dict) -> dict:
    """The report less the time of its run: `now`, explain's `evaluated_at`, and the minute its first
    line says it was evaluated (the two runs may straddle a minute)."""
    lines = report.get("explain")
    if lines:
        lines = [re.sub(r"evaluated [^,]+,", "evaluated (the run's minute),", lines[0]), *lines[1:]]
    return {**report, **MOMENT, **({"explain": lines} if lines else {})}


@pytest.mark.parametrize("command", REPORTS)
@pytest.mark.parametrize("form", ["--config FILE --json", "--json -c FILE", "--config=FILE --json", "environment",
                                  "--config /nowhere.yaml --json --config FILE --json", "FILE over the environment"])
def test_each_report_prints_what_the_click_command_prints(filled, capsys, monkeypatch, command, form) -> None:
    config = str(filled["config"])
    if form == "environment":
        monkeypatch.setenv("PARTING_CONFIG", config)
        options = ["--json"]
    elif form == "FILE over the environment":
        monkeypatch.setenv("PARTING_CONFIG", "/nowhere.yaml")
        options = ["--json", "--config", config]
    else:  # the last --config counts, as in click
        options = [w.replace("FILE", config) for w in form.split()]
    argv = [*command, *options]
    status, out, err = quick_run(argv, capsys)
    clicked = click_run(argv)
    assert (status, err) == (0, "") and clicked[0] == 0
    assert out.endswith("}\n") and same_report(out, clicked[1])
    assert json.loads(out)["config"] == config


@pytest.mark.parametrize("argv", [
    ["explain", "nobody", "--json"],  # no such client
    ["status", "--json", "--config", "/nonexistent/parting.yaml"],  # no such file
])
def test_errors_are_the_same_lines_and_status(filled, capsys, argv) -> None:
    if "--config" not in argv:
        argv = [*argv, "--config", str(filled["config"])]
    status, out, err = quick_run(argv, capsys)
    assert (status, out, err) == click_run(argv)
    assert status == 2 and err.startswith("error: ")


def test_a_bad_configuration_is_reported_as_click_reports_it(filled, capsys) -> None:
    config = filled["config"]
    config.write_text(config.read_text().replace("ignored_after:", "ignored_aftr:", 1))
    argv = ["drafts", "--json", "--config", str(config)]
    status, out, err = quick_run(argv, capsys)
    assert (status, out, err) == click_run(argv)
    assert status == 2 and "ignored_aftr" in err and f"{config}:" in err  # file:line: key: message


@pytest.mark.parametrize("argv", [
    [], ["status"], ["status", "--help"], ["--help"], ["--version"], ["--debug", "status", "--json"],
    ["--clock-file", "clock", "status", "--json"], ["status", "--json", "--clock-file", "clock"],
    ["drafts", "show", "1", "--json"], ["outbox", "--json", "resend", "1"], ["deadlines", "--json", "done", "1"],
    ["explain", "--json"], ["explain", "acme", "globex", "--json"], ["explain", "--json", "--", "acme"],
    ["status", "--json", "--config"], ["status", "--json", "-c", "--json"], ["status", "--json", "-cfile.yaml"],
    ["status", "--json", "extra"], ["simulate", "--json"], ["pause", "acme", "--json"], ["run", "--once"],
])
def test_other_forms_are_left_to_click(capsys, argv) -> None:
    assert quick.parse(argv, {}) is None
    assert quick_run(argv, capsys) == (None, "", "")


def test_debugging_is_left_to_click(monkeypatch, capsys) -> None:
    monkeypatch.setenv("PARTING_DEBUG", "1")  # a traceback is asked for: click's friendly_errors re-raises
    assert quick_run(["status", "--json"], capsys) == (None, "", "")


def test_the_commands_answered_here_have_no_option_it_does_not_read() -> None:
    """An option added to one of these click commands must be read by quick.py (or make it
    decline): until then this fails, rather than quick.py silently ignoring it."""
    for name, arguments in quick.QUICK_COMMANDS.items():
        params = [p.name for p in cli.commands[name].params]
        assert sorted(params) == sorted([*(["client"] if arguments else []), *quick.QUICK_OPTIONS]), name
    group = {p.name for p in cli.params} - {"help", "version"}
    assert group == {"debug", "clock_file"}  # group options come before the command: always declined


def test_a_report_process_answers_like_the_click_command(filled) -> None:  # noqa: F811
    """Through `python -m daemon`, as a person runs it: the same report and the same error."""
    config = str(filled["config"])
    for argv in (["drafts", "--json", "--config", config], ["explain", "nobody", "--json", "--config", config]):
        done = subprocess.run([sys.executable, "-m", "daemon", *argv], cwd=REPO, capture_output=True, text=True,
                              timeout=60, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        code, out, err = click_run(argv)
        assert (done.returncode, done.stderr) == (code, err)
        if code == 0:
            assert same_report(done.stdout, out)


def test_a_terminal_that_is_not_utf8_is_left_to_click(filled, monkeypatch) -> None:
    """click re-encodes for an ASCII terminal; quick.py leaves that to it rather than copy it."""
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    assert quick.run(["drafts", "--json", "--config", str(filled["config"])]) is None
    ascii_out.flush()
    assert ascii_out.buffer.getvalue() == b""
