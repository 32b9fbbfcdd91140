"""Evaluate every client under its policy and carry out the ladder steps now due.

A verdict is written to `events` (with its rule hits, evidence and policy hash) only when it
changes, so a timer tick that learns nothing writes nothing. Each ladder step is recorded once
per episode in the same transaction as the mail it causes.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from daemon.adapters.store import Store
from daemon.adapters.templates import TemplateProblem
from daemon.core.model import Client
from daemon.core.outgoing import HeaderInjection, InvalidAddress
from daemon.core.policy import Verdict, due_actions, evaluate, explain
from daemon.flows.answered import notice_token
from daemon.flows.context import Context, common_context, describe_time, park, queue_mail
from daemon.flows.drafts import follow_client, start_draft
from daemon.runtime.faults import crash_point

# Fields whose change makes a new verdict event; evaluated_at and next_due alone do not.
SIGNIFICANT = ("state", "ignored_count", "ladder", "episode", "policy_hash")


# A verdict names the next moment it may change without new mail (next_due), so a quiet tick
# evaluates only the clients whose moment came. Everyone is evaluated at start, after a reload,
# after another process wrote to the store (the CLI pausing a client), and at least this often,
# which bounds what a missed moment could cost.
FULL_EVALUATION_EVERY = timedelta(hours=1)


class Agenda:
    """Which clients the next cycle evaluates: None means every client."""

    def __init__(self) -> None:
        self.grown: set[str] = set()  # clients with new mail since their last evaluation
        self._last_full: datetime | None = None  # None: everyone is due now
        self._data_version: int | None = None

    def history_grew(self, client_ids: Collection[str]) -> None:
        self.grown.update(client_ids)

    def evaluate_everyone(self) -> None:
        self._last_full = None

    def next(self, store: Store, now: datetime) -> set[str] | None:
        version = store.data_version()
        if version != self._data_version:
            self._data_version, self._last_full = version, None
        if self._last_full is None or now - self._last_full >= FULL_EVALUATION_EVERY:
            return None
        return self.grown | store.clients_due(now)

    def evaluated(self, only: Collection[str] | None, now: datetime) -> None:
        """Called once the clients `next` named were evaluated without error."""
        if only is None:
            self._last_full = now
            self.grown.clear()
        else:
            self.grown.difference_update(only)


def evaluate_all(ctx: Context, now: datetime, only: Collection[str] | None = None) -> list[Verdict]:
    """Evaluate every client at `now` (or only the clients named), record changed verdicts, act on
    due ladder steps. Histories are read client by client, so memory follows the largest client's
    history rather than the mailbox."""
    paused = ctx.store.paused_clients()
    clients = [c for c in ctx.settings.clients if only is None or c.id in only]
    previous = ctx.store.latest_verdicts(None if only is None else [c.id for c in clients])
    verdicts = []
    for client in clients:
        verdict = evaluate(client, ctx.store.envelopes(client.id), ctx.settings.policy_for(client),
                           ctx.calendar(client), now, paused=client.id in paused)
        try:
            record_verdict(ctx, client, verdict, previous.get(client.id), now)
            follow_client(ctx, client.id, verdict.state, verdict.episode, now)
            for action in due_actions(verdict, ctx.store.steps_done(client.id, verdict.episode)):
                take_step(ctx, client, verdict, action, now)
        except Exception as problem:  # noqa: BLE001 - one client's failure must not stop the others
            park(ctx, f"client {client.id} (episode {verdict.episode})", f"client:{client.id}:{verdict.episode}",
                 problem, now, client_id=client.id)
        verdicts.append(verdict)
    ctx.note_holidays(now)  # the calendar the verdicts used, written down for the reports
    return verdicts


def record_verdict(ctx: Context, client: Client, verdict: Verdict, before: dict | None, now: datetime) -> bool:
    data = verdict.to_dict()
    data["explain"] = explain(verdict, client, client.timezone or ctx.settings.working_hours.timezone)
    if before is not None and all(before.get(key) == data.get(key) for key in SIGNIFICANT):
        if before.get("next_due") != data.get("next_due"):
            ctx.store.save_verdict(client.id, data, now)
        return False
    evidence = list(dict.fromkeys(mid for hit in verdict.reasons for mid in hit.message_ids))
    with ctx.store.transaction():
        ctx.store.append_event("verdict", at=now, client_id=client.id, message_ids=evidence,
                               policy_hash=verdict.policy_hash,
                               data={"state": verdict.state, "previous": before.get("state") if before else None,
                                     "rules": [hit.to_dict() for hit in verdict.reasons],
                                     "ignored_count": verdict.ignored_count, "ladder": list(verdict.ladder),
                                     "episode": verdict.episode, "policy": verdict.policy_name})
        ctx.store.save_verdict(client.id, data, now)
    crash_point("after_verdict_event")  # the changed verdict and its event are committed
    ctx.log.info("verdict %s (%d ignored)", verdict.state, verdict.ignored_count, extra={"client": client.id})
    return True


def take_step(ctx: Context, client: Client, verdict: Verdict, action: str, now: datetime) -> None:
    """One ladder step, at most once per episode: the step row, its mail and its event commit together.

    Mail that cannot be built safely (a header value with a newline, a template missing a
    variable) is refused: the step is recorded with the reason and nothing is queued, so the
    refusal is logged once instead of at every tick.
    """
    try:
        _take_step(ctx, client, verdict, action, now)
    except (HeaderInjection, InvalidAddress, TemplateProblem) as problem:
        with ctx.store.transaction():
            ctx.store.record_step(client.id, verdict.episode, action, now)
            ctx.store.append_event("mail_refused", at=now, client_id=client.id, policy_hash=verdict.policy_hash,
                                   data={"action": action, "reason": f"{type(problem).__name__}: {problem}"})
        ctx.log.error("ladder step %s refused, nothing queued: %s", action, problem, extra={"client": client.id})


def _take_step(ctx: Context, client: Client, verdict: Verdict, action: str, now: datetime) -> None:
    policy = ctx.settings.policy_for(client)
    with ctx.store.transaction():
        if not ctx.store.record_step(client.id, verdict.episode, action, now):
            return
        if action == "draft_release":
            start_draft(ctx, client, verdict, "release", now)
        elif action == "nudge" and policy.send_nudges:
            start_draft(ctx, client, verdict, "nudge", now, extra={"requests": _requests(ctx, client, verdict)})
        else:
            _notify_owner(ctx, client, verdict, action, now)
        ctx.store.append_event("ladder_step", at=now, client_id=client.id, policy_hash=verdict.policy_hash,
                               message_ids=[r.message_id for r in verdict.open_requests],
                               data={"action": action, "episode": verdict.episode,
                                     "ignored_count": verdict.ignored_count})
    crash_point("after_ladder_step")  # the step, its mail or draft and its event are committed
    ctx.log.info("ladder step %s", action, extra={"client": client.id})


def _notify_owner(ctx: Context, client: Client, verdict: Verdict, action: str, now: datetime) -> None:
    """notify_owner, and a nudge the policy does not send itself: the owner gets the evidence
    and (for a nudge) the suggested reminder to send in their own words."""
    owner = ctx.owner_of(client)
    lines = explain(verdict, client, client.timezone or ctx.settings.working_hours.timezone)
    if action == "nudge":
        nudge = ctx.templates.render("nudge.txt.j2", **common_context(ctx, client, None) | {
            "person": {"name": client.contact}, "requests": _requests(ctx, client, verdict)})
        lines = [*lines, "A friendly reminder you could send (nothing has been sent):", *nudge.body.splitlines()]
    # The notice takes a reply: ANSWERED <note> when the client answered outside email (flows/answered.py).
    token = notice_token(ctx, client, owner, kind=action, subject_kind="notice", subject_id=None,
                         episode=verdict.episode, now=now)
    _, message_id = queue_mail(ctx, kind=f"owner-{action}", key=f"{client.id}:{verdict.episode}:{action}",
                               template="owner_notice.txt.j2",
                               context={**common_context(ctx, client, owner), "explain": lines},
                               to=[owner.email], now=now, client_id=client.id, reply_to=[token.reply_to],
                               subject_prefix=token.subject_prefix)
    token.issued_in(ctx, message_id, now)


def _requests(ctx: Context, client: Client, verdict: Verdict) -> list[dict[str, str]]:
    tz = client.timezone or ctx.settings.working_hours.timezone
    return [{"subject": r.subject, "sent_at": describe_time(r.sent_at, tz)} for r in verdict.open_requests]
