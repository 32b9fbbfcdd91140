"""`parting triage`: messages from unknown addresses a person must place, and whose they most likely are."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from daemon.adapters.store import Store, TriageItem
from daemon.core.model import Client, Settings
from daemon.queries.common import Data, header, iso, opened


def likely_client(settings: Settings, store: Store, item: TriageItem) -> tuple[Client | None, str]:
    """The client the message most likely belongs to, and why: the triage row's own client, the
    client of its thread, or the client at its sender's domain; (None, "") when none is likely."""
    known = {client.id: client for client in settings.clients}
    if item.client_id in known:
        return known[item.client_id], "named when it was set aside"
    message = store.message(item.message_id)
    if message is None:
        return None, ""
    thread_client = store.client_of_thread(message.thread_id)
    if thread_client in known:
        return known[thread_client], "it was written into that client's conversation"
    domain = message.from_addr.rpartition("@")[2].lower()
    for client in settings.clients:
        if domain and (domain in client.domains or any(a.rpartition("@")[2] == domain for a in client.addresses)):
            return client, f"the sender writes from {domain}, the client's domain"
    return None, ""


def triage_entry(settings: Settings, store: Store, item: TriageItem) -> Data:
    message = store.message(item.message_id)
    client, why = likely_client(settings, store, item)
    return {
        "id": item.id, "message_id": item.message_id, "from": message.from_addr if message else None,
        "subject": message.subject if message else None, "at": iso(item.at),
        "received_at": iso(message.at) if message else None, "reason": item.reason,
        "likely_client": client.id if client else None, "likely_because": why,
        "closed_at": iso(item.closed_at), "closed_by": item.closed_by, "note": item.note,
    }


def triage(config_path: str | Path, *, now: datetime, include_closed: bool = False) -> Data:
    """Open triage items (and closed ones with include_closed), oldest first."""
    with opened(config_path) as (settings, store):
        items = [triage_entry(settings, store, item) for item in store.triage(open_only=not include_closed)]
        return {**header(settings, now), "items": items, "open": sum(1 for i in items if i["closed_at"] is None)}
