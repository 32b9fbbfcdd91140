"""What a stored verdict was computed from, so a report can tell whether it still holds.

Rules of this module:
- A verdict depends only on (client, the set of its messages, policy, calendar, now, paused)
  (core/policy.py), and changes without new mail only at its `next_due`.
- Messages are only ever added, never changed or removed, and a message's client never changes
  (adapters/store/messages.py): so a client's set of messages is the same as at evaluation iff
  it has as many messages as then. The count is taken from the very history that was evaluated,
  so no write between reading and counting can make a stale verdict look current.
- `inputs` is a digest of everything else the verdict was computed from: the client's entry, the
  working hours, the policy's hash and the pause. Any change makes a different digest.
- A stored verdict holds at `now` only if its basis matches, it was computed at or before `now`,
  `now` is before its `next_due`, and none of the client's messages is dated in (evaluated, now]
  (mail dated in the future of the evaluation had not happened yet then). Anything else: evaluate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from daemon.core.model import Client, Envelope, WorkingHours
from daemon.core.rules import is_real_reply


def inputs_digest(client: Client, working_hours: WorkingHours, policy_hash: str, paused: bool) -> str:
    """A digest of every input of a verdict besides the messages and the moment."""
    return hashlib.sha256(repr((client, working_hours, policy_hash, paused)).encode()).hexdigest()[:24]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def last_exchange(history: Sequence[Envelope], now: datetime) -> tuple[datetime | None, datetime | None]:
    """(the client's last real reply, our last message that is not an auto-reply), both up to `now`."""
    last_in = last_out = None
    for env in history:
        if env.at > now:
            continue
        if is_real_reply(env):
            if last_in is None or env.at > last_in:
                last_in = env.at
        elif env.direction == "out" and not env.auto_reply and (last_out is None or env.at > last_out):
            last_out = env.at
    return last_in, last_out


def basis_of(client: Client, working_hours: WorkingHours, policy_hash: str, paused: bool,
             history: Sequence[Envelope], now: datetime) -> dict[str, Any]:
    """The basis to store beside a verdict of `client` computed from `history` at `now`."""
    last_in, last_out = last_exchange(history, now)
    return {"messages": len(history), "inputs": inputs_digest(client, working_hours, policy_hash, paused),
            "evaluated_at": _iso(now), "last_in": _iso(last_in), "last_out": _iso(last_out)}


def still_holds(basis: dict[str, Any] | None, verdict: dict[str, Any], *, messages: int, inputs: str,
                now: datetime, mail_since_evaluation: bool) -> bool:
    """Whether a stored verdict (its dict and basis) is the verdict an evaluation at `now` would give.

    `messages` is the client's stored message count now, `inputs` the digest of the current inputs,
    `mail_since_evaluation` whether a message of the client is dated in (basis evaluated_at, now]."""
    if not basis or basis.get("messages") != messages or basis.get("inputs") != inputs:
        return False
    evaluated = basis.get("evaluated_at")
    if evaluated is None or datetime.fromisoformat(evaluated) > now or mail_since_evaluation:
        return False
    due = verdict.get("next_due")
    return due is None or now < datetime.fromisoformat(due)
