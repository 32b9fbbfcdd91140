"""The demo's company, Example Ltd: its people, its clients, its configuration and the mail they write.

Rules of this module:
- Everything here is what a real deployment would have: a YAML configuration read by the
  ordinary settings loader, secret files with mode 0600, and standard RFC 5322 messages built
  with `email.message.EmailMessage`. The daemon gets no hint that it is in a demo.
- Staff replies look like a mail client's: new text on top, the review email quoted below an
  "On ..., ... wrote:" line, threaded by In-Reply-To and References, and the
  Authentication-Results header the company's receiving server (SERVER_NAME) adds on top.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any

from daemon.adapters.settings.load import dump_config
from daemon.demo.servers import SERVER_NAME, ReceivedMail

COMPANY = "Example Ltd"
DOMAIN = "example.com"
OFFICE = f"office@{DOMAIN}"
TIMEZONE = "Europe/London"


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    email: str


ALICE = Person("alice", "Alice Smith", f"alice@{DOMAIN}")
BOB = Person("bob", "Bob Jones", f"bob@{DOMAIN}")
JANE = Person("jane", "Jane Doe", "jane@acme.example")  # Acme's contact: stops answering
HANK = Person("hank", "Hank Scorpio", "hank@globex.example")  # Globex's contact: answers

CLIENTS = [
    {"id": "acme", "name": "Acme Ltd", "contact": JANE.name, "addresses": [JANE.email], "domains": ["acme.example"],
     "owner": ALICE.id, "phone": "+44 20 7946 0000", "timezone": TIMEZONE},
    {"id": "globex", "name": "Globex Corporation", "contact": HANK.name, "addresses": [HANK.email],
     "domains": ["globex.example"], "owner": ALICE.id, "phone": "+44 20 7946 0999"},
]


@dataclass(frozen=True)
class Credentials:
    imap_password: str
    token_key: str
    staff_password: str  # alice's and bob's IMAP logins, for looking with a mail client (--keep)


def new_credentials() -> Credentials:
    return Credentials(secrets.token_urlsafe(16), secrets.token_urlsafe(48), secrets.token_urlsafe(12))


def write_secret(path: Path, value: str) -> None:
    """Create the file with mode 0600 from the start: never readable by others, not even briefly."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(value + "\n")


def write_config(workdir: Path, *, imap_port: int, smtp_port: int, credentials: Credentials) -> Path:
    """The configuration a user would write for this company, and its secret files."""
    write_secret(workdir / "imap-password", credentials.imap_password)
    write_secret(workdir / "token-key", credentials.token_key)
    config: dict[str, Any] = {
        "company": {"name": COMPANY},
        "mailbox": {
            "address": OFFICE,
            "imap": {"host": "127.0.0.1", "port": imap_port, "security": "none", "username": OFFICE,
                     "password_file": str(workdir / "imap-password"),
                     # pymap has no SPECIAL-USE, so the Sent folder is named rather than found.
                     "folders": {"inbox": "INBOX", "sent": "Sent"}, "lookback": "120 days",
                     "timeouts": {"connect": "5 seconds", "read": "30 seconds"}},
            "smtp": {"host": "127.0.0.1", "port": smtp_port, "security": "none",
                     "timeouts": {"connect": "5 seconds", "data": "20 seconds"}},
            "append_to_sent": "true",
        },
        "state": {"database": str(workdir / "parting.db")},
        "people": [{"id": p.id, "name": p.name, "email": p.email} for p in (ALICE, BOB)],
        "clients": CLIENTS,
        "working_hours": {"timezone": TIMEZONE, "days": ["mon", "tue", "wed", "thu", "fri"],
                          "start": "09:00", "end": "17:30", "holidays": {"country": "GB", "subdivision": "ENG"}},
        "policy": {"expects_reply": "questions", "ignored_after": "3 business days",
                   "unresponsive": {"ignored_messages": 3, "within": "30 days", "or_silent_for": "21 days"},
                   "ladder": [{"after_ignored": 1, "action": "nudge"},
                              {"after_ignored": 2, "action": "notify_owner"},
                              {"after_ignored": 3, "action": "draft_release"}]},
        "review": {"reviewers": [BOB.id], "approvals_required": 1, "token_ttl": "72 hours",
                   "authserv_id": SERVER_NAME, "require_authentication": True, "send_delay": "10 minutes",
                   "token_key_file": str(workdir / "token-key")},
        "followup": {"phone_call_after": "24 hours", "retrospective_after": "7 days"},
    }
    path = workdir / "config.yaml"
    path.write_text("# Written by `parting demo`: the configuration of a small company, Example Ltd.\n"
                    + dump_config(config))
    return path


# ---- the mail they write -----------------------------------------------------------------------


def message_id(tag: str, domain: str = DOMAIN) -> str:
    return f"<{tag}.demo@{domain}>"


def _message(*, sender: str, to: str, subject: str, body: str, when: datetime, mid: str,
             sender_name: str | None = None, parent: EmailMessage | None = None,
             headers: dict[str, str] | None = None) -> EmailMessage:
    msg = EmailMessage()
    for name, value in (headers or {}).items():
        msg[name] = value
    msg["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = mid
    if parent is not None:
        msg["In-Reply-To"] = parent["Message-ID"]
        msg["References"] = " ".join(filter(None, [parent.get("References"), parent["Message-ID"]]))
    msg.set_content(body)
    return msg


@dataclass(frozen=True)
class Mail:
    raw: bytes
    message_id: str
    message: EmailMessage


def _mail(msg: EmailMessage) -> Mail:
    return Mail(msg.as_bytes(policy=SMTP), str(msg["Message-ID"]), msg)


def request(to: Person, subject: str, question: str, when: datetime, tag: str) -> Mail:
    """Alice asks a client for something, from the office address (it lands in Sent)."""
    body = f"Dear {to.name.split()[0]},\n\n{question}\n\nThank you,\n{ALICE.name}\n{COMPANY}\n"
    return _mail(_message(sender=OFFICE, sender_name=f"{ALICE.name} ({COMPANY})", to=to.email, subject=subject,
                          body=body, when=when, mid=message_id(tag)))


def reply(person: Person, parent: Mail, body: str, when: datetime, tag: str) -> Mail:
    """A client's own answer, in the thread of our request."""
    return _mail(_message(sender=person.email, sender_name=person.name, to=OFFICE,
                          subject=f"Re: {parent.message['Subject']}", body=body, when=when,
                          mid=message_id(tag, person.email.split("@")[1]), parent=parent.message))


def out_of_office(person: Person, parent: Mail, when: datetime, tag: str) -> Mail:
    """An automatic reply (RFC 3834 Auto-Submitted): it must never count as an answer."""
    body = (f"Thank you for your message. I am out of the office with limited access to email "
            f"and will reply on my return.\n\n{person.name}\n")
    return _mail(_message(sender=person.email, sender_name=person.name, to=OFFICE,
                          subject=f"Automatic reply: {parent.message['Subject']}", body=body, when=when,
                          mid=message_id(tag, person.email.split("@")[1]), parent=parent.message,
                          headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}))


def authentication_results(domain: str) -> str:
    """What the company's receiving server writes after checking DKIM, SPF and DMARC."""
    return (f"{SERVER_NAME}; dkim=pass header.d={domain} header.s=mail; spf=pass smtp.mailfrom={domain}; "
            f"dmarc=pass header.from={domain}")


def staff_reply(person: Person, review: ReceivedMail, text: str, when: datetime, tag: str) -> Mail:
    """A person's reply to a review email, as their mail client writes it and our server receives it."""
    original = review.message
    sent_at = parsedate_to_datetime(str(original["Date"]))
    quoted = "\n".join(f"> {line}" if line else ">" for line in review.text.splitlines())
    body = f"{text}\n\nOn {format_datetime(sent_at)}, {original['From']} wrote:\n{quoted}\n"
    domain = person.email.split("@")[1]
    msg = _message(sender=person.email, sender_name=person.name, to=str(original["Reply-To"]),
                   subject=f"Re: {str(original['Subject']).strip()}", body=body, when=when, mid=message_id(tag, domain),
                   parent=original, headers={"Authentication-Results": authentication_results(domain)})
    return _mail(msg)
