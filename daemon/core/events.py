"""The event vocabulary: every kind of event parting records, its data fields and its words.

Rules of this module:
- Each kind is declared once, here, with the data keys it may carry. The store refuses an event
  whose kind or keys are not declared (`check`), so a renamed key fails loudly in the writer's
  test instead of silently breaking the case files that read it.
- Events are kept forever: a key no longer written stays declared under `legacy`, and the words
  (`describe`) read every key with a default, so an old event still renders.
- The words are the only description of an event: `parting drafts show`, the case file and the
  demo narration all call `describe`; none of them words an event itself.
- Pure: times are ISO 8601 text in the data and are shown in the zone the caller passes, with the
  year only when it is not `now`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from daemon.core.rules import format_time

Data = Mapping[str, Any]


@dataclass(frozen=True)
class Wording:
    """How times read in the words: the reader's zone, and `now` to leave out the current year."""

    zone: tzinfo
    now: datetime | None = None

    def when(self, iso: object) -> str:
        if not isinstance(iso, str) or not iso:
            return "-"
        moment = datetime.fromisoformat(iso)
        text = format_time(moment, self.zone)
        year = moment.astimezone(self.zone).year
        if self.now is not None and self.now.astimezone(self.zone).year == year:
            text = text.replace(f" {year} ", " ", 1)
        return text


Words = Callable[[str, Data, str, Wording], str]  # (kind, data, who, wording) -> one line


@dataclass(frozen=True)
class EventKind:
    kind: str
    fields: frozenset[str]  # the data keys a writer may record today
    words: Words
    legacy: frozenset[str] = frozenset()  # keys older versions wrote: still read, no longer written

    @property
    def readable(self) -> frozenset[str]:
        return self.fields | self.legacy


class UndeclaredEvent(ValueError):
    """An event whose kind or data keys are not in the vocabulary (a writer out of step with it)."""


def authentication_words(verdict: Data | None) -> str:
    if not verdict:
        return "-"
    if verdict.get("ok"):
        return f"pass ({verdict.get('method') or verdict.get('reason', '')})"
    return f"NOT authenticated: {verdict.get('reason', '')}"


# ---- the words of each kind ---------------------------------------------------------------------


def _verdict(kind: str, d: Data, who: str, w: Wording) -> str:
    state, before = d.get("state"), d.get("previous")
    moved = f"{before} -> {state}" if before and before != state else str(state)
    ladder = ", ".join(d.get("ladder") or []) or "no ladder step"
    return (f"verdict {moved} under policy {d.get('policy')!r}: {d.get('ignored_count', 0)} "
            f"ignored request(s), {ladder} reached")


def _ladder_step(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"ladder step {str(d.get('action', '')).replace('_', ' ')} taken ({d.get('ignored_count', 0)} ignored request(s))"


def _mail_refused(kind: str, d: Data, who: str, w: Wording) -> str:
    what = f"the {d['action']} step" if d.get("action") else f"the reply from {d.get('reply_from') or 'someone'}"
    return f"mail for {what} was not sent: {d.get('reason')}"


def _draft_created(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"drafted version {d.get('version', 1)} by {d.get('writer', 'parting')} ({d.get('kind', '')})"


def _review_requested(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"asked {who} ({d.get('role')}) to review version {d.get('version')}; answer by {w.when(d.get('expires_at'))}"


def _review_decision(kind: str, d: Data, who: str, w: Wording) -> str:
    new = f", making version {d['new_version']}" if d.get("new_version") else ""
    reason = f" ({d['reason']})" if d.get("reason") else ""
    auth = ("accepted WITHOUT authentication (review.require_authentication is false)"
            if d.get("authentication_skipped") else f"authentication {authentication_words(d.get('authentication'))}")
    return (f"{who} ({d.get('role')}): {str(d.get('command', '')).upper()} version {d.get('version')}{reason}"
            f"{new}; now {d.get('state')}; {auth}")


def _review_renewed(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"review request renewed for {who}, version {d.get('version')}: {d.get('reason', 'it expired unanswered')}"


def _review_reminded(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"{who} ({d.get('role')}) reminded to review version {d.get('version')}"


def _review_offered(kind: str, d: Data, who: str, w: Wording) -> str:
    to = d.get("offered_to")
    return (f"{d.get('silent')} did not answer: review offered to {to}" if to
            else f"{d.get('silent')} did not answer, and there is no one else to offer the review to")


def _reply_refused(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"a reply from {d.get('from')} was refused: {d.get('reason')}"


def _queued(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"version {d.get('version')} queued (outbox row {d.get('outbox_id')}), not before {w.when(d.get('not_before'))}"


def _release_cancelled(kind: str, d: Data, who: str, w: Wording) -> str:
    why = f": {d['reason']}" if d.get("reason") else ""
    return f"queued email cancelled by {d.get('by') or who} ({d.get('outbox_rows')} outbox row(s)){why}"


def _sent(kind: str, d: Data, who: str, w: Wording) -> str:
    to = ", ".join(d.get("recipients") or [])
    if d.get("server_reply"):
        return f"{d.get('kind') or 'mail'} sent to {to}; the server answered {d['server_reply']!r}"
    return f"sent to {to}"


def _state_placed(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"the database is now kept at {d.get('database')} on {d.get('host')}"


def _state_restored(kind: str, d: Data, who: str, w: Wording) -> str:
    return (f"state restored on {d.get('host')} from a copy last written on {d.get('from_host')}; "
            f"its newest event is from {w.when(d.get('last_event_at'))}")


def _send_problem(kind: str, d: Data, who: str, w: Wording) -> str:
    later = f"; next attempt {w.when(d['next_attempt_at'])}" if d.get("next_attempt_at") else ""
    return f"{kind.replace('_', ' ')}: {d.get('reason')}{later}"


def _after_send_failed(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"outbox row {d.get('outbox_id')} was sent, but what follows a send was not recorded: {d.get('reason')}"


def _outbox_decision(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"{who} decided to {kind.removeprefix('outbox_')} outbox row {d.get('outbox_id')} (was {d.get('from_state')})"


def _deadline(kind: str, d: Data, who: str, w: Wording) -> str:
    due = f", due {w.when(d.get('due_at'))}" if d.get("due_at") else ""
    note = f": {d['note']}" if d.get("note") else ""
    outcome = f" (outcome: {d['outcome']})" if d.get("outcome") else ""
    return f"{d.get('kind', '')} deadline {kind.removeprefix('deadline_')}{due}{outcome}{note}"


def _call_reminded_again(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"phone call still open: reminder {d.get('reminder')} of {d.get('of')} sent to the owner"


# ---- the practice's other paths: answers outside email, bounces, triage, a new owner ------------


def _answer_recorded(kind: str, d: Data, who: str, w: Wording) -> str:
    how = {"phone": "by phone", "meeting": "in a meeting"}.get(str(d.get("how", "")), "outside email")
    return f"the client answered {how} (recorded by {who or d.get('by')}, via {d.get('via')}): {d.get('note')}"


def _delivery_failure_told(kind: str, d: Data, who: str, w: Wording) -> str:
    also = "; every address has bounced: the client is unreachable" if d.get("unreachable") else ""
    return (f"our email {d.get('subject')!r} was not delivered to {d.get('recipient')} ({d.get('reason')}); "
            f"the owner was told{also}")


def _triage_told(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"the owner {d.get('owner')} was asked whose the message from {d.get('from')} is"


def _triage_assigned(kind: str, d: Data, who: str, w: Wording) -> str:
    learned = f"; {d.get('address')} is now a learned address of the client" if d.get("learned_address") else ""
    return f"a message from {d.get('from')} was assigned to this client by {who or d.get('by')}{learned}"


def _triage_dismissed(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"a message from {d.get('from')} was dismissed by {who or d.get('by')}: {d.get('note')}"


def _owner_changed(kind: str, d: Data, who: str, w: Wording) -> str:
    pending = d.get("pending") or []
    return (f"owner changed from {d.get('old')} to {d.get('new')}: a new episode began; "
            f"{len(pending)} open request(s) were handed over")


def _deadline_cancelled(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"{str(d.get('kind', '')).replace('_', ' ')} cancelled: {d.get('reason', 'no reason given')}"


def _hold_over(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"hold over; now {d.get('state')}"


def _draft_moved(kind: str, d: Data, who: str, w: Wording) -> str:
    what = {"draft_sent": "the release left", "draft_suspend": "held while the client is paused",
            "draft_resume": "resumed", "draft_withdraw": "withdrawn"}.get(kind, kind.replace("_", " "))
    reason = f" ({d['reason']})" if d.get("reason") else ""
    return f"{what}{reason}; now {d.get('state')}"


def _last_chance(kind: str, d: Data, who: str, w: Wording) -> str:
    return (f"last chance sent to {d.get('person') or who} for version {d.get('version')}: it leaves "
            f"{w.when(d.get('send_at'))} unless they reply STOP, REJECT or HOLD")


def _item_parked(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"set aside: {d.get('what')}: {d.get('reason')}"


def _client_pause(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"{kind.removeprefix('client_')} by {who}"


def _casefile_written(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"case file written to {d.get('path')}"


def _message_triaged(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"a message was set aside for a person: {d.get('reason')}"


def _message_quarantined(kind: str, d: Data, who: str, w: Wording) -> str:
    return f"message {d.get('uid')} in {d.get('folder')} could not be read and was quarantined: {d.get('reason')}"


def _folder_resync(kind: str, d: Data, who: str, w: Wording) -> str:
    return (f"{d.get('folder')} was renumbered by the server (UIDVALIDITY {d.get('old_uidvalidity')} -> "
            f"{d.get('new_uidvalidity')}): read again from the start")


def _fields(*names: str) -> frozenset[str]:
    return frozenset(names)


_SENDING = _fields("outbox_id", "kind", "attempts", "recipients")
# What flows/drafts.py `advance` records with every move of a draft (core/release.py `transition`).
_DRAFT_MOVE = _fields("person", "role", "command", "reason", "version", "new_version", "state", "from_state",
                      "missing", "asking", "note", "tokens_revoked", "authentication", "authentication_skipped",
                      "outbox_id")
_OUTBOX_DECISION = _fields("outbox_id", "kind", "from_state", "by")

KINDS: dict[str, EventKind] = {k.kind: k for k in (
    # evaluating
    EventKind("verdict", _fields("state", "previous", "rules", "ignored_count", "ladder", "episode", "policy"),
              _verdict),
    EventKind("ladder_step", _fields("action", "episode", "ignored_count"), _ladder_step),
    EventKind("mail_refused", _fields("action", "reason", "reply_from", "outbox_id"), _mail_refused),
    # drafts and their review
    EventKind("draft_created", _fields("kind", "version", "writer", "text_sha256", "state", "envelope"),
              _draft_created),
    EventKind("review_requested", _fields("person", "role", "version", "token_id", "expires_at"), _review_requested),
    EventKind("review_decision", _DRAFT_MOVE, _review_decision),
    EventKind("draft_sent", _DRAFT_MOVE, _draft_moved),
    EventKind("draft_suspend", _DRAFT_MOVE, _draft_moved),
    EventKind("draft_resume", _DRAFT_MOVE, _draft_moved),
    EventKind("draft_withdraw", _DRAFT_MOVE, _draft_moved),
    EventKind("last_chance_sent", _fields("person", "version", "token_id", "send_at"), _last_chance),
    EventKind("item_parked", _fields("what", "item", "reason"), _item_parked),
    EventKind("review_renewed", _fields("person", "version", "reason"), _review_renewed),
    EventKind("review_reminded", _fields("token_id", "person", "role", "version"), _review_reminded),
    EventKind("review_offered", _fields("token_id", "silent", "offered_to"), _review_offered),
    EventKind("reply_refused", _fields("code", "reason", "from", "authentication"), _reply_refused),
    EventKind("release_queued", _fields("version", "text_sha256", "outbox_id", "not_before"), _queued),
    EventKind("nudge_queued", _fields("version", "text_sha256", "outbox_id", "not_before"), _queued),
    EventKind("release_cancelled", _fields("outbox_rows", "outbox_ids", "outbox_id", "by", "reason"),
              _release_cancelled),
    EventKind("hold_over", _DRAFT_MOVE, _hold_over),
    # sending
    EventKind("sent", _SENDING | {"server_reply", "recovered_from"}, _sent),
    EventKind("send_deferred", _SENDING | {"reason", "next_attempt_at"}, _send_problem),
    EventKind("send_uncertain", _SENDING | {"reason"}, _send_problem),
    EventKind("send_failed", _SENDING | {"reason"}, _send_problem),
    EventKind("after_send_failed", _fields("outbox_id", "kind", "reason"), _after_send_failed),
    # what a person decides from the command line
    EventKind("outbox_resend", _OUTBOX_DECISION, _outbox_decision),
    EventKind("outbox_cancel", _OUTBOX_DECISION, _outbox_decision),
    EventKind("outbox_confirm", _OUTBOX_DECISION, _outbox_decision),
    EventKind("client_paused", _fields("by"), _client_pause),
    EventKind("client_resumed", _fields("by"), _client_pause),
    # follow-up deadlines
    EventKind("deadline_set", _fields("deadline_id", "kind", "due_at", "phone"), _deadline),
    EventKind("deadline_due", _fields("deadline_id", "kind", "due_at"), _deadline),
    EventKind("deadline_cancelled", _fields("deadline_id", "kind", "reason"), _deadline_cancelled),
    EventKind("deadline_closed", _fields("deadline_id", "kind", "by", "note", "authentication", "via", "outcome"),
              _deadline),
    EventKind("deadline_reminded_again", _fields("deadline_id", "kind", "reminder", "of", "due_at"),
              _call_reminded_again),
    # where the state lives (a restore from a Litestream replica is told apart from a restart)
    EventKind("state_placed", _fields("instance", "host", "database"), _state_placed),
    EventKind("state_restored", _fields("host", "database", "from_host", "from_instance", "last_event_id",
                                        "last_event_at", "token_file"), _state_restored),
    # the practice's other paths
    EventKind("answer_recorded", _fields("record_id", "how", "note", "by", "answered_at", "via"), _answer_recorded),
    EventKind("delivery_failure_told", _fields("owner", "recipient", "status", "reason", "subject", "unreachable"),
              _delivery_failure_told),
    EventKind("triage_told", _fields("triage_id", "owner", "from", "likely_because"), _triage_told),
    EventKind("triage_assigned", _fields("triage_id", "by", "from", "address", "learned_address", "via"),
              _triage_assigned),
    EventKind("triage_dismissed", _fields("triage_id", "by", "note", "from", "via"), _triage_dismissed),
    EventKind("owner_changed", _fields("old", "new", "pending", "drafts", "deadlines", "episode"), _owner_changed),
    # reading the mailbox, and the case file
    EventKind("message_triaged", _fields("reason"), _message_triaged),
    EventKind("message_quarantined", _fields("folder", "uid", "reason", "content_hash"), _message_quarantined),
    EventKind("folder_resync", _fields("folder", "old_uidvalidity", "new_uidvalidity"), _folder_resync),
    EventKind("casefile_written", _fields("path", "markdown"), _casefile_written),
)}


def check(kind: str, data: Data | None) -> None:
    """Refuse (UndeclaredEvent) a kind that is not declared, or data keys its declaration does not list."""
    declared = KINDS.get(kind)
    if declared is None:
        raise UndeclaredEvent(f"event kind {kind!r} is not declared in daemon/core/events.py; declare it "
                              f"with its data fields and words before writing it")
    extra = sorted(set(data or {}) - declared.fields)
    if extra:
        raise UndeclaredEvent(f"event {kind!r} has data key(s) {', '.join(extra)} that daemon/core/events.py does "
                              f"not declare (it declares: {', '.join(sorted(declared.fields))}); declare a new key "
                              f"there, and keep a renamed one under `legacy` so old events still read")


def describe(kind: str, data: Data | None, who: str | None, wording: Wording) -> str:
    """One event in plain words. A kind this version does not know (written by a newer one, say)
    still reads as its name, so a case file never fails on history."""
    declared = KINDS.get(kind)
    if declared is None:
        return kind.replace("_", " ")
    return declared.words(kind, data or {}, who or "someone", wording)
