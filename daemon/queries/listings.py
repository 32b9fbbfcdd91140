"""The listings people read: drafts (one in full), the outbox and the deadlines, as plain data."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core.model import Settings
from daemon.queries.common import (
    Data,
    client_name,
    header,
    iso,
    opened,
    person_name,
    review_states,
)

if TYPE_CHECKING:  # made where the store reads them: each listing creates only its own rows
    from daemon.adapters.store import Deadline, Draft, Endorsement, OutboxRow


def drafts(config_path: str | Path, *, now: datetime) -> Data:
    """Every draft with its current version and who endorsed that version how (three queries,
    whatever the number of drafts: no texts are read)."""
    with opened(config_path) as (settings, store):
        writers, endorsements = store.latest_writers(), store.current_endorsements()
        return {**header(settings, now), "drafts": [
            draft_row(settings, draft, writers.get(draft.id), endorsements.get(draft.id, []))
            for draft in store.drafts()]}


def draft_row(settings: Settings, draft: Draft, writer: str | None, endorsements: list[Endorsement]) -> Data:
    """One draft as listed; `writer` wrote its latest version (None: it has none)."""
    client = next((c for c in settings.clients if c.id == draft.client_id), None)
    missing = ""
    if writer is not None and client is not None and draft.state in review_states():
        # Here: outbox and deadlines need none of it; and the two-person rule alone, not the state machine.
        from daemon.core import endorsements as rule

        missing = rule.sendable(
            [rule.Endorsement(e.person, e.role, e.how) for e in endorsements], owner=client.owner,
            writer=writer, approvals_required=settings.review.approvals_required,
            version=draft.current_version).missing
    return {
        "id": draft.id, "client": draft.client_id, "client_name": client_name(settings, draft.client_id),
        "kind": draft.kind, "state": draft.state, "subject": draft.subject, "version": draft.current_version,
        "writer": writer,
        "writer_name": person_name(settings, writer) if writer is not None else None,
        "endorsements": [endorsement_row(settings, e) for e in endorsements],
        "missing": missing,
        "hold_until": iso(draft.hold_until), "created_at": iso(draft.created_at),
        "updated_at": iso(draft.updated_at),
    }


def endorsement_row(settings: Settings, endorsement: Endorsement) -> Data:
    return {"person": endorsement.person, "name": person_name(settings, endorsement.person), "role": endorsement.role,
            "how": endorsement.how, "version": endorsement.version, "at": iso(endorsement.at),
            "via_message_id": endorsement.via_message_id, "authentication": endorsement.auth_verdict}


def draft(config_path: str | Path, draft_id: int, *, now: datetime) -> Data:
    """One draft in full: every version with its endorsements, the diffs, its history and outbox rows."""
    with opened(config_path) as (settings, store):
        versions = store.versions(draft_id)
        current = store.draft(draft_id)
        row = draft_row(settings, current, versions[-1].writer if versions else None,
                        store.endorsements(draft_id, current.current_version))
        events = [e for e in store.events(client_id=row["client"]) if e.draft_id == draft_id]
        outbox = [outbox_row(settings, r) for r in store.rows() if r.draft_id == draft_id]
        return {
            **header(settings, now),
            "draft": row,
            "text": versions[-1].text if versions else "",
            "versions": [{
                "version": v.version, "writer": v.writer, "writer_name": person_name(settings, v.writer),
                "created_at": iso(v.created_at), "text_sha256": v.text_sha256, "text": v.text,
                "endorsements": [endorsement_row(settings, e) for e in store.endorsements(draft_id, v.version)],
            } for v in versions],
            "diffs": [{"from": a.version, "to": b.version, "diff": version_diff(a.text, b.text, a.version, b.version)}
                      for a, b in zip(versions, versions[1:])],
            "history": [{"id": e.id, "at": iso(e.at), "kind": e.kind,
                         "who": person_name(settings, (e.data or {}).get("person") or (e.data or {}).get("by")),
                         "message_ids": list(e.message_ids), "data": e.data or {}} for e in events],
            "outbox": outbox,
        }


def version_diff(old: str, new: str, old_version: int, new_version: int) -> str:
    import difflib  # here: only `parting drafts show` compares versions

    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), f"version {old_version}",
                                 f"version {new_version}", lineterm="")
    return "\n".join(lines)


def outbox(config_path: str | Path, *, now: datetime) -> Data:
    """Every outbox row, oldest first, with where its sending stands."""
    with opened(config_path) as (settings, store):
        return {**header(settings, now), "rows": [outbox_row(settings, row) for row in store.rows()]}


def outbox_row(settings: Settings, row: OutboxRow) -> Data:
    return {
        "id": row.id, "kind": row.kind, "client": row.client_id, "client_name": client_name(settings, row.client_id),
        "to": list(row.recipients), "subject": subject_of(row.raw), "state": row.state, "attempts": row.attempts,
        "last_error": row.last_error, "message_id": row.message_id, "draft_id": row.draft_id,
        "created_at": iso(row.created_at), "updated_at": iso(row.updated_at), "sent_at": iso(row.sent_at),
        "not_before": iso(row.not_before), "next_attempt_at": iso(row.next_attempt_at),
    }


def subject_of(raw: bytes) -> str:
    """The decoded Subject of a message parting built (core/outgoing.py), as the email package's
    default policy reads it. Read from the header block by hand: the email parser and its policy
    are a tenth of this command's imports; encoded words go through email.header, which is light."""
    try:
        head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].decode("ascii")
        value: str | None = None
        for line in head.replace("\r\n", "\n").split("\n"):
            if value is not None:
                if line[:1] not in (" ", "\t"):
                    break
                value += line  # unfolding: the line break goes, the whitespace after it stays
            elif line[:8].lower() == "subject:":
                value = line[8:]
        if value is None:
            return ""
        if "=?" not in value:
            return value.lstrip()
        from email.header import decode_header, make_header

        return str(make_header(decode_header(value)))
    except Exception:  # noqa: BLE001 - not a message as parting writes them: the parser's reading
        return _parsed_subject(raw)


def _parsed_subject(raw: bytes) -> str:
    try:
        from email.parser import BytesHeaderParser
        from email.policy import default as default_policy

        return str(BytesHeaderParser(policy=default_policy).parsebytes(raw).get("Subject", ""))
    except Exception:  # noqa: BLE001 - a subject in a listing is a nicety, never a reason to fail
        return ""


def deadlines(config_path: str | Path, *, now: datetime) -> Data:
    """Overdue deadlines first, then the other open ones by due time, then the closed, latest first."""
    with opened(config_path) as (settings, store):
        rows = [deadline_row(settings, d, now) for d in store.deadlines()]
    rank = {"overdue": 0, "open": 1}
    open_rows = sorted((r for r in rows if r["status"] in rank),
                       key=lambda r: (rank[r["status"]], r["due_at"], r["id"]))
    closed = sorted((r for r in rows if r["status"] not in rank), key=lambda r: (r["closed_at"] or "", r["id"]),
                    reverse=True)
    return {
        **header(settings, now),
        "deadlines": [*open_rows, *closed],
        "overdue": sum(1 for r in rows if r["status"] == "overdue"),
        "open": sum(1 for r in rows if r["state"] == "open"),
        "closed": len(closed),
    }


def deadline_row(settings: Settings, deadline: Deadline, now: datetime) -> Data:
    status = "overdue" if deadline.state == "open" and deadline.due_at <= now else deadline.state
    data = deadline.data or {}
    return {
        "id": deadline.id, "kind": deadline.kind, "client": deadline.client_id,
        "client_name": client_name(settings, deadline.client_id), "phone": data.get("phone"),
        "contact": data.get("contact"), "draft_id": deadline.draft_id, "due_at": iso(deadline.due_at),
        "state": deadline.state, "status": status, "reminded_at": iso(deadline.reminded_at),
        "closed_at": iso(deadline.closed_at), "closed_by": deadline.closed_by, "note": deadline.note,
    }
