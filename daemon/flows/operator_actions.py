"""What a person decides from the command line: resend, confirm or cancel an outbox row, close a
deadline, pause or resume a client.

Each decision writes its change and its event in one transaction, naming who did it, and returns
the changed row in the same shape as the listings (daemon/queries/listings.py).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.adapters.settings.secret_files import Secrets
from daemon.core.rules import format_time
from daemon.queries.common import (
    Data,
    ReportError,
    find_client,
    iso,
    opened,
)
from daemon.queries.listings import deadline_row, outbox_row


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

    with opened(config_path, write=True) as (settings, store):
        before = store.row(row_id)
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        confirm_delivered(ctx, before, who, now)
        return {**outbox_row(settings, store.row(row_id)), "from_state": before.state, "by": who}


def _decide_outbox(config_path: str | Path, row_id: int, action: str, who: str, now: datetime) -> Data:
    with opened(config_path, write=True) as (settings, store), store.transaction():
        before = store.row(row_id)
        if action == "resend" and (blocker := store.release_blocker(before)):
            raise ReportError(f"cannot resend outbox row {row_id}: {blocker}; a release is sent again only"
                              " while its draft is sendable at the version the row carries")
        (store.resend if action == "resend" else store.cancel)(row_id, now)
        store.append_event(f"outbox_{action}", at=now, client_id=before.client_id, draft_id=before.draft_id,
                           message_ids=[before.message_id],
                           data={"outbox_id": row_id, "kind": before.kind, "from_state": before.state, "by": who})
        return {**outbox_row(settings, store.row(row_id)), "from_state": before.state, "by": who}


def close_deadline(config_path: str | Path, deadline_id: int, note: str, *, who: str, now: datetime) -> Data:
    """Mark an open deadline done (the call was made), with a note for the case file."""
    from daemon.adapters.templates import Templates
    from daemon.flows.context import Context
    from daemon.flows.followup import close_by_command

    with opened(config_path, write=True) as (settings, store):
        # Closing sends no mail and signs no token: no secrets are read, the shipped templates suffice.
        ctx = Context(settings, Secrets(None, None, b""), store, Templates())
        if not close_by_command(ctx, deadline_id, note, who, now):
            closed = store.deadline(deadline_id)
            when = (format_time(closed.closed_at, ZoneInfo(settings.working_hours.timezone))
                    if closed.closed_at else "at an unknown time")
            raise ReportError(f"deadline {deadline_id} is already {closed.state} (by {closed.closed_by}, "
                              f"{when}): nothing changed")
        return deadline_row(settings, store.deadline(deadline_id), now)


def set_paused(config_path: str | Path, client_id: str, paused: bool, *, who: str, now: datetime) -> Data:
    """Pause (or resume) evaluation of one client; `changed` is False when it already was so."""
    with opened(config_path, write=True) as (settings, store):
        client = find_client(settings, client_id)
        with store.transaction():
            changed = (client.id in store.paused_clients()) != paused
            if changed:
                store.set_paused(client.id, paused, now)
                store.append_event("client_paused" if paused else "client_resumed", at=now, client_id=client.id,
                                   data={"by": who})
            if paused:
                # At once, not at the daemon's next cycle: a paused client's release rows never leave.
                # (Resuming is the daemon's: it queues mail and signs tokens.)
                from daemon.adapters.templates import Templates
                from daemon.flows.context import Context
                from daemon.flows.drafts import follow_client

                ctx = Context(settings, Secrets(None, None, b""), store, Templates())
                follow_client(ctx, client.id, "paused", None, now)
        return {"client": client.id, "name": client.name, "paused": paused, "changed": changed, "by": who,
                "at": iso(now)}
