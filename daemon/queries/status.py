"""`parting status`: every client's state at `now`, and what waits for a person."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from daemon.adapters.store import Store
from daemon.core.basis import inputs_digest, last_exchange, still_holds
from daemon.core.model import Client, Settings
from daemon.core.policy import Verdict, policy_hash
from daemon.queries.common import (
    ATTENTION_STATES,
    Data,
    header,
    iso,
    opened,
    person_name,
    review_states,
    verdicts_at,
)


def status(config_path: str | Path, *, now: datetime, reuse: bool = True) -> Data:
    """Every client's state at `now`, and what waits for a person.

    A client's stored verdict is shown when it provably still holds at `now` (core/basis.py: same
    messages, same inputs, before its next_due); every other client is evaluated afresh from its
    stored history, as is everyone with `reuse=False`. The result is the same either way."""
    with opened(config_path) as (settings, store):
        paused = store.paused_clients()
        held = _verdicts_that_hold(settings, store, paused, now) if reuse else {}
        rows = {client_id: row for client_id, row in held.items()}
        stale = [client for client in settings.clients if client.id not in held]
        histories = {client.id: store.envelopes(client.id) for client in stale}
        fresh = verdicts_at(settings, histories, paused, now, only=stale)
        for client in stale:
            rows[client.id] = _status_row(settings, client, fresh[client.id],
                                          *last_exchange(histories.get(client.id, []), now))
        clients = [rows[client.id] for client in settings.clients]
        return {
            **header(settings, now),
            "clients": clients,
            "drafts_in_review": len(store.drafts(list(review_states()))),
            "outbox_attention": len(store.rows(ATTENTION_STATES)),
            "deadlines_due": sum(1 for d in store.deadlines(["open"]) if d.due_at <= now),
            "quarantined": store.quarantine_count(),
            "triage": [{"id": t.id, "message_id": t.message_id, "client": t.client_id, "reason": t.reason,
                        "at": iso(t.at)} for t in store.triage()],
        }


def _verdicts_that_hold(settings: Settings, store: Store, paused: set[str], now: datetime) -> dict[str, Data]:
    """Status rows made from the stored verdicts that an evaluation at `now` would give again."""
    stored = store.verdicts_with_bases()
    counts = store.message_counts()
    hashes: dict[int, str] = {}
    rows = {}
    for client in settings.clients:
        verdict, basis = stored.get(client.id, ({}, None))
        if not basis:
            continue
        policy = settings.policy_for(client)
        if id(policy) not in hashes:
            hashes[id(policy)] = policy_hash(policy)
        inputs = inputs_digest(client, settings.working_hours, hashes[id(policy)], client.id in paused)
        evaluated = basis.get("evaluated_at")
        moved = evaluated is None or store.has_mail_between(client.id, datetime.fromisoformat(evaluated), now)
        if still_holds(basis, verdict, messages=counts.get(client.id, 0), inputs=inputs, now=now,
                       mail_since_evaluation=moved):
            rows[client.id] = _row(settings, client, verdict["state"], verdict["policy_name"],
                                   verdict["ignored_count"], len(verdict["open_requests"]), verdict["ladder"],
                                   basis["last_in"], basis["last_out"], verdict["next_due"])
    return rows


def _status_row(settings: Settings, client: Client, verdict: Verdict, last_in: datetime | None,
                last_out: datetime | None) -> Data:
    return _row(settings, client, verdict.state, verdict.policy_name, verdict.ignored_count,
                len(verdict.open_requests), list(verdict.ladder), iso(last_in), iso(last_out), iso(verdict.next_due))


def _row(settings: Settings, client: Client, state: str, policy: str, ignored: int, open_requests: int,
         ladder: list[str], last_in: str | None, last_out: str | None, next_due: str | None) -> Data:
    return {
        "id": client.id, "name": client.name, "owner": client.owner, "owner_name": person_name(settings, client.owner),
        "state": state, "policy": policy, "ignored": ignored, "open_requests": open_requests, "ladder": list(ladder),
        "last_in": last_in, "last_out": last_out, "next_due": _utc(next_due),
    }


def _utc(text: str | None) -> str | None:
    return None if text is None else iso(datetime.fromisoformat(text))
