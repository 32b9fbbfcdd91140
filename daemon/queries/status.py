"""`parting status`: every client's state at `now`, and what waits for a person."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.core.model import Client, Envelope, Settings
from daemon.core.policy import Verdict
from daemon.core.rules import is_real_reply
from daemon.queries.common import (
    ATTENTION_STATES,
    Data,
    header,
    iso,
    opened,
    person_name,
    review_states,
    stored_histories,
    verdicts_at,
)

if TYPE_CHECKING:
    from daemon.core.oauthsettings import OAuthSettings


def sign_in_status(oauth: OAuthSettings | None) -> str | None:
    """"sign-in needed: run parting login (why)" while the daemon cannot sign in with OAuth2."""
    if oauth is None:  # a password: nothing to sign in, and no OAuth module to import
        return None
    from daemon.adapters.oauth import sign_in_problem

    problem = sign_in_problem(oauth)
    return f"sign-in needed: run parting login ({problem})" if problem else None


def status(config_path: str | Path, *, now: datetime) -> Data:
    """Every client's state evaluated at `now`, and what waits for a person."""
    with opened(config_path) as (settings, store):
        histories = stored_histories(store, now, settings)
        verdicts = verdicts_at(settings, histories, store.paused_clients(), now)
        # The histories begin at a recent real reply (which the latest, last_in, is not before);
        # the latest mail of ours may be older.
        sent = store.last_sent([client.id for client in settings.clients], now)
        clients = [_status_row(settings, client, verdicts[client.id], histories.get(client.id, []),
                               sent.get(client.id), now)
                   for client in settings.clients]
        return {
            **header(settings, now),
            "clients": clients,
            # Counted in SQL: building the rows (and creating their classes) cost more than the rest.
            "drafts_in_review": store.draft_count(list(review_states())),
            "outbox_attention": store.row_count(ATTENTION_STATES),
            "deadlines_due": store.due_count(now),
            "quarantined": store.quarantine_count(),
            # Items a failure set aside (flows/context.py `park`): the rest went on without them.
            "parked": [{"what": (e.data or {}).get("what"), "client": e.client_id,
                        "reason": (e.data or {}).get("reason"), "at": iso(e.at)}
                       for e in store.events(kinds=["item_parked"])],
            "sign_in": sign_in_status(settings.mailbox.oauth),
            "triage": [{"id": t.id, "message_id": t.message_id, "client": t.client_id, "reason": t.reason,
                        "at": iso(t.at)} for t in store.triage()],
            # Addresses a person assigned to a client in triage (parting triage assign --learn-address).
            "learned_addresses": [{"address": a.address, "client": a.client_id, "by": a.by, "at": iso(a.at)}
                                  for a in store.learned_addresses()],
        }


def _status_row(settings: Settings, client: Client, verdict: Verdict, history: list[Envelope],
                sent: datetime | None, now: datetime) -> Data:
    happened = [env for env in history if env.at <= now]
    last_in = max((env.at for env in happened if is_real_reply(env) and env.recorded != "owner_changed"),
                  default=None)
    # Assigned messages are not in `sent` (they are stored without a client), but always in the history.
    last_out = max((env.at for env in happened if env.direction == "out" and not env.auto_reply),
                   default=None)
    if sent is not None and (last_out is None or sent > last_out):
        last_out = sent
    return {
        "id": client.id, "name": client.name, "owner": client.owner, "owner_name": person_name(settings, client.owner),
        "state": verdict.state, "policy": verdict.policy_name, "ignored": verdict.ignored_count,
        "open_requests": len(verdict.open_requests), "ladder": list(verdict.ladder),
        "last_in": iso(last_in), "last_out": iso(last_out), "next_due": iso(verdict.next_due),
    }
