"""`parting explain CLIENT`: why a client is in its state, in words and messages."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from daemon.core.policy import evaluate, replies_read
from daemon.core.policy import explain as explain_lines
from daemon.queries.common import (
    Data,
    calendars_of,
    find_client,
    iso,
    opened,
    person_name,
    zone_of,
)


def explain(config_path: str | Path, client_id: str, *, now: datetime) -> Data:
    """Why one client is in its state at `now`: the verdict, its evidence in words, its messages."""
    with opened(config_path) as (settings, store):
        client = find_client(settings, client_id)
        # As far back as the verdict reads: every message it names is in that part.
        reads = replies_read(settings.policy_for(client))
        history = store.recent_histories({client.id: reads}, now).get(client.id, [])
        paused = client.id in store.paused_clients()
    verdict = evaluate(client, history, settings.policy_for(client), calendars_of(settings)(client.timezone), now,
                       paused=paused)
    zone = zone_of(settings, client)
    lines = explain_lines(verdict, client, zone)
    named = [*(mid for hit in verdict.reasons for mid in hit.message_ids),
             *(request.message_id for request in verdict.open_requests)]
    by_id = {env.message_id: env for env in history}
    messages = sorted((by_id[mid] for mid in dict.fromkeys(named) if mid in by_id),
                      key=lambda env: (env.at, env.message_id))
    return {
        **verdict.to_dict(),
        "client_name": client.name, "owner": client.owner, "owner_name": person_name(settings, client.owner),
        "timezone": zone, "config": settings.source,
        "explain": lines,
        "next": lines[-1],
        "messages": [{"id": env.message_id, "at": iso(env.at), "direction": env.direction,
                      "subject": env.subject} for env in messages],
    }
