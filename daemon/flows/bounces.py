"""Delivery failures: the owner is told once, with the address and what the server said.

A bounce's failures are stored by ingest (core/bounces.py reads them); the policy already
counts the returned request as undeliverable rather than ignored (core/rules.py). This step
tells the client's owner once per (message, address): the mail, the event and `told_at` commit
together, so a restart never tells twice.
"""

from __future__ import annotations

from datetime import datetime

from daemon.adapters.store import FailureRow
from daemon.flows.context import Context, common_context, describe_time, queue_mail


def tell_owners_of_bounces(ctx: Context, now: datetime) -> None:
    known = {client.id: client for client in ctx.settings.clients}
    for row in ctx.store.delivery_failures(untold=True):
        client = known.get(row.client_id or "")
        original = ctx.store.message(row.failure.original_message_id)
        if client is None or original is None or original.direction != "out":
            continue  # not a client's, or not a message of ours we know: the bounce stays evidence only
        with ctx.store.transaction():
            if not ctx.store.mark_failure_told(row.failure.original_message_id, row.failure.recipient, now):
                continue
            unreachable = _every_address_bounced(client.addresses, ctx.store.delivery_failures(client.id))
            owner = ctx.owner_of(client)
            tz = client.timezone or ctx.settings.working_hours.timezone
            failure = {"recipient": row.failure.recipient, "reason": row.failure.reason,
                       "status": row.failure.status, "subject": original.subject,
                       "sent_at": describe_time(original.at, tz)}
            queue_mail(ctx, kind="owner-bounce", key=f"bounce:{row.failure.original_message_id}:{row.failure.recipient}",
                       template="delivery_failed.txt.j2",
                       context={**common_context(ctx, client, owner), "failure": failure, "unreachable": unreachable},
                       to=[owner.email], now=now, client_id=client.id)
            ctx.store.append_event("delivery_failure_told", at=now, client_id=client.id,
                                   message_ids=[row.failure.original_message_id, row.bounce_message_id],
                                   data={"owner": owner.id, "recipient": row.failure.recipient,
                                         "status": row.failure.status, "reason": row.failure.reason,
                                         "subject": original.subject, "unreachable": unreachable})
        ctx.log.warning("our email to %s was not delivered (%s): owner told", row.failure.recipient,
                        row.failure.reason, extra={"client": client.id})


def _every_address_bounced(addresses: tuple[str, ...], rows: list[FailureRow]) -> bool:
    return bool(addresses) and set(addresses) <= {row.failure.recipient for row in rows}
