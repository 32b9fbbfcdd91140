"""The sections of the case file, each made from store rows into plain JSON-ready data.

Rules of this module:
- Only reads: every function takes rows (or the store) and returns dicts of str, int, bool,
  None, lists and dicts, with times as ISO 8601 UTC (iso).
- Events are described in the words core/events.py declares, the same words `parting drafts show`
  uses, so the two never tell a story differently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from daemon.adapters.store import Deadline, Event, MessageRow, Note, OutboxRow, Store
from daemon.core import events
from daemon.core.model import Settings
from daemon.queries.common import iso, person_name
from daemon.queries.listings import endorsement_row, subject_of, version_diff

Data = dict[str, Any]
_iso = iso


def message_entry(row: MessageRow) -> Data:
    return {
        "message_id": row.message_id, "at": _iso(row.at), "direction": row.direction, "subject": row.subject,
        "from": row.from_addr, "to": list(row.to_addrs), "cc": list(row.cc_addrs), "thread_id": row.thread_id,
        "content_hash": row.content_hash, "size": row.size, "auto_reply": row.auto_reply, "bounce": row.bounce,
        "question": row.question, "parting_kind": row.parting_kind,
    }


def _who(settings: Settings, payload: Data) -> str | None:
    return person_name(settings, payload.get("person") or payload.get("by"))


def event_entry(settings: Settings, row: Event, header: Data) -> Data:
    """An event with who did it and what happened in words; `header` gives the zone and now."""
    payload = row.data or {}
    who = _who(settings, payload)
    return {
        "id": row.id, "at": _iso(row.at), "kind": row.kind, "draft_id": row.draft_id,
        "message_ids": list(row.message_ids), "policy_hash": row.policy_hash, "data": payload,
        "who": who, "summary": describe(row.kind, payload, who, header),
    }


def describe(kind: str, payload: Data, who: str | None, header: Data) -> str:
    """One event in plain words, as core/events.py declares them (the same words `parting drafts show` uses)."""
    zone = ZoneInfo(header["timezone"])
    now = datetime.fromisoformat(header["now"]) if header.get("now") else None
    return events.describe(kind, payload, who, events.Wording(zone, now))


def timeline(messages: list[Data], events: list[Data], notes: list[Note]) -> list[Data]:
    """Messages, events and notes in one list in time order (see daemon/casefile.py for the ties)."""
    entries: list[tuple[tuple, Data]] = []
    for n, m in enumerate(messages):
        ours = bool(m["parting_kind"])  # parting's own mail follows the decision that caused it
        entries.append(((m["at"], 2 if ours else 0, n), {
            "at": m["at"], "source": "message", "ref": m["message_id"], "kind": _message_kind(m),
            "title": _message_title(m), "detail": m["subject"], "direction": m["direction"],
            "content_hash": m["content_hash"]}))
    for e in events:
        entries.append(((e["at"], 1, e["id"]), {
            "at": e["at"], "source": "event", "ref": str(e["id"]), "kind": e["kind"],
            "title": _event_title(e), "detail": e["summary"], "direction": None, "content_hash": None}))
    for note in notes:
        entries.append(((_iso(note.at), 3, note.id), {
            "at": _iso(note.at), "source": "note", "ref": str(note.id), "kind": "note",
            "title": f"note by {note.author}", "detail": note.text, "direction": None, "content_hash": None}))
    # ISO UTC text of one format sorts as time does.
    return [entry for _, entry in sorted(entries, key=lambda item: item[0])]


def _event_title(e: Data) -> str:
    if e["kind"] in ("sent", "send_failed", "send_uncertain"):
        what = str(e["data"].get("kind") or "mail").replace("_", " ")
        return f"{what} email {e['kind'].removeprefix('send_')}"
    return e["kind"].replace("_", " ")


def _message_kind(m: Data) -> str:
    if m["direction"] == "out":
        return f"sent_{m['parting_kind']}" if m["parting_kind"] else "our_message"
    return "bounce" if m["bounce"] else "auto_reply" if m["auto_reply"] else "client_message"


def _message_title(m: Data) -> str:
    return {"our_message": "we wrote", "client_message": "the client wrote", "bounce": "delivery failure",
            "auto_reply": "automatic reply"}.get(_message_kind(m), f"parting sent the {m['parting_kind']} email")


def verdict_entry(event: Event) -> Data:
    payload = event.data or {}
    return {
        "event_id": event.id, "at": _iso(event.at), "state": payload.get("state"),
        "previous": payload.get("previous"), "ignored_count": payload.get("ignored_count", 0),
        "ladder": list(payload.get("ladder") or []), "episode": payload.get("episode"),
        "policy": payload.get("policy"), "policy_hash": event.policy_hash,
        "rules": [{"rule": r.get("rule"), "message_ids": list(r.get("message_ids") or []), "detail": r.get("detail", ""),
                   "at": r.get("at")} for r in payload.get("rules") or []],
    }


def draft_entry(settings: Settings, store: Store, draft_id: int) -> Data:
    """A draft with every version, its diff to the one before and who endorsed it how."""
    draft = store.draft(draft_id)
    versions = store.versions(draft_id)
    return {
        "id": draft.id, "kind": draft.kind, "state": draft.state, "subject": draft.subject,
        "created_at": _iso(draft.created_at), "updated_at": _iso(draft.updated_at),
        "hold_until": _iso(draft.hold_until),
        "versions": [{
            "version": v.version, "writer": v.writer, "writer_name": person_name(settings, v.writer),
            "created_at": _iso(v.created_at), "text_sha256": v.text_sha256, "text": v.text,
            "diff": version_diff(before.text, v.text, before.version, v.version) if before else None,
            "endorsements": [endorsement_row(settings, e) for e in store.endorsements(draft_id, v.version)],
        } for before, v in zip([None, *versions], versions)],
    }


def review_entry(settings: Settings, store: Store, event: Event) -> Data:
    """A review decision, with the reply it came in and that reply's content hash."""
    payload = event.data or {}
    via = event.message_ids[0] if event.message_ids else None
    reply = store.message(via) if via else None
    return {
        "event_id": event.id, "at": _iso(event.at), "draft_id": event.draft_id, "person": payload.get("person"),
        "name": person_name(settings, payload.get("person")), "role": payload.get("role"),
        "command": payload.get("command"), "reason": payload.get("reason") or "", "version": payload.get("version"),
        "new_version": payload.get("new_version"), "state": payload.get("state"),
        "via_message_id": via, "via_content_hash": reply.content_hash if reply else None,
        "authentication": payload.get("authentication"),
        "authentication_skipped": bool(payload.get("authentication_skipped")),
    }


def refusal_entry(event: Event) -> Data:
    payload = event.data or {}
    return {
        "event_id": event.id, "at": _iso(event.at), "kind": event.kind, "draft_id": event.draft_id,
        "from": payload.get("from"), "code": payload.get("code") or payload.get("action"),
        "reason": payload.get("reason", ""), "message_ids": list(event.message_ids),
        "authentication": payload.get("authentication"),
    }


def send_entry(row: OutboxRow, events: list[Data]) -> Data:
    """An outbox row with the server's reply and the events of its sending."""
    sending = ("sent", "send_failed", "send_uncertain", "outbox_resend", "outbox_cancel")
    return {
        "outbox_id": row.id, "kind": row.kind, "message_id": row.message_id, "draft_id": row.draft_id,
        "to": list(row.recipients), "subject": subject_of(row.raw), "state": row.state,
        "attempts": row.attempts, "created_at": _iso(row.created_at), "not_before": _iso(row.not_before),
        "sent_at": _iso(row.sent_at), "server_reply": row.server_reply, "last_error": row.last_error,
        "events": [{"event_id": e["id"], "at": e["at"], "kind": e["kind"], "detail": e["summary"]} for e in events
                   if e["kind"] in sending and e["data"].get("outbox_id") == row.id],
    }


def deadline_entry(deadline: Deadline, events: list[Data]) -> Data:
    """A deadline and, when it closed, how (the closing event in words)."""
    mine = [e for e in events if e["kind"].startswith("deadline_") and e["data"].get("deadline_id") == deadline.id]
    closing = next((e for e in mine if e["kind"] in ("deadline_closed", "deadline_cancelled")), None)
    return {
        "id": deadline.id, "kind": deadline.kind, "draft_id": deadline.draft_id, "due_at": _iso(deadline.due_at),
        "created_at": _iso(deadline.created_at), "state": deadline.state, "reminded_at": _iso(deadline.reminded_at),
        "closed_at": _iso(deadline.closed_at), "closed_by": deadline.closed_by, "note": deadline.note,
        "phone": (deadline.data or {}).get("phone"), "how": closing["summary"] if closing else None,
        "authentication": closing["data"].get("authentication") if closing else None,
    }
