"""Jinja2 over templates/: the text of every email parting writes.

Each template starts with a "Subject: ..." line and a blank line, then the body, so users can
edit the subject too. Rendering is strict: a missing variable is a TemplateProblem naming the
template, the line and the variable, never an empty gap in a letter. Headers other than the
subject are set by core/outgoing.py, never by template text.

SAMPLE_CONTEXTS is the contract between the service and the templates: it lists, per template,
exactly the variables the service passes.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from daemon.core.outgoing import HeaderInjection, check_header_value

__all__ = ["COMMON_SAMPLE", "SAMPLE_CONTEXTS", "RenderedMail", "TemplateProblem", "Templates",
           "default_directory"]


class TemplateProblem(Exception):
    """A template that cannot be found, parsed or rendered; the message says where and why."""


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    body: str


# Every template receives these (plain dicts here; the service may pass objects with the same
# attributes). `person` is the addressee: the client contact for release/nudge, otherwise a member
# of staff. `owner` is the client's account owner.
COMMON_SAMPLE: dict[str, Any] = {
    "company": {"name": "Example Design Ltd"},
    "client": {"id": "acme", "name": "Acme Ltd", "contact": "Jane Doe", "phone": "+44 20 7946 0000"},
    "owner": {"name": "Alice Smith", "email": "alice@example.com"},
    "person": {"name": "Alice Smith"},
}

_EXPLAIN = [
    "rule ignored_messages: 3 requests unanswered within 30 days",
    "2026-02-02 'Logo files for the brochure?': no reply after 3 business days",
    "2026-02-10 'Can you confirm the print run?': no reply after 3 business days",
    "2026-02-18 'Approval needed for the final proof': no reply after 3 business days",
]
_DRAFT = {
    "id": 17,
    "version": 2,
    "writer": "Alice Smith",
    "text": "Dear Jane,\n\nThank you for the work we have done together...\n\nAlice Smith\nExample Design Ltd\n",
}
_RELEASE = {"subject": "Our work together", "sent_at": "Tue 3 Mar 2026, 10:12 (Europe/London)"}


# The release's frozen envelope as the review emails show it.
_ENVELOPE = {"to": "jane@acme.example", "subject": "Re: Approval needed for the final proof",
             "threading": "in reply to our message of Wed 18 Feb 2026 09:12"}


def _sample(person: str | None = None, **extra: Any) -> dict[str, Any]:
    context = {**COMMON_SAMPLE, **extra}
    if person:
        context["person"] = {"name": person}
    return context


SAMPLE_CONTEXTS: dict[str, dict[str, Any]] = {
    # To the client contact, from the owner. Nothing beyond the common variables.
    "release.txt.j2": _sample("Jane Doe"),
    # To the client contact: requests = our unanswered messages, oldest first.
    "nudge.txt.j2": _sample("Jane Doe", requests=[
        {"subject": "Logo files for the brochure?", "sent_at": "Mon 2 Feb 2026"},
        {"subject": "Can you confirm the print run?", "sent_at": "Tue 10 Feb 2026"},
    ]),
    # To the owner: explain = the policy's evidence lines (`parting explain` output).
    "owner_notice.txt.j2": _sample(explain=_EXPLAIN),
    # To the owner, stage 1: the draft to decide on; expires_at = when the reply token expires.
    "owner_review.txt.j2": _sample(draft=_DRAFT, explain=_EXPLAIN, envelope=_ENVELOPE,
                                   expires_at="Fri 6 Mar 2026, 10:00 (Europe/London)"),
    # To a colleague, stage 2: the version the owner adopted (draft.writer wrote its text).
    "review_request.txt.j2": _sample("Bob Jones", draft=_DRAFT, explain=_EXPLAIN, envelope=_ENVELOPE,
                                     expires_at="Fri 6 Mar 2026, 10:00 (Europe/London)"),
    # To the owner and every endorser when a version becomes sendable: send_at = when it leaves.
    "last_chance.txt.j2": _sample("Bob Jones", draft={"id": 17, "version": 2}, envelope=_ENVELOPE,
                                  send_at="Tue 3 Mar 2026 14:05"),
    # To the client's owner (or the first person): one item failed and was set aside (parked).
    "item_parked.txt.j2": _sample(item={"what": "staff reply <a1b2@example.com>",
                                        "reason": "ValueError: the local part is longer than 64 characters"}),
    # To whoever sent a reply we could not accept: reason = why, instead = what to write.
    "review_refused.txt.j2": _sample(
        "Bob Jones",
        reason="the reply did not start with a command we know",
        instead="Reply to the review email and write APPROVE, EDIT followed by your text, "
                "REJECT followed by a reason, or HOLD followed by a number of days, "
                "on the first line above the quoted text.",
    ),
    # To whoever sent an accepted decision: decision = APPROVE | EDIT | REJECT | HOLD (with
    # its argument, e.g. "HOLD 5 days"); next_step = what parting does now, one sentence.
    "review_confirmed.txt.j2": _sample(
        "Bob Jones", draft={"id": 17, "version": 2}, decision="APPROVE",
        next_step="The release email will be sent after the 10 minute send delay, unless "
                  "someone replies REJECT before then.",
    ),
    # To the owner: phone the client. last_messages = the latest messages with the client,
    # newest last, each {sent_at, direction ("from us" | "from the client"), subject}.
    "followup_reminder.txt.j2": _sample(release=_RELEASE, last_messages=[
        {"sent_at": "Wed 18 Feb 2026", "direction": "from us",
         "subject": "Approval needed for the final proof"},
        {"sent_at": "Tue 3 Mar 2026", "direction": "from us", "subject": "Our work together"},
    ]),
    # To the owner: the client wrote after the release; the follow-up call is cancelled.
    "client_answered.txt.j2": _sample(release=_RELEASE, reply={
        "subject": "Re: Our work together", "received_at": "Tue 3 Mar 2026, 15:40",
        "from_addr": "jane@acme.example"}),
    # To the owner: one outbox message failed for good or may have been delivered.
    # message.status = "failed" | "uncertain".
    "send_failed.txt.j2": _sample(message={
        "id": 42, "kind": "release", "subject": "Our work together", "to": "jane@acme.example",
        "status": "failed", "reason": "SMTP smtp.example.com:587 refused recipient(s): 550 no such user",
        "attempts": 1}),
    # To the owner: our email to the client bounced (flows/bounces.py); unreachable = every
    # address of the client has bounced.
    "delivery_failed.txt.j2": _sample(failure={
        "recipient": "jane@acme.example", "reason": "550 5.1.1 User unknown", "status": "5.1.1",
        "subject": "Approval needed for the final proof", "sent_at": "Wed 18 Feb 2026, 10:00"}, unreachable=True),
    # To the owner of the client a triaged message most likely belongs to (flows/triage.py);
    # why = how parting guessed the client.
    "triage_owner.txt.j2": _sample(why="it was written into that client's conversation", message={
        "from_addr": "jane.doe@gmail.example", "subject": "Re: Approval needed for the final proof",
        "received_at": "Thu 19 Feb 2026, 09:12",
        "reason": "unknown sender jane.doe@gmail.example in a thread of client acme"}),
    # To a client's new owner (flows/owners.py): old_owner = the previous owner's name; pending =
    # lines about what was open: requests (subject and when sent), drafts in review, deadlines.
    "owner_changed.txt.j2": _sample(old_owner="Bob Jones", pending={
        "requests": ["'Approval needed for the final proof', sent Wed 18 Feb 2026, 10:00 (ignored)"],
        "drafts": ["release draft 3 (owner review)"], "deadlines": []}),
    # To the owner: time to look back over the case; casefile_path = the written case file.
    "retrospective.txt.j2": _sample(casefile_path="/var/lib/parting/casefiles/acme-2026-03-03.md",
                                    release=_RELEASE),
}


def default_directory() -> Path:
    """templates/ in a development checkout, else the copy the wheel installs as daemon/_templates."""
    checkout = Path(__file__).resolve().parents[2] / "templates"
    if checkout.is_dir():
        return checkout
    return Path(__file__).resolve().parents[1] / "_templates"


_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined|has no attribute '([^']+)'|no element '?([^']+?)'?$")


class Templates:
    """The mail templates: `directory` (if given) overrides the shipped ones file by file."""

    def __init__(self, directory: str | None = None) -> None:
        search = []
        if directory is not None:
            user = Path(directory).expanduser()
            if not user.is_dir():
                raise TemplateProblem(f"templates_dir {directory} is not a folder")
            search.append(str(user))
        search.append(str(default_directory()))
        self.search_path = tuple(search)
        self.environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain-text mail: nothing to escape, and escaping would corrupt it
            keep_trailing_newline=True,
            # Block tags on their own line leave no blank line behind: easier for users to edit.
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render(self, name: str, **context: Any) -> RenderedMail:
        """Subject and body of template `name` rendered with `context`."""
        try:
            template = self.environment.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(
                f"template {name} not found in {', '.join(self.search_path)}"
            ) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(
                f"template {name}, line {exc.lineno}: {exc.message}"
            ) from exc
        try:
            text = template.render(**context)
        except jinja2.UndefinedError as exc:
            line = _template_line(exc, template.filename)
            found = _UNDEFINED_NAME.search(exc.message or "")
            variable = next((g for g in found.groups() if g), None) if found else None
            raise TemplateProblem(
                f"template {name}, line {line or '?'}: variable "
                f"{variable or '?'} is missing ({exc.message})"
            ) from exc
        except jinja2.TemplateError as exc:
            line = _template_line(exc, template.filename)
            raise TemplateProblem(f"template {name}, line {line or '?'}: {exc}") from exc
        return _split_subject(name, text)

    def render_document(self, name: str, **context: Any) -> str:
        """A whole document (the case file), not a mail: no Subject line. Templates whose name
        ends in .html.j2 are rendered with HTML autoescaping, so text from mail cannot become markup."""
        documents = getattr(self, "_documents", None)
        if documents is None:  # made on first use; it shares the loader but keeps its own cache
            documents = self.environment.overlay(
                autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2", "html"), default=False))
            self._documents = documents
        try:
            template = documents.get_template(name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateProblem(f"template {name} not found in {', '.join(self.search_path)}") from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateProblem(f"template {name}, line {exc.lineno}: {exc.message}") from exc
        try:
            return template.render(**context)
        except jinja2.TemplateError as exc:
            line = _template_line(exc, template.filename)
            raise TemplateProblem(f"template {name}, line {line or '?'}: {exc}") from exc

    def render_with_samples(self, name: str) -> RenderedMail:
        """Render `name` with its SAMPLE_CONTEXTS entry (for `parting doctor` and tests)."""
        if name not in SAMPLE_CONTEXTS:
            raise TemplateProblem(f"template {name} has no sample context")
        return self.render(name, **SAMPLE_CONTEXTS[name])


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """The template line being rendered when `exc` was raised (Jinja maps frames to it)."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if filename and frame.f_code.co_filename == filename:
            line = lineno
    return line


def _split_subject(name: str, text: str) -> RenderedMail:
    first, newline, rest = text.partition("\n")
    if not first.lower().startswith("subject:"):
        raise TemplateProblem(f"template {name}, line 1: must start with 'Subject: ...'")
    subject = first[len("subject:"):].strip()
    if not subject:
        raise TemplateProblem(f"template {name}, line 1: the subject is empty")
    try:
        check_header_value("Subject", subject)
    except HeaderInjection as exc:
        raise TemplateProblem(f"template {name}, line 1: {exc}") from exc
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise TemplateProblem(
            f"template {name}, line 2: must be blank after the Subject line "
            "(or a value used in the subject contains a line break)"
        )
    return RenderedMail(subject=subject, body=body)
