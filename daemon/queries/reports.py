"""The library behind the read-side commands: each command is one call here, returning plain data.

Rules of this module:
- Results are JSON-ready (str, int, bool, None, lists, dicts), times as ISO 8601 in UTC; the
  keys are what `--json` prints, so they only ever grow. daemon/views.py renders the same data.
- Reports open the store with Store.open_readonly: they never write, not even a migration, and
  work while the daemon runs. Verdicts are evaluated fresh from the stored history at `now`, so
  a report is right even when the daemon is not running.
- The few commands that decide something (outbox resend/cancel, deadlines done, pause/resume)
  write their change and its event in one transaction, naming who did it.
- `now` is always a parameter. Problems a user can fix are PartingError: one line each, exit 2.
"""

from __future__ import annotations

import difflib
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daemon.adapters.oauth import sign_in_problem
from daemon.adapters.settings.kinds import did_you_mean
from daemon.adapters.settings.load import Secrets, load_policy_override, load_settings
from daemon.adapters.store import Deadline, Draft, Endorsement, OutboxRow, Store, StoreError
from daemon.core import review as core_review
from daemon.core.errors import PartingError
from daemon.core.model import Client, Envelope, OAuthSettings, Settings
from daemon.core.policy import Verdict, compare, evaluate, policy_hash
from daemon.core.policy import explain as explain_lines
from daemon.core.rules import format_time, is_real_reply
from daemon.core.workhours import Calendar

Data = dict[str, Any]

# Drafts a person may still act on: the states in which review replies are taken.
REVIEW_STATES: tuple[str, ...] = core_review.LIVE_STATES["draft"]
# Outbox rows that wait for a person to decide (`parting outbox resend|cancel`).
ATTENTION_STATES: tuple[str, ...] = ("uncertain", "failed")


class ReportError(PartingError):
    """A report or decision cannot be made as asked; the message says why and what to do."""


# ---- opening ------------------------------------------------------------------------------------


@contextmanager
def _opened(config_path: str | Path, *, write: bool = False) -> Iterator[tuple[Settings, Store]]:
    """The settings and the store (read-only unless `write`); StoreErrors become ReportErrors."""
    with _collector_paused():
        settings = load_settings(config_path)
    with _store_of(settings, write=write) as store:
        yield settings, store


@contextmanager
def _store_of(settings: Settings, *, write: bool = False) -> Iterator[Store]:
    """The store of settings already loaded (read-only unless `write`); StoreErrors become ReportErrors."""
    with _store_problems():
        # Not even a decision creates the database: that is the daemon's job, as the service user.
        if not Path(settings.database).exists():
            raise ReportError(f"database {settings.database} does not exist yet: `parting run` creates it "
                              f"(state.database in {settings.source})")
        store = Store.open(settings.database) if write else Store.open_readonly(settings.database)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def _collector_paused() -> Iterator[None]:
    """For reading a large configuration or every stored envelope: that makes millions of objects
    and no reference cycles, so the cycle collector's passes (each walking every object still
    alive) would take seconds and free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def _store_problems() -> Iterator[None]:
    try:
        yield
    except StoreError as error:
        raise ReportError(str(error)) from None


# ---- small conversions --------------------------------------------------------------------------


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _client(settings: Settings, client_id: str) -> Client:
    for client in settings.clients:
        if client.id == client_id:
            return client
    known = [c.id for c in settings.clients]
    raise ReportError(f"no client {client_id!r} in {settings.source}{did_you_mean(client_id, known)}")


def _name(settings: Settings, person_id: str | None) -> str | None:
    """A person's name; ids that are not people ('parting', a $USER) are shown as written."""
    if person_id is None:
        return None
    return next((p.name for p in settings.people if p.id == person_id), person_id)


def _client_name(settings: Settings, client_id: str | None) -> str | None:
    return next((c.name for c in settings.clients if c.id == client_id), client_id)


def _zone(settings: Settings, client: Client | None = None) -> str:
    return (client.timezone if client else None) or settings.working_hours.timezone


def sign_in_status(oauth: OAuthSettings | None) -> str | None:
    """"sign-in needed: run parting login (why)" while the daemon cannot sign in with OAuth2."""
    problem = sign_in_problem(oauth)
    return f"sign-in needed: run parting login ({problem})" if problem else None


def _header(settings: Settings, now: datetime) -> Data:
    return {"now": _iso(now), "timezone": settings.working_hours.timezone, "config": settings.source}


def _histories(store: Store) -> dict[str, list[Envelope]]:
    """Every client's stored history, oldest first."""
    with _collector_paused():
        return store.envelopes_by_client()


def _verdicts(settings: Settings, histories: dict[str, list[Envelope]], paused: set[str],
              at: datetime) -> dict[str, Verdict]:
    """Every configured client judged at `at` under its policy in `settings`."""
    calendars: dict[str | None, Calendar] = {}
    verdicts = {}
    for client in settings.clients:
        if client.timezone not in calendars:
            calendars[client.timezone] = Calendar(settings.working_hours, client.timezone)
        verdicts[client.id] = evaluate(client, histories.get(client.id, []), settings.policy_for(client),
                                       calendars[client.timezone], at, paused=client.id in paused)
    return verdicts


# ---- status -------------------------------------------------------------------------------------


def status(config_path: str | Path, *, now: datetime) -> Data:
    """Every client's state evaluated at `now`, and what waits for a person."""
    with _opened(config_path) as (settings, store):
        histories = _histories(store)
        verdicts = _verdicts(settings, histories, store.paused_clients(), now)
        clients = [_status_row(settings, client, verdicts[client.id], histories.get(client.id, []), now)
                   for client in settings.clients]
        return {
            **_header(settings, now),
            "clients": clients,
            "drafts_in_review": len(store.drafts(list(REVIEW_STATES))),
            "outbox_attention": len(store.rows(ATTENTION_STATES)),
            "deadlines_due": sum(1 for d in store.deadlines(["open"]) if d.due_at <= now),
            "quarantined": store.quarantine_count(),
            "triage": [{"id": t.id, "message_id": t.message_id, "client": t.client_id, "reason": t.reason,
                        "at": _iso(t.at)} for t in store.triage()],
            "sign_in": sign_in_status(settings.mailbox.oauth),
        }


def _status_row(settings: Settings, client: Client, verdict: Verdict, history: list[Envelope],
                now: datetime) -> Data:
    happened = [env for env in history if env.at <= now]
    last_in = max((env.at for env in happened if is_real_reply(env)), default=None)
    last_out = max((env.at for env in happened if env.direction == "out" and not env.auto_reply), default=None)
    return {
        "id": client.id, "name": client.name, "owner": client.owner, "owner_name": _name(settings, client.owner),
        "state": verdict.state, "policy": verdict.policy_name, "ignored": verdict.ignored_count,
        "open_requests": len(verdict.open_requests), "ladder": list(verdict.ladder),
        "last_in": _iso(last_in), "last_out": _iso(last_out), "next_due": _iso(verdict.next_due),
    }


# ---- explain ------------------------------------------------------------------------------------


def explain(config_path: str | Path, client_id: str, *, now: datetime) -> Data:
    """Why one client is in its state at `now`: the verdict, its evidence in words, its messages."""
    with _opened(config_path) as (settings, store):
        client = _client(settings, client_id)
        history = store.envelopes(client.id)
        paused = client.id in store.paused_clients()
    verdict = evaluate(client, history, settings.policy_for(client), Calendar(settings.working_hours,
                       client.timezone), now, paused=paused)
    zone = _zone(settings, client)
    lines = explain_lines(verdict, client, zone)
    named = [*(mid for hit in verdict.reasons for mid in hit.message_ids),
             *(request.message_id for request in verdict.open_requests)]
    by_id = {env.message_id: env for env in history}
    messages = sorted((by_id[mid] for mid in dict.fromkeys(named) if mid in by_id),
                      key=lambda env: (env.at, env.message_id))
    return {
        **verdict.to_dict(),
        "client_name": client.name, "owner": client.owner, "owner_name": _name(settings, client.owner),
        "timezone": zone, "config": settings.source,
        "explain": lines,
        "next": lines[-1],
        "messages": [{"id": env.message_id, "at": _iso(env.at), "direction": env.direction,
                      "subject": env.subject} for env in messages],
    }


# ---- simulate -----------------------------------------------------------------------------------


def parse_moment(text: str, zone: str) -> datetime:
    """'2026-11-20' (its start) or '2026-11-20 14:30' in `zone`; an explicit offset is kept."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{text!r} is not a date or time: write 2026-11-20 or '2026-11-20 14:30' "
                          f"(read in {zone})") from None
    return moment.replace(tzinfo=ZoneInfo(zone)) if moment.tzinfo is None else moment


def simulate(config_path: str | Path, policy_path: str | Path, *, now: datetime, at: str | None = None) -> Data:
    """Who would change state or ladder under another policy file, at `at` (default `now`).

    Nothing is written: the store is opened read-only and the settings are only read.
    """
    with _collector_paused():
        settings = load_settings(config_path)
        other = load_policy_override(policy_path, settings)
    moment = parse_moment(at, settings.working_hours.timezone) if at else now
    with _store_of(settings) as store:
        histories = _histories(store)
        paused = store.paused_clients()
    before = _verdicts(settings, histories, paused, moment)
    after = _verdicts(other, histories, paused, moment)
    changes = []
    for client in settings.clients:
        old, new = before[client.id], after[client.id]
        why = compare(old, new)
        if why is None:
            continue
        changes.append({
            "client": client.id, "name": client.name,
            "before": old.state, "after": new.state,
            "ladder_before": list(old.ladder), "ladder_after": list(new.ladder),
            "ignored_before": old.ignored_count, "ignored_after": new.ignored_count,
            "why": why,
            "rules_fired": _hits_only_in(new, old),
            "rules_cleared": _hits_only_in(old, new),
        })
    return {
        **_header(settings, now),
        "at": _iso(moment),
        "policy_file": str(policy_path),
        "policy_hash_before": policy_hash(settings.policy),
        "policy_hash_after": policy_hash(other.policy),
        "changes": changes,
        "unchanged": len(settings.clients) - len(changes),
    }


def _hits_only_in(verdict: Verdict, other: Verdict) -> list[Data]:
    """Rule hits of `verdict` that `other` lacks, matched by rule and messages (not by wording,
    which carries policy-dependent times)."""
    theirs = {(hit.rule, hit.message_ids) for hit in other.reasons}
    return [{"rule": hit.rule, "message_ids": list(hit.message_ids), "detail": hit.detail}
            for hit in verdict.reasons if (hit.rule, hit.message_ids) not in theirs]


# ---- drafts -------------------------------------------------------------------------------------


def drafts(config_path: str | Path, *, now: datetime) -> Data:
    """Every draft with its current version and who endorsed that version how."""
    with _opened(config_path) as (settings, store):
        return {**_header(settings, now), "drafts": [_draft_row(settings, store, draft) for draft in store.drafts()]}


def _draft_row(settings: Settings, store: Store, draft: Draft) -> Data:
    versions = store.versions(draft.id)
    current = versions[-1] if versions else None
    endorsements = store.endorsements(draft.id, draft.current_version)
    client = next((c for c in settings.clients if c.id == draft.client_id), None)
    missing = ""
    if current is not None and client is not None and draft.state in REVIEW_STATES:
        missing = core_review.sendable(
            [core_review.Endorsement(e.person, e.role, e.how) for e in endorsements], owner=client.owner,
            writer=current.writer, approvals_required=settings.review.approvals_required,
            version=draft.current_version).missing
    return {
        "id": draft.id, "client": draft.client_id, "client_name": _client_name(settings, draft.client_id),
        "kind": draft.kind, "state": draft.state, "subject": draft.subject, "version": draft.current_version,
        "writer": current.writer if current else None,
        "writer_name": _name(settings, current.writer) if current else None,
        "endorsements": [_endorsement(settings, e) for e in endorsements],
        "missing": missing,
        "hold_until": _iso(draft.hold_until), "created_at": _iso(draft.created_at),
        "updated_at": _iso(draft.updated_at),
    }


def _endorsement(settings: Settings, endorsement: Endorsement) -> Data:
    return {"person": endorsement.person, "name": _name(settings, endorsement.person), "role": endorsement.role,
            "how": endorsement.how, "version": endorsement.version, "at": _iso(endorsement.at),
            "via_message_id": endorsement.via_message_id, "authentication": endorsement.auth_verdict}


def draft(config_path: str | Path, draft_id: int, *, now: datetime) -> Data:
    """One draft in full: every version with its endorsements, the diffs, its history and outbox rows."""
    with _opened(config_path) as (settings, store):
        row = _draft_row(settings, store, store.draft(draft_id))
        versions = store.versions(draft_id)
        events = [e for e in store.events(client_id=row["client"]) if e.draft_id == draft_id]
        outbox = [_outbox_row(settings, r) for r in store.rows() if r.draft_id == draft_id]
        return {
            **_header(settings, now),
            "draft": row,
            "text": versions[-1].text if versions else "",
            "versions": [{
                "version": v.version, "writer": v.writer, "writer_name": _name(settings, v.writer),
                "created_at": _iso(v.created_at), "text_sha256": v.text_sha256, "text": v.text,
                "endorsements": [_endorsement(settings, e) for e in store.endorsements(draft_id, v.version)],
            } for v in versions],
            "diffs": [{"from": a.version, "to": b.version, "diff": _diff(a.text, b.text, a.version, b.version)}
                      for a, b in zip(versions, versions[1:])],
            "history": [{"id": e.id, "at": _iso(e.at), "kind": e.kind,
                         "who": _name(settings, (e.data or {}).get("person") or (e.data or {}).get("by")),
                         "message_ids": list(e.message_ids), "data": e.data or {}} for e in events],
            "outbox": outbox,
        }


def _diff(old: str, new: str, old_version: int, new_version: int) -> str:
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), f"version {old_version}",
                                 f"version {new_version}", lineterm="")
    return "\n".join(lines)


# ---- outbox -------------------------------------------------------------------------------------


def outbox(config_path: str | Path, *, now: datetime) -> Data:
    """Every outbox row, oldest first, with where its sending stands."""
    with _opened(config_path) as (settings, store):
        return {**_header(settings, now), "rows": [_outbox_row(settings, row) for row in store.rows()]}


def _outbox_row(settings: Settings, row: OutboxRow) -> Data:
    return {
        "id": row.id, "kind": row.kind, "client": row.client_id, "client_name": _client_name(settings, row.client_id),
        "to": list(row.recipients), "subject": _subject(row.raw), "state": row.state, "attempts": row.attempts,
        "last_error": row.last_error, "message_id": row.message_id, "draft_id": row.draft_id,
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at), "sent_at": _iso(row.sent_at),
        "not_before": _iso(row.not_before), "next_attempt_at": _iso(row.next_attempt_at),
    }


def _subject(raw: bytes) -> str:
    try:
        return str(BytesHeaderParser(policy=default_policy).parsebytes(raw).get("Subject", ""))
    except Exception:  # noqa: BLE001 - a subject in a listing is a nicety, never a reason to fail
        return ""


def resend_outbox(config_path: str | Path, row_id: int, *, who: str, now: datetime) -> Data:
    """Queue an uncertain or failed row again (a person decided a duplicate is acceptable)."""
    return _decide_outbox(config_path, row_id, "resend", who, now)


def cancel_outbox(config_path: str | Path, row_id: int, *, who: str, now: datetime) -> Data:
    """Cancel a queued, uncertain or failed row: it will never be sent."""
    return _decide_outbox(config_path, row_id, "cancel", who, now)


def confirm_outbox(config_path: str | Path, row_id: int, *, who: str, now: datetime) -> Data:
    """An uncertain row a person checked was delivered (it is in the recipient's mailbox, say):
    it becomes sent, with what a send sets off (a release's follow-up deadlines)."""
    from daemon.adapters.templates import Templates
    from daemon.flows.context import Context
    from daemon.flows.sending import confirm_delivered

    with _opened(config_path, write=True) as (settings, store):
        before = store.row(row_id)
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        confirm_delivered(ctx, before, who, now)
        return {**_outbox_row(settings, store.row(row_id)), "from_state": before.state, "by": who}


def _decide_outbox(config_path: str | Path, row_id: int, action: str, who: str, now: datetime) -> Data:
    with _opened(config_path, write=True) as (settings, store), store.transaction():
        before = store.row(row_id)
        (store.resend if action == "resend" else store.cancel)(row_id, now)
        store.append_event(f"outbox_{action}", at=now, client_id=before.client_id, draft_id=before.draft_id,
                           message_ids=[before.message_id],
                           data={"outbox_id": row_id, "kind": before.kind, "from_state": before.state, "by": who})
        return {**_outbox_row(settings, store.row(row_id)), "from_state": before.state, "by": who}


# ---- deadlines ----------------------------------------------------------------------------------


def deadlines(config_path: str | Path, *, now: datetime) -> Data:
    """Overdue deadlines first, then the other open ones by due time, then the closed, latest first."""
    with _opened(config_path) as (settings, store):
        rows = [_deadline_row(settings, d, now) for d in store.deadlines()]
    rank = {"overdue": 0, "open": 1}
    open_rows = sorted((r for r in rows if r["status"] in rank),
                       key=lambda r: (rank[r["status"]], r["due_at"], r["id"]))
    closed = sorted((r for r in rows if r["status"] not in rank), key=lambda r: (r["closed_at"] or "", r["id"]),
                    reverse=True)
    return {
        **_header(settings, now),
        "deadlines": [*open_rows, *closed],
        "overdue": sum(1 for r in rows if r["status"] == "overdue"),
        "open": sum(1 for r in rows if r["state"] == "open"),
        "closed": len(closed),
    }


def _deadline_row(settings: Settings, deadline: Deadline, now: datetime) -> Data:
    status = "overdue" if deadline.state == "open" and deadline.due_at <= now else deadline.state
    data = deadline.data or {}
    return {
        "id": deadline.id, "kind": deadline.kind, "client": deadline.client_id,
        "client_name": _client_name(settings, deadline.client_id), "phone": data.get("phone"),
        "contact": data.get("contact"), "draft_id": deadline.draft_id, "due_at": _iso(deadline.due_at),
        "state": deadline.state, "status": status, "reminded_at": _iso(deadline.reminded_at),
        "closed_at": _iso(deadline.closed_at), "closed_by": deadline.closed_by, "note": deadline.note,
    }


def close_deadline(config_path: str | Path, deadline_id: int, note: str, *, who: str, now: datetime) -> Data:
    """Mark an open deadline done (the call was made), with a note for the case file."""
    from daemon.adapters.templates import Templates
    from daemon.flows.context import Context
    from daemon.flows.followup import close_by_command

    with _opened(config_path, write=True) as (settings, store):
        # Closing sends no mail and signs no token: no secrets are read, the shipped templates suffice.
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        if not close_by_command(ctx, deadline_id, note, who, now):
            closed = store.deadline(deadline_id)
            when = format_time(closed.closed_at, ZoneInfo(settings.working_hours.timezone))
            raise ReportError(f"deadline {deadline_id} is already {closed.state} (by {closed.closed_by}, "
                              f"{when}): nothing changed")
        return _deadline_row(settings, store.deadline(deadline_id), now)


# ---- pause / resume -----------------------------------------------------------------------------


def set_paused(config_path: str | Path, client_id: str, paused: bool, *, who: str, now: datetime) -> Data:
    """Pause (or resume) evaluation of one client; `changed` is False when it already was so."""
    with _opened(config_path, write=True) as (settings, store):
        client = _client(settings, client_id)
        with store.transaction():
            changed = (client.id in store.paused_clients()) != paused
            if changed:
                store.set_paused(client.id, paused, now)
                store.append_event("client_paused" if paused else "client_resumed", at=now, client_id=client.id,
                                   data={"by": who})
        return {"client": client.id, "name": client.name, "paused": paused, "changed": changed, "by": who,
                "at": _iso(now)}
