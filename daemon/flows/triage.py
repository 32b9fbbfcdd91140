"""Triage closed by a person: a message from an unknown address is assigned to a client or dismissed.

- Assigning makes the message the client's from then on (store `message_assignments`): it
  counts in the client's history at its own time, so a real reply from a colleague's private
  address answers the open requests, and the client is judged again at once. With
  `learn_address` later mail from that address is the client's too (store `learned_addresses`,
  read by ingest; `status` lists them).
- Dismissing keeps the note and changes nothing else.
- The owner of the client the message most likely belongs to (queries/triage.likely_client)
  gets one email about each item, with a token, and can reply ASSIGN <client> [LEARN] or
  DISMISS <note> (flows/owner_replies.py); the same decisions come from `parting triage`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from daemon.adapters.settings.secret_files import Secrets
from daemon.adapters.store import StoreError, TriageItem
from daemon.core import review as core
from daemon.core.model import Client
from daemon.flows.context import Context, common_context, describe_time, queue_mail
from daemon.queries.common import Data, ReportError, find_client, opened
from daemon.queries.triage import likely_client, triage_entry


def tell_owners_of_triage(ctx: Context, now: datetime) -> None:
    items = ctx.store.triage()
    if not items:
        return
    told = {e.data.get("triage_id") for e in ctx.store.events(kinds=["triage_told"]) if e.data}
    for item in items:
        if item.id in told:
            continue
        client, why = likely_client(ctx.settings, ctx.store, item)
        message = ctx.store.message(item.message_id)
        if client is None or message is None:
            continue
        from daemon.flows.answered import notice_token

        owner = ctx.owner_of(client)
        tz = client.timezone or ctx.settings.working_hours.timezone
        with ctx.store.transaction():
            token = notice_token(ctx, client, owner, kind="triage", subject_kind="triage", subject_id=item.id,
                                 episode="", now=now)
            _, message_id = queue_mail(
                ctx, kind="owner-triage", key=f"triage:{item.id}", template="triage_owner.txt.j2",
                context={**common_context(ctx, client, owner), "why": why,
                         "message": {"from_addr": message.from_addr, "subject": message.subject,
                                     "received_at": describe_time(message.at, tz), "reason": item.reason}},
                to=[owner.email], now=now, client_id=client.id, reply_to=[token.reply_to],
                subject_prefix=token.subject_prefix)
            token.issued_in(ctx, message_id, now)
            ctx.store.append_event("triage_told", at=now, client_id=client.id, message_ids=[item.message_id],
                                   data={"triage_id": item.id, "owner": owner.id, "from": message.from_addr,
                                         "likely_because": why})
        ctx.log.info("triage item %d: owner %s asked", item.id, owner.id, extra={"client": client.id})


def triage_problem(ctx: Context, command: core.Command) -> str | None:
    """Why an ASSIGN or DISMISS reply cannot be carried out; None when it can."""
    if command.kind == "assign":
        client_id, _ = _assign_words(command.reason)
        known = [client.id for client in ctx.settings.clients]
        if client_id not in known:
            return f"ASSIGN needs a client id first ({', '.join(known)}), e.g. ASSIGN {known[0] if known else 'acme'}"
        return None
    if not command.reason.strip():
        return "DISMISS needs a note saying why the message needs nothing, e.g. DISMISS newsletter"
    return None


def apply_triage_command(ctx: Context, triage_id: int, command: core.Command, who: str, now: datetime, *,
                         via: str) -> None:
    item = _item(ctx, triage_id)
    if command.kind == "assign":
        client_id, learn = _assign_words(command.reason)
        assign(ctx, item, ctx.settings.client(client_id), who, now, learn_address=learn, via=via)
    else:
        dismiss(ctx, item, command.reason.strip(), who, now, via=via)


def assign(ctx: Context, item: TriageItem, client: Client, who: str, now: datetime, *, learn_address: bool,
           via: str) -> bool:
    """The message becomes the client's; False when the item was closed already."""
    message = ctx.store.message(item.message_id)
    with ctx.store.transaction():
        if not ctx.store.close_triage(item.id, now, who, f"assigned to {client.id}"):
            return False
        ctx.store.assign_message(item.message_id, client.id, who, now)
        learned = bool(learn_address and message and message.from_addr
                       and ctx.store.learn_address(message.from_addr, client.id, who, now, item.message_id))
        ctx.store.append_event("triage_assigned", at=now, client_id=client.id, message_ids=[item.message_id],
                               data={"triage_id": item.id, "by": who, "from": message.from_addr if message else None,
                                     "address": message.from_addr if message else None,
                                     "learned_address": learned, "via": via})
    ctx.rejudge.add(client.id)
    ctx.log.info("triage item %d assigned to %s by %s", item.id, client.id, who, extra={"client": client.id})
    return True


def dismiss(ctx: Context, item: TriageItem, note: str, who: str, now: datetime, *, via: str) -> bool:
    message = ctx.store.message(item.message_id)
    with ctx.store.transaction():
        if not ctx.store.close_triage(item.id, now, who, note):
            return False
        ctx.store.append_event("triage_dismissed", at=now, client_id=item.client_id, message_ids=[item.message_id],
                               data={"triage_id": item.id, "by": who, "note": note,
                                     "from": message.from_addr if message else None, "via": via})
    return True


def assign_from_command(config_path: str | Path, triage_id: int, client_id: str, *, learn_address: bool, who: str,
                        now: datetime) -> Data:
    """`parting triage assign`: the message becomes CLIENT's; the daemon judges the client again."""
    with _context(config_path) as ctx:
        item = _open_item(ctx, triage_id)
        client = find_client(ctx.settings, client_id)
        try:
            assign(ctx, item, client, who, now, learn_address=learn_address, via="command line")
        except StoreError as problem:
            raise ReportError(str(problem)) from None
        return {**triage_entry(ctx.settings, ctx.store, _item(ctx, triage_id)), "client": client.id,
                "learned_address": bool(learn_address)}


def dismiss_from_command(config_path: str | Path, triage_id: int, note: str, *, who: str, now: datetime) -> Data:
    """`parting triage dismiss`: the message needs nothing; the note is kept."""
    if not note.strip():
        raise ReportError("say why the message needs nothing: --note TEXT")
    with _context(config_path) as ctx:
        dismiss(ctx, _open_item(ctx, triage_id), note.strip(), who, now, via="command line")
        return triage_entry(ctx.settings, ctx.store, _item(ctx, triage_id))


# ---- helpers ----------------------------------------------------------------------------------------


@contextmanager
def _context(config_path: str | Path) -> Iterator[Context]:
    """A Context over the store for one command-line decision (no mail is signed: no secrets)."""
    from daemon.adapters.templates import Templates

    with opened(config_path, write=True) as (settings, store):
        yield Context(settings, Secrets(None, None, b""), store, Templates())


def _item(ctx: Context, triage_id: int) -> TriageItem:
    item = next((t for t in ctx.store.triage(open_only=False) if t.id == triage_id), None)
    if item is None:
        raise ReportError(f"no triage item {triage_id}: `parting triage` lists them")
    return item


def _open_item(ctx: Context, triage_id: int) -> TriageItem:
    item = _item(ctx, triage_id)
    if item.closed_at is not None:
        raise ReportError(f"triage item {triage_id} was already closed by {item.closed_by}: {item.note}")
    return item


def _assign_words(reason: str) -> tuple[str, bool]:
    """ASSIGN's words: the client id, then LEARN to keep the address as the client's."""
    words = reason.split()
    client_id = words[0].strip(".,;:").lower() if words else ""
    return client_id, any(word.strip(".,;:").lower() == "learn" for word in words[1:])
