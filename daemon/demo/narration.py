"""How the demo tells its story: numbered steps, short lines, what happened and why.

Rules of this module:
- The narrator only reports what the daemon recorded (its events, in the words core/events.py
  declares, with a newcomer's "why" on the main steps) and what reached the SMTP server; it
  decides nothing. So the transcript is evidence, not a script that could drift from
  what the daemon really did.
- Text from mail (subjects, drafts) is printed as written: no rich markup is interpreted in it.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from daemon.adapters.store import Event, Store
from daemon.core.events import Wording, describe
from daemon.demo.servers import ReceivedMail

LADDER_WORDS = {
    "nudge": "the first ladder step: a friendly reminder is suggested to the owner",
    "notify_owner": "the second ladder step: the owner is told, with the evidence",
    "draft_release": "the last ladder step: a release email is drafted for review",
}
MAIL_WORDS = {
    "owner-nudge": "a suggested reminder for the owner to send in their own words (nothing goes to the client)",
    "owner-notify_owner": "a note to the owner with the evidence, and the alternatives to weigh",
    "review": "a review email; replying to it is how a person decides",
    "release": "the release email itself",
}
# Events that add nothing for a newcomer beyond the mail they cause, which is shown as it arrives.
QUIET_EVENTS = {"deadline_due"}


class Narrator:
    def __init__(self, console: Console, timezone: str, names: dict[str, str]) -> None:
        self.console = console
        self.zone = ZoneInfo(timezone)
        self.names = names  # ids of people and clients -> their names
        self.number = 0
        self._verdicts: dict[str, tuple[str, int]] = {}  # client -> (state, ignored) last told
        self._evidence: dict[str, set[str]] = {}  # client -> evidence lines already told

    # ---- layout --------------------------------------------------------------------------------

    def when(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).strftime("%a %-d %b %H:%M")

    def title(self, text: str, subtitle: str) -> None:
        self.console.print(Text(text, style="bold"))
        self.console.print(Text(subtitle, style="dim"))

    def step(self, title: str, at: datetime | None = None) -> None:
        self.number += 1
        self.console.print()
        parts: list[Any] = [(f"Step {self.number}", "bold cyan")]
        if at is not None:
            parts += ["  ", (self.when(at), "cyan")]
        parts += ["  ", (title, "bold")]
        self.console.print(Text.assemble(*parts))

    def say(self, text: str, style: str = "") -> None:
        self._indented(text, 2, style)

    def why(self, text: str) -> None:
        self._indented("why: " + text, 4, "dim italic")

    def lines(self, lines: list[str], style: str = "dim") -> None:
        for line in lines:
            self._indented(line, 4, style)

    def _indented(self, text: str, indent: int, style: str) -> None:
        """Wrapped at words with a hanging indent, and no trailing blanks in a pipe."""
        width = max(40, self.console.width - indent)
        for chunk in textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]:
            self.console.print(Text(" " * indent + chunk, style=style), soft_wrap=True)

    def block(self, title: str, text: str) -> None:
        self.console.print(Panel(Text(text.rstrip()), title=title, title_align="left", expand=False,
                                 border_style="dim", padding=(0, 1)))

    # ---- what the daemon recorded --------------------------------------------------------------

    def events(self, events: list[Event], store: Store) -> None:
        for event in events:
            self.event(event, store)

    def event(self, event: Event, store: Store) -> None:
        data = event.data or {}
        client = self.names.get(event.client_id or "", event.client_id or "")
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event, data, client, store)
        elif event.kind not in QUIET_EVENTS:
            self.say(f"• {self.words(event)} ({client or 'no client'})")

    def words(self, event: Event) -> str:
        """The event in the words core/events.py declares for it, with people by name."""
        data = event.data or {}
        who = data.get("person") or data.get("by")
        return describe(event.kind, data, self.names.get(who, who) if who else None, Wording(self.zone))

    def _on_verdict(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        """A change of state or count, with the evidence not told before (a new episode's
        evidence is all new), and the verdict's summary line."""
        client_id = event.client_id or ""
        previous = self._verdicts.get(client_id)
        now = (data["state"], data["ignored_count"])
        self._verdicts[client_id] = now
        if previous == now:
            return  # a new episode or policy hash, nothing a newcomer would see
        style = {"overdue": "yellow", "unresponsive": "bold red", "active": "green"}.get(data["state"], "")
        before = previous[0] if previous else "new"
        self.console.print(Text.assemble("  • verdict ", (client, "bold"), f": {before} → ", (data["state"], style),
                                         f"  ({data['ignored_count']} ignored)"))
        if data["state"] == "active":
            return
        saved = store.latest_verdicts().get(client_id, {})
        # The first line names the policy, the last two sum up; the facts between, oldest first.
        facts, summary = saved.get("explain", [])[1:-2], saved.get("explain", [])[-2:-1]
        told = self._evidence.setdefault(client_id, set())
        self.lines([line for line in facts if line not in told] + summary)
        told.update(facts)

    def _on_ladder_step(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        self.say(f"• ladder step '{data['action']}' for {client}: {LADDER_WORDS.get(data['action'], '')}")

    def _on_draft_created(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        draft = store.draft(event.draft_id or 0)  # draft_created always names its draft
        text = store.versions(draft.id)[-1].text
        self.say(f"• draft #{draft.id} ({data['kind']}, version {data['version']}) written from the template, "
                 f"for {client}:")
        self.block(f"Subject: {draft.subject}", text)

    def _on_review_requested(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        person = self.names.get(data["person"], data["person"])
        expires = self.when(datetime.fromisoformat(data["expires_at"]))
        self.say(f"• review email queued for {person} ({data['role']}), version {data['version']}; "
                 f"single-use token {data['token_id']}, valid until {expires}")

    def _on_review_decision(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        person = self.names.get(data["person"], data["person"])
        auth = data.get("authentication") or {}
        decided = f"{person} ({data['role']}): {data['command'].upper()}"
        self.console.print(Text.assemble("  • ", (decided, "bold green"), f" accepted; draft now '{data['state']}'"))
        self.lines([f"authentication: ok={auth.get('ok')} via {auth.get('method')}: {auth.get('reason')}"])
        self.why("a reply counts only with a valid single-use token, from the person it was issued to, "
                 "authenticated by our own server, and with the command in its new text (never the quote)")

    def _on_release_queued(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        not_before = datetime.fromisoformat(data["not_before"])
        minutes = round((not_before - event.at).total_seconds() / 60)
        self.say(f"• release for {client} queued (outbox #{data['outbox_id']}), not before {self.when(not_before)}")
        self.why(f"send_delay: for {minutes} minutes a REJECT still stops it")

    def _on_deadline_set(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        due = self.when(datetime.fromisoformat(data["due_at"]))
        if data["kind"] == "phone_call":
            self.console.print(Text.assemble("  • ", ("deadline: phone call", "bold"),
                                             f" to {client} on {data.get('phone')} due by {due}"))
            self.why("a release is written, never phoned; the call follows if the client stays silent")
        else:
            self.say(f"• deadline: {data['kind']} due by {due}")

    def _on_casefile_written(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        self.say(f"• {self.words(event)} (for {client})")

    def _on_reply_refused(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        self.say(f"• {self.words(event)} ({data.get('code')})", style="bold red")

    def _on_sent(self, event: Event, data: dict[str, Any], client: str, store: Store) -> None:
        if data.get("kind") == "release":
            self.say(f"• release sent: the SMTP server answered {data.get('server_reply')}")

    # ---- what reached the SMTP server ----------------------------------------------------------

    def mail(self, mail: ReceivedMail) -> None:
        to = ", ".join(mail.rcpt_tos)
        subject = str(mail.message.get("Subject", "")).strip()
        self.console.print(Text.assemble("  ✉ ", ("SMTP received", "magenta"), f" [{mail.kind or 'mail'}] → {to}"))
        self.lines([f"Subject: {subject}"], style="")
        if mail.kind in MAIL_WORDS:
            self.why(MAIL_WORDS[mail.kind])

    # ---- the audit trail, when there is no case file writer ------------------------------------

    def trail(self, trail: list[Event]) -> None:
        for event in trail:
            self.lines([f"{self.when(event.at)}  {self.words(event)}"], style="")
