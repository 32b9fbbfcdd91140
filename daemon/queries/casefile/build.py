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
- Writing the files and notes is daemon/flows/casefiles.py's; this module only reads.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from daemon.adapters.store import Store
from daemon.adapters.templates import TemplateProblem, Templates
from daemon.core.model import Envelope, Policy, Settings
from daemon.core.policy import evaluate, explain
from daemon.core.rules import format_time, is_real_reply, is_request
from daemon.core.workhours import Calendar
from daemon.queries.casefile import sections
from daemon.queries.casefile.picture import picture
from daemon.queries.common import ReportError, find_client, iso, opened

if TYPE_CHECKING:  # the flows call the hook; the case file never needs them at run time
    pass

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

_iso = iso  # one way to write a time in every report


# ---- building the data ----------------------------------------------------------------------------


def build_casefile(store: Store, settings: Settings, client_id: str, *, now: datetime) -> Data:
    """Everything known about one client, as the JSON form of the case file."""
    client = find_client(settings, client_id)
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


# ---- the command line's library: `parting casefile` ----------------------------------------------


def casefile_text(config_path: str | Path, client_id: str, fmt: str, *, now: datetime) -> str:
    """The case file of one client in `fmt` (md, html or json), read from a read-only store."""
    if fmt not in FORMATS:
        raise ReportError(f"unknown case file format {fmt!r}: use one of {', '.join(FORMATS)}")
    with opened(config_path) as (settings, store):
        data = build_casefile(store, settings, client_id, now=now)
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    try:
        templates = Templates(settings.templates_dir)
        return (render_html if fmt == "html" else render_markdown)(data, templates)
    except TemplateProblem as problem:
        raise ReportError(str(problem)) from None


