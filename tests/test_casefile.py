"""The case file: built from a real run of the daemon (Dovecot and the SMTP sink), checked against
the store, the JSON Schema in docs/, its Markdown sections, and the HTML in headless Chromium.

The scenario runs once for the module: acme ignores three requests; the owner's first reply is
unauthenticated and refused; the owner approves, the colleague edits, the owner approves the
edit; the release leaves; the client answers (the phone call is cancelled); the retrospective
falls due and is closed; a note is kept. Time is a ManualClock, then a clock file for the CLI.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import mailfactory as mf
import pytest
from click.testing import CliRunner
from harness import START, RunningDaemon, by_kind, reply_to_review, seed_history, utc, write_config
from servers import DovecotServer, SmtpSink, scratch_dir

from daemon.adapters.settings.load import load_settings
from daemon.adapters.settings.secret_files import Secrets
from daemon.adapters.store import MessageRow, Store
from daemon.adapters.templates import Templates
from daemon.cli import cli
from daemon.flows.casefiles import casefile_after_release
from daemon.flows.context import Context
from daemon.flows.operator_actions import close_deadline
from daemon.queries.casefile.build import build_casefile, render_html, render_markdown
from daemon.runtime.clock import write_clock_file

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((REPO / "docs" / "casefile.schema.json").read_text())
EDIT = "EDIT\nDear Jane,\n\nWe have decided to end our work together. Thank you for everything.\n\nAlice"
NOTE = "Looking back: the signed forms were never the real problem; Jane had left Acme in September."


# ---- the scenario, once for the module --------------------------------------------------------


async def _run_daemon(config: Path, dovecot: DovecotServer, sink: SmtpSink) -> dict:
    seed_history(dovecot)
    async with RunningDaemon(config, START) as daemon:
        first = (await daemon.wait_for(lambda: by_kind(sink, "review", "alice@example.com"), timeout=20))[0]
        await reply_to_review(daemon, dovecot, first, "alice@example.com", "APPROVE", "forged", auth=None)
        await daemon.wait_for(lambda: daemon.store.events(kinds=["reply_refused"]), timeout=10, what="the refusal")
        await reply_to_review(daemon, dovecot, first, "alice@example.com", "Approve", "alice-1")
        colleague = (await daemon.wait_for(lambda: by_kind(sink, "review", "bob@example.com"), timeout=10))[0]
        await reply_to_review(daemon, dovecot, colleague, "bob@example.com", EDIT, "bob-edit")
        second = (await daemon.wait_for(lambda: by_kind(sink, "review", "alice@example.com")[1:], timeout=10))[0]
        await reply_to_review(daemon, dovecot, second, "alice@example.com", "approve", "alice-2")
        await daemon.wait_for(lambda: [r for r in daemon.store.rows(["queued"]) if r.kind == "release"], timeout=10)
        await daemon.advance(minutes=11)
        await daemon.wait_for(lambda: by_kind(sink, "release"), timeout=10, what="the release")
        release = next(r for r in daemon.store.rows() if r.kind == "release")
        await daemon.advance(hours=2)
        raw, _ = mf.reply("jane@acme.example", f"<{release.message_id}>", "Signed form 3?", daemon.clock.now(),
                          "jane-after")
        mf.deliver(dovecot, "INBOX", raw)
        await daemon.wait_for(lambda: daemon.store.events(kinds=["deadline_cancelled"]), timeout=15,
                              what="the phone call cancelled by the client's reply")
        await daemon.advance(days=8)
        await daemon.wait_for(lambda: daemon.store.events(kinds=["deadline_due"]), timeout=10,
                              what="the retrospective due")
        return {"release": release, "end": daemon.clock.now()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> dict:
    workdir = scratch_dir("parting-casefile-dovecot-")
    dovecot = DovecotServer(workdir)
    try:
        dovecot.start()
        with SmtpSink() as sink:
            folder = tmp_path_factory.mktemp("casefile") / "parting"
            config = write_config(folder, dovecot, sink)
            outcome = asyncio.run(_run_daemon(config, dovecot, sink))
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    end = outcome["end"]
    settings = load_settings(config)
    retrospective = next(d for d in _store(settings).deadlines() if d.kind == "retrospective")
    close_deadline(config, retrospective.id, "Went through it with Bob.", who="alice", now=end)
    clock = folder / "clock"
    write_clock_file(clock, end + timedelta(minutes=5))
    noted = _cli(config, clock, "casefile", "note", "acme", NOTE)
    assert noted.exit_code == 0, noted.output
    with Store.open(settings.database) as store:
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        written = casefile_after_release(ctx, outcome["release"], end + timedelta(minutes=10))
    return {"config": config, "settings": settings, "clock": clock, "now": end + timedelta(minutes=15),
            "written": written, "folder": folder, "release": outcome["release"], "noted": noted.output}


def _store(settings) -> Store:
    return Store.open_readonly(settings.database)


def _cli(config: Path, clock: Path, *args: str):
    return CliRunner(env={"USER": "carol", "PARTING_CONFIG": None}).invoke(
        cli, ["--clock-file", str(clock), *args, "--config", str(config)], terminal_width=100)


def _casefile(scenario: dict, client: str = "acme") -> dict:
    with _store(scenario["settings"]) as store:
        return build_casefile(store, scenario["settings"], client, now=scenario["now"])


# ---- the data -----------------------------------------------------------------------------------


def test_the_timeline_holds_every_event_and_message_of_the_client_in_time_order(scenario):
    data = _casefile(scenario)
    with _store(scenario["settings"]) as store:
        events = store.events(client_id="acme")
        messages = store.messages_for_client("acme")
    timeline = data["timeline"]
    assert [int(item["ref"]) for item in timeline if item["source"] == "event"] == [e.id for e in events]
    assert {item["ref"] for item in timeline if item["source"] == "message"} == {m.message_id for m in messages}
    assert [item["at"] for item in timeline] == sorted(item["at"] for item in timeline)
    kinds = {e.kind for e in events}
    assert {"verdict", "ladder_step", "draft_created", "review_requested", "reply_refused", "review_decision",
            "release_queued", "sent", "deadline_set", "deadline_cancelled", "deadline_due", "deadline_closed",
            "casefile_written"} <= kinds
    hashes = {item["ref"]: item["content_hash"] for item in timeline if item["source"] == "message"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", hashes[m.message_id]) for m in messages)
    assert [n["text"] for n in data["notes"]] == [NOTE]
    assert any(item["source"] == "note" and item["detail"] == NOTE for item in timeline)


def test_the_casefile_records_verdicts_versions_reviews_sends_and_deadlines(scenario):
    data = _casefile(scenario)
    unresponsive = next(v for v in data["verdicts"] if v["state"] == "unresponsive")
    assert unresponsive["policy_hash"] == data["summary"]["policy_hash"]
    assert {"request-ignored", "ignored-threshold"} <= {r["rule"] for r in unresponsive["rules"]}
    [draft] = data["drafts"]
    first, second = draft["versions"]
    assert first["diff"] is None and "+We have decided to end our work together" in second["diff"]
    assert [(r["name"], r["command"], r["authentication"]["ok"]) for r in data["reviews"]] == [
        ("Alice Smith", "approve", True), ("Bob Jones", "edit", True), ("Alice Smith", "approve", True)]
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["via_content_hash"]) for r in data["reviews"])
    [refused] = [r for r in data["refusals"] if r["kind"] == "reply_refused"]
    assert refused["code"] == "not_authenticated" and refused["from"] == "alice@example.com"
    [release] = [s for s in data["sends"] if s["kind"] == "release"]
    assert release["state"] == "sent" and release["server_reply"].startswith("250")
    assert data["summary"]["release_sent_at"] == release["sent_at"]
    deadlines = {d["kind"]: d for d in data["deadlines"]}
    assert deadlines["phone_call"]["state"] == "cancelled"
    assert "replied" in deadlines["phone_call"]["how"]
    assert deadlines["retrospective"]["state"] == "done"
    assert deadlines["retrospective"]["note"] == "Went through it with Bob."
    # The client's answer after the release closes every request's wait, long past its window.
    reply = next(m for m in data["messages"] if m["direction"] == "in" and not m["auto_reply"])
    assert [(w["subject"], w["ignored"], w["answered_by"], w["until"]) for w in data["unanswered"]] == [
        (f"Signed form {n}?", True, reply["message_id"], reply["at"]) for n in (1, 2, 3)]


def test_the_json_form_validates_against_the_schema_in_docs(scenario):
    result = _cli(scenario["config"], scenario["clock"], "casefile", "acme", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    validator = jsonschema.Draft202012Validator(SCHEMA)
    validator.validate(data)
    # The schema is not vacuous: a missing key and a local time are both caught.
    broken = {**data, "summary": {k: v for k, v in data["summary"].items() if k != "policy_hash"}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**data, "generated_at": "2026-11-02T10:00:00+01:00"})


def test_a_client_without_a_release_has_a_casefile_too(scenario):
    data = _casefile(scenario, "globex")
    jsonschema.validate(data, SCHEMA)
    assert data["drafts"] == [] and data["summary"]["state"] == "active"
    html = render_html(data, Templates())
    assert "The release, from the first draft" not in html and "Globex Corporation" in html
    assert "No release or nudge was drafted." in render_markdown(data, Templates())


# ---- the Markdown form and the command line -----------------------------------------------------


def test_markdown_on_stdout_has_every_section_and_the_evidence(scenario):
    result = _cli(scenario["config"], scenario["clock"], "casefile", "acme")
    assert result.exit_code == 0, result.output
    md = result.stdout
    for heading in ("# Case file: Acme Ltd (acme)", "## At a glance", "## Timeline", "## Verdicts",
                    "## The release email", "## Review decisions", "## Refused replies and mail", "## Sending",
                    "## Deadlines", "## Notes and retrospective"):
        assert heading in md
    data = _casefile(scenario)
    assert data["summary"]["policy_hash"] in md
    assert "+We have decided to end our work together" in md
    assert "authenticated: dmarc=pass" in md
    assert "250 " in md and "Went through it with Bob." in md
    assert NOTE in md
    for message in data["messages"]:
        assert f"sha256:{message['content_hash']}" in md


def test_note_is_kept_and_shown(scenario):
    assert "kept in the case file of Acme Ltd (acme), by carol" in scenario["noted"]
    data = _casefile(scenario)
    assert [(n["author"], n["text"]) for n in data["notes"]] == [("carol", NOTE)]


def test_note_problems_are_clear_errors(scenario):
    empty = _cli(scenario["config"], scenario["clock"], "casefile", "note", "acme", "   ")
    assert empty.exit_code == 2 and "error: the note is empty" in empty.output
    unknown = _cli(scenario["config"], scenario["clock"], "casefile", "note", "acmee", "text")
    assert unknown.exit_code == 2 and "no client 'acmee'" in unknown.output and "acme" in unknown.output
    missing = _cli(scenario["config"], scenario["clock"], "casefile")
    assert missing.exit_code == 2 and "name a client" in missing.output


def test_output_writes_the_file_and_prints_nothing_on_stdout(scenario, tmp_path):
    target = tmp_path / "acme.html"
    result = CliRunner().invoke(
        cli, ["--clock-file", str(scenario["clock"]), "casefile", "--config", str(scenario["config"]), "acme", "--format", "html", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert target.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["acme.html"], "no temporary file is left behind"


def test_the_release_hook_writes_md_and_html_side_by_side_and_records_it(scenario):
    written = scenario["written"]
    assert written == scenario["folder"] / "casefiles" / "acme-2026-11-10.html"
    assert written.with_suffix(".md").read_text().startswith("# Case file: Acme Ltd (acme)")
    assert "<svg" in written.read_text()
    with _store(scenario["settings"]) as store:
        by_daemon, event = store.events(kinds=["casefile_written"])  # the daemon's at the send, then ours
    assert by_daemon.data["path"].endswith(".html") and Path(by_daemon.data["path"]).exists()
    assert event.client_id == "acme" and event.data["path"] == str(written)
    assert event.message_ids == (scenario["release"].message_id,)
    ctx = SimpleNamespace(settings=scenario["settings"])
    nudge = SimpleNamespace(kind="review", client_id="acme")
    assert casefile_after_release(ctx, nudge, scenario["now"]) is None, "only a release writes a case file"


# ---- the HTML form ------------------------------------------------------------------------------


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.links += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href", "action")]


def test_html_is_self_contained_and_renders_in_headless_chromium(scenario, tmp_path):
    page = tmp_path / "acme.html"
    result = _cli(scenario["config"], scenario["clock"], "casefile", "acme", "--format", "html", "-o", str(page))
    assert result.exit_code == 0, result.output
    html = page.read_text()
    parsed = _Page()
    parsed.feed(html)
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert not [link for link in parsed.links if re.match(r"\s*(https?:)?//", link, re.I)]
    assert not re.search(r"url\(|@import|@font-face", html), "no style reaches outside the page"
    assert "svg" in parsed.tags and "@media print" in html
    assert html.count("<tr") >= len(_casefile(scenario)["timeline"])

    shot = tmp_path / "casefile.png"
    run = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert ":CONSOLE" not in run.stderr, "the page logged to the console"
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")) == (1200, 1600)
    assert len(png) > 40_000, "a blank page compresses to a few kilobytes"


# ---- text from mail stays text -------------------------------------------------------------------


def test_subjects_cannot_inject_markup_into_either_form(tmp_path):
    fake = SimpleNamespace(port=1, password="x", user="u")
    config = write_config(tmp_path / "parting", fake, None)
    settings = load_settings(config)
    hostile = '<img src="https://evil.example/x.png"> | **bold** [link](https://evil.example) & co'
    with Store.open(settings.database) as store:
        store.add_message(MessageRow(
            message_id="q1@example.com", client_id="acme", thread_id="t1", direction="out", at=utc(2026, 10, 5, 10),
            subject=hostile, from_addr="office@example.com", to_addrs=("jane@acme.example",), question=True,
            content_hash="0" * 64), folder="Sent", uidvalidity=1, uid=1)
        data = build_casefile(store, settings, "acme", now=utc(2026, 11, 2, 10))
    html = render_html(data, Templates())
    parsed = _Page()
    parsed.feed(html)
    assert "img" not in parsed.tags and not [link for link in parsed.links if "evil" in link]
    assert "&lt;img src=" in html
    md = render_markdown(data, Templates())
    assert not re.search(r"(?<!\\)(<img|\]\(https|\*\*bold)", md), "every Markdown character is escaped"
    assert r"\<img src=" in md and r"\[link\]" in md and r"\*\*bold\*\*" in md


def test_a_client_named_like_a_subcommand_is_reached_with_show(tmp_path):
    fake = SimpleNamespace(port=1, password="x", user="u")
    clients = [{"id": "note", "name": "Note Partners", "contact": "Nora", "addresses": ["nora@note.example"],
                "domains": ["note.example"], "owner": "alice"}]
    config = write_config(tmp_path / "parting", fake, None, clients=clients)
    Store.open(load_settings(config).database).close()
    clock = tmp_path / "clock"
    write_clock_file(clock, utc(2026, 11, 2, 10))
    shown = _cli(config, clock, "casefile", "show", "note")
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.startswith("# Case file: Note Partners (note)")
    noted = _cli(config, clock, "casefile", "note", "note", "a note about Note Partners")
    assert noted.exit_code == 0 and "Note Partners (note)" in noted.output
    assert "a note about Note Partners" in _cli(config, clock, "casefile", "show", "note").output
    # A client with no mail at all still gets a picture (an empty day) and every section.
    html = _cli(config, clock, "casefile", "show", "note", "--format", "html")
    assert html.exit_code == 0 and "<svg" in html.output and "No verdict recorded yet." in html.output


@pytest.mark.parametrize("start, span", [
    (utc(2026, 10, 24, 18), timedelta(hours=20)),  # across the change from summer time in London
    (utc(2026, 11, 2, 9), timedelta(days=3)),
    (utc(2026, 10, 5, 10), timedelta(days=36)),
    (utc(2025, 1, 31, 10), timedelta(days=800)),
])
def test_time_axis_ticks_are_few_ordered_and_inside_the_span(start, span):
    from zoneinfo import ZoneInfo

    from daemon.queries.casefile.picture import MAX_TICKS, ticks

    marks = ticks(start, start + span, ZoneInfo("Europe/London"))
    moments = [moment for moment, _ in marks]
    assert 2 <= len(marks) <= MAX_TICKS
    assert moments == sorted(moments) and len(set(moments)) == len(moments)
    assert all(start <= moment <= start + span for moment in moments)
    assert all(label for _, label in marks)
