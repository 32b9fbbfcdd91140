"""A new owner: when the configuration gives a client another owner, a new episode begins.

Someone better suited taking a client over is the practice's own answer to a client who went
quiet, so the old ignored requests no longer count against the client: the change is recorded
(store `recorded`, kind owner_changed) and stands in the history as an episode boundary at the
moment parting read the new configuration. The new owner is told what was pending (the open
requests of the last verdict, drafts in review, open deadlines), and the case file shows it.

The owners parting last read are kept in the store, so an owner changed while the daemon was
stopped counts as well; a client seen for the first time only has its owner noted.
"""

from __future__ import annotations

from datetime import datetime

from daemon.flows.context import Context, common_context, describe_time, person_named, queue_mail

REVIEW_STATES = ("owner_review", "second_review", "sendable", "held")


def notice_owner_changes(ctx: Context, now: datetime) -> None:
    known = ctx.store.known_owners()
    for client in ctx.settings.clients:
        old = known.get(client.id)
        if old == client.owner:
            continue
        if old is None:
            ctx.store.set_owner(client.id, client.owner, now)
            continue
        pending = _pending(ctx, client.id, client.timezone or ctx.settings.working_hours.timezone)
        new_owner = ctx.owner_of(client)
        note = f"owner changed from {old} to {client.owner}"
        with ctx.store.transaction():
            record = ctx.store.add_recorded(client.id, "owner_changed", how=f"{old} -> {client.owner}", note=note,
                                            by="configuration", at=now, recorded_at=now, via=ctx.settings.source)
            ctx.store.set_owner(client.id, client.owner, now)
            ctx.store.append_event("owner_changed", at=now, client_id=client.id, message_ids=[record.message_id],
                                   data={"old": old, "new": client.owner, "pending": pending["requests"],
                                         "drafts": pending["drafts"], "deadlines": pending["deadlines"],
                                         "episode": f"ep-{record.message_id}"})
            queue_mail(ctx, kind="owner-changed", key=f"owner:{client.id}:{record.id}", template="owner_changed.txt.j2",
                       context={**common_context(ctx, client, new_owner), "old_owner": _name(ctx, old),
                                "pending": pending},
                       to=[new_owner.email], now=now, client_id=client.id)
        ctx.rejudge.add(client.id)
        ctx.log.info("%s; a new episode begins", note, extra={"client": client.id})


def _pending(ctx: Context, client_id: str, tz: str) -> dict[str, list[str]]:
    verdict = ctx.store.latest_verdicts([client_id]).get(client_id) or {}
    requests = [f"{request['subject']!r}, sent {describe_time(datetime.fromisoformat(request['sent_at']), tz)}"
                + (" (ignored)" if request.get("ignored") else "")
                for request in verdict.get("open_requests", [])]
    drafts = [f"{draft.kind} draft {draft.id} ({draft.state.replace('_', ' ')})"
              for draft in ctx.store.drafts(list(REVIEW_STATES), client_id)]
    deadlines = [f"{deadline.kind.replace('_', ' ')} due {describe_time(deadline.due_at, tz)}"
                 for deadline in ctx.store.deadlines(["open"], client_id)]
    return {"requests": requests, "drafts": drafts, "deadlines": deadlines}


def _name(ctx: Context, person_id: str) -> str:
    person = person_named(ctx, person_id)
    return person.name if person else person_id
