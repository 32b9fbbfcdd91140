"""The case file: one client's whole story, for the retrospective and for anyone who asks why.

Rules of this module:
- `build_casefile` is read-only and returns plain JSON-ready data (docs/casefile.schema.json);
  Markdown and HTML are only renderings of that data through templates/casefile.*.j2, so the
  three forms never disagree. Times are ISO 8601 UTC in the data and shown in the client's zone.
- The timeline holds every stored message of the client, every event recorded for the client
  and every note, in time order; at the same moment a client's message comes before what
  parting decided from it, and parting's own mail after the decision that caused it.
- Bodies of client mail are not stored, so messages appear with their SHA-256 content hash:
  the hash of the bytes parting read from the mailbox, to match against an archived copy.
- Writing is atomic (temp file, fsync, rename); a case file that cannot be written is logged
  and never stops the daemon.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from daemon.adapters.files import write_atomically
from daemon.adapters.store import OutboxRow, Store
from daemon.adapters.templates import TemplateProblem, Templates
from daemon.core.errors import PartingError
from daemon.core.model import Client, Envelope, Policy, Settings
from daemon.core.policy import evaluate, explain
from daemon.core.rules import format_time, is_real_reply, is_request
from daemon.core.workhours import Calendar
from daemon.queries import reports
from daemon.queries.casefile import sections
from daemon.queries.casefile.picture import picture

if TYPE_CHECKING:  # the flows call the hook; the case file never needs them at run time
    from daemon.flows.context import Context

Data = dict[str, Any]
FORMAT = "parting-casefile"
FORMAT_VERSION = 1
FORMATS = ("md", "html", "json")
MARKDOWN_TEMPLATE = "casefile.md.j2"
HTML_TEMPLATE = "casefile.html.j2"
# The retrospective questions (templates/retrospective.txt.j2), shown where no note answers them yet.
QUESTIONS = (
    "What did not work in this relationship, and when did it start?",
    "Where did either side go wrong: on the client's side, and honestly on ours?",
    "What could we do earlier next time: a call sooner, another person on the account, clearer expectations?",
    "Should anything change in the policy or in the templates?",
)

_iso = reports._iso  # one way to write a time in every report


# ---- building the data ----------------------------------------------------------------------------


def build_casefile(store: Store, settings: Settings, client_id: str, *, now: datetime) -> Data:
    """Everything known about one client, as the JSON form of the case file."""
    client = reports._client(settings, client_id)
    zone = client.timezone or settings.working_hours.timezone
    header = {"now": _iso(now), "timezone": zone}
    policy = settings.policy_for(client)
    calendar = Calendar(settings.working_hours, client.timezone)
    envelopes = store.envelopes(client.id)
    paused = client.id in store.paused_clients()
    verdict = evaluate(client, envelopes, policy, calendar, now, paused=paused)
    rows = store.messages_for_client(client.id)
    events = store.events(client_id=client.id)
    outbox = [row for row in store.rows() if row.client_id == client.id]
    notes = store.notes(client.id)

    messages = [sections.message_entry(row) for row in rows]
    described = [sections.event_entry(settings, event, header) for event in events]
    sends = [sections.send_entry(row, described) for row in outbox]
    released = [s for s in sends if s["kind"] == "release" and s["sent_at"]]
    owner = next((p for p in settings.people if p.id == client.owner), None)
    lines = explain(verdict, client, zone)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "generated_at": _iso(now), "timezone": zone, "config": settings.source, "company": settings.company,
        "client": {
            "id": client.id, "name": client.name, "contact": client.contact, "addresses": list(client.addresses),
            "domains": list(client.domains), "phone": client.phone, "owner": client.owner,
            "owner_name": owner.name if owner else client.owner, "owner_email": owner.email if owner else None,
            "timezone": zone, "policy": policy.name, "exempt": client.exempt, "paused": paused,
        },
        "summary": {
            "state": verdict.state, "ignored_count": verdict.ignored_count,
            "open_requests": len(verdict.open_requests), "ladder": list(verdict.ladder),
            "policy_name": verdict.policy_name, "policy_hash": verdict.policy_hash,
            "first_message_at": messages[0]["at"] if messages else None,
            "last_in": _iso(max((e.at for e in envelopes if is_real_reply(e)), default=None)),
            "last_out": _iso(max((e.at for e in envelopes if e.direction == "out" and not e.auto_reply),
                                 default=None)),
            "messages_in": sum(1 for m in messages if m["direction"] == "in"),
            "real_replies": sum(1 for e in envelopes if is_real_reply(e)),
            "messages_out": sum(1 for m in messages if m["direction"] == "out"),
            "release_sent_at": released[-1]["sent_at"] if released else None,
            "explain": lines, "next": lines[-1],
        },
        "timeline": sections.timeline(messages, described, notes),
        "messages": messages,
        "events": described,
        "verdicts": [sections.verdict_entry(e) for e in events if e.kind == "verdict"],
        "unanswered": unanswered(envelopes, policy, calendar, now),
        "drafts": [sections.draft_entry(settings, store, draft.id) for draft in store.drafts(client_id=client.id)],
        "reviews": [sections.review_entry(settings, store, e) for e in events if e.kind == "review_decision"],
        "refusals": [sections.refusal_entry(e) for e in events if e.kind in ("reply_refused", "mail_refused")],
        "sends": sends,
        "deadlines": [sections.deadline_entry(d, described) for d in store.deadlines(client_id=client.id)],
        "notes": [{"id": n.id, "at": _iso(n.at), "author": n.author, "text": n.text} for n in notes],
        "questions": list(QUESTIONS),
    }


def unanswered(envelopes: list[Envelope], policy: Policy, calendar: Calendar, now: datetime) -> list[Data]:
    """Every request of ours with the window in which it waited for an answer, oldest first.

    The same reading as the policy's (core/rules.py): a request is answered by the client's first
    real reply after it (in its thread unless `reply_answers_all`), and ignored when that reply
    came after `ignored_after`, or has not come and that time has passed."""
    replies = [env for env in envelopes if is_real_reply(env) and env.at <= now]
    windows = []
    for request in (env for env in envelopes if is_request(env, policy) and env.at <= now):
        answer = next((r for r in replies if r.at > request.at
                       and (policy.reply_answers_all or r.thread_id == request.thread_id)), None)
        due = calendar.add(request.at, policy.ignored_after)
        until = answer.at if answer else now
        windows.append({
            "message_id": request.message_id, "subject": request.subject, "sent_at": _iso(request.at),
            "due_at": _iso(due), "until": _iso(until), "answered_by": answer.message_id if answer else None,
            "open": answer is None, "ignored": due <= until,
        })
    return windows


# ---- rendering --------------------------------------------------------------------------------------


def render_markdown(data: Data, templates: Templates) -> str:
    """The case file as Markdown (templates/casefile.md.j2)."""
    return templates.render_document(MARKDOWN_TEMPLATE, **_render_context(data), md=markdown_inline, fence=fence)


def render_html(data: Data, templates: Templates) -> str:
    """The case file as one self-contained, printable HTML page with an SVG picture on top."""
    return templates.render_document(HTML_TEMPLATE, **_render_context(data), picture=picture(data))


def _render_context(data: Data) -> Data:
    zone = ZoneInfo(data["timezone"])

    def when(iso: str | None, empty: str = "-") -> str:
        return format_time(datetime.fromisoformat(iso), zone) if iso else empty

    return {"data": data, "when": when, "authentication": authentication_words}


def authentication_words(verdict: Data | None, skipped: bool = False) -> str:
    """How a reply proved who sent it, in words."""
    if skipped:
        return "accepted without authentication (review.require_authentication is false)"
    if not verdict:
        return "no authentication result recorded"
    if verdict.get("ok"):
        return f"authenticated: {verdict.get('reason') or verdict.get('method')}"
    return f"not authenticated: {verdict.get('reason', '')}"


# Markdown that acts in the middle of a line: every place md() is used in the template is mid-line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def markdown_inline(text: object) -> str:
    """Text from mail made inert in Markdown: one line, no emphasis, links, HTML or table breaks."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text if text is not None else "").split()))


def fence(text: str, info: str = "text") -> str:
    """`text` in a fenced code block whose fence is longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{info}\n{text.rstrip()}\n{ticks}"


# ---- writing ----------------------------------------------------------------------------------------


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` by temp file, fsync and rename: readers see the old file or the new one."""
    return write_atomically(Path(path), text)


def write_casefile(store: Store, settings: Settings, templates: Templates, client_id: str,
                   folder: str | os.PathLike[str], *, now: datetime) -> Path:
    """Write <client>-<date>.md and .html side by side in `folder`; returns the HTML file's path.

    Both are rendered before either is written, so a template problem leaves no half case file."""
    data = build_casefile(store, settings, client_id, now=now)
    markdown, html = render_markdown(data, templates), render_html(data, templates)
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    day = now.astimezone(ZoneInfo(data["timezone"])).date().isoformat()
    stem = f"{re.sub(r'[^A-Za-z0-9._-]', '_', client_id).lstrip('.') or 'client'}-{day}"
    write_text_atomically(directory / f"{stem}.md", markdown)
    return write_text_atomically(directory / f"{stem}.html", html)


def write_missing_casefiles(ctx: Context, now: datetime) -> list[Path]:
    """Every sent release has a case file: a cycle step, so a release marked sent by any path
    (the sender, crash recovery from the Sent folder, `parting outbox confirm`, or a crash between
    `sent` and the write) gets one exactly once; `casefile_written` events say which have one."""
    written = {e.draft_id for e in ctx.store.events(kinds=["casefile_written"])}
    paths = []
    for row in ctx.store.rows(["sent"]):
        if row.kind == "release" and row.draft_id not in written:
            path = casefile_after_release(ctx, row, now)
            if path is not None:
                paths.append(path)
                written.add(row.draft_id)
    return paths


def casefile_after_release(ctx: Context, row: OutboxRow, now: datetime) -> Path | None:
    """After a release email was sent: write the case file beside the database, in casefiles/,
    and record a `casefile_written` event. A failure is logged; the daemon carries on."""
    if row.kind != "release" or row.client_id is None:
        return None
    if str(ctx.settings.database) == ":memory:":
        ctx.log.warning("no case file: the database is in memory", extra={"client": row.client_id})
        return None
    folder = Path(ctx.settings.database).parent / "casefiles"
    try:
        path = write_casefile(ctx.store, ctx.settings, ctx.templates, row.client_id, folder, now=now)
    except Exception as problem:  # noqa: BLE001 - the release left; its case file is bookkeeping, never a crash
        ctx.log.error("case file not written: %s", problem, extra={"client": row.client_id},
                      exc_info=not isinstance(problem, (OSError, TemplateProblem, PartingError)))
        return None
    ctx.store.append_event("casefile_written", at=now, client_id=row.client_id, draft_id=row.draft_id,
                           message_ids=[row.message_id],
                           data={"path": str(path), "markdown": str(path.with_suffix(".md"))})
    ctx.log.info("case file written to %s", path, extra={"client": row.client_id})
    return path


# ---- the command line's library: `parting casefile` ----------------------------------------------


def casefile_text(config_path: str | Path, client_id: str, fmt: str, *, now: datetime) -> str:
    """The case file of one client in `fmt` (md, html or json), read from a read-only store."""
    if fmt not in FORMATS:
        raise reports.ReportError(f"unknown case file format {fmt!r}: use one of {', '.join(FORMATS)}")
    with reports._opened(config_path) as (settings, store):
        data = build_casefile(store, settings, client_id, now=now)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        templates = Templates(settings.templates_dir)
        return (render_html if fmt == "html" else render_markdown)(data, templates)
    except TemplateProblem as problem:
        raise reports.ReportError(str(problem)) from None


def add_note(config_path: str | Path, client_id: str, text: str, *, who: str, now: datetime) -> Data:
    """Keep a note (a retrospective answer, what a call brought) in the client's case file."""
    if not text.strip():
        raise reports.ReportError("the note is empty: write what you want to keep, in quotes")
    with reports._opened(config_path, write=True) as (settings, store):
        client: Client = reports._client(settings, client_id)
        note_id = store.add_note(client.id, who, text.strip(), now)
        return {"id": note_id, "client": client.id, "name": client.name, "author": who, "text": text.strip(),
                "at": _iso(now)}
