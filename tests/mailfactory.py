"""Realistic messages for seeding test mailboxes: requests, replies, Outlook replies, auto-replies, bounces.

Every builder returns raw bytes ready for IMAP APPEND. Dates are aware datetimes.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

OFFICE = "office@example.com"
AUTHSERV = "mx.example.com"


def message_id(tag: str, domain: str = "example.com") -> str:
    return f"<{hashlib.sha1(tag.encode()).hexdigest()[:16]}.{tag}@{domain}>"


def build(*, sender: str, to: str | list[str], subject: str, body: str, when: datetime, mid: str,
          in_reply_to: str | None = None, references: list[str] | None = None, cc: list[str] | None = None,
          headers: dict[str, str] | None = None, sender_name: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    msg["To"] = ", ".join([to] if isinstance(to, str) else to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = mid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = " ".join(references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP)


def request(to: str, subject: str, when: datetime, tag: str, *, question: str = "Could you send us the signed form?") -> tuple[bytes, str]:
    """Our message to a client that asks for something (lives in Sent)."""
    mid = message_id(tag)
    body = f"Hello,\n\n{question}\n\nThank you,\nAlice\n"
    return build(sender=OFFICE, to=to, subject=subject, body=body, when=when, mid=mid, sender_name="Example Ltd"), mid


def statement(to: str, subject: str, when: datetime, tag: str) -> tuple[bytes, str]:
    """Our message that asks nothing (no reply expected under `questions`)."""
    mid = message_id(tag)
    body = "Hello,\n\nThe report is attached for your records. No action needed.\n\nAlice\n"
    return build(sender=OFFICE, to=to, subject=subject, body=body, when=when, mid=mid), mid


def reply(sender: str, parent_mid: str, subject: str, when: datetime, tag: str, *,
          body: str = "Thanks, here it is.\n", references: list[str] | None = None,
          headers: dict[str, str] | None = None, to: str = OFFICE) -> tuple[bytes, str]:
    mid = message_id(tag, sender.split("@")[1])
    return build(sender=sender, to=to, subject=subject if subject.lower().startswith("re:") else f"Re: {subject}",
                 body=body, when=when, mid=mid, in_reply_to=parent_mid,
                 references=references if references is not None else [parent_mid], headers=headers), mid


def outlook_reply(sender: str, subject: str, when: datetime, tag: str, thread_index: bytes) -> tuple[bytes, str]:
    """An Outlook reply with Thread-Index / Thread-Topic and no In-Reply-To or References."""
    mid = message_id(tag, sender.split("@")[1])
    return build(sender=sender, to=OFFICE, subject=f"RE: {subject}", body="See attached.\n", when=when, mid=mid,
                 headers={"Thread-Index": base64.b64encode(thread_index).decode(), "Thread-Topic": subject}), mid


def out_of_office(sender: str, parent_mid: str, subject: str, when: datetime, tag: str) -> tuple[bytes, str]:
    mid = message_id(tag, sender.split("@")[1])
    return build(sender=sender, to=OFFICE, subject=f"Automatic reply: {subject}",
                 body="I am out of the office until Monday.\n", when=when, mid=mid, in_reply_to=parent_mid,
                 references=[parent_mid], headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}), mid


def bounce(bounced_rcpt: str, original_mid: str, when: datetime, tag: str, *,
           diagnostic: str | None = None) -> tuple[bytes, str]:
    """A delivery status notification (multipart/report) for a message we sent."""
    mid = message_id(tag, "mx.example.com")
    diagnostic_line = f"Diagnostic-Code: smtp; {diagnostic}\r\n" if diagnostic else ""
    boundary = "dsn-boundary-" + tag
    raw = (
        f"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {OFFICE}\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(when)}\r\n"
        f"Message-ID: {mid}\r\n"
        f"Auto-Submitted: auto-replied\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        f"Final-Recipient: rfc822; {bounced_rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n{diagnostic_line}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: {original_mid}\r\n\r\n"
        f"--{boundary}--\r\n"
    )
    return raw.encode(), mid


def auth_results(domain: str, *, dmarc: str = "pass", authserv: str = AUTHSERV) -> str:
    return (f"{authserv}; dkim=pass header.d={domain} header.s=sel; spf=pass smtp.mailfrom={domain}; "
            f"dmarc={dmarc} header.from={domain}")


def staff_reply(person_email: str, review_raw: bytes, text: str, when: datetime, tag: str, *,
                auth: str | None = "default", sender: str | None = None, extra_auth_below: str | None = None,
                headers: dict[str, str] | None = None, to: str | None = None) -> tuple[bytes, str]:
    """A person's reply to a review email: new text on top, the review quoted below, and the
    Authentication-Results header the company's own mail server would add on top."""
    from email import message_from_bytes
    from email.policy import default

    review = message_from_bytes(review_raw, policy=default)
    reply_to = to or str(review["Reply-To"])
    parent = str(review["Message-ID"])
    quoted = "\n".join("> " + line for line in review.get_body(("plain",)).get_content().splitlines())
    when_text = format_datetime(review_date(review))
    body = f"{text}\n\nOn {when_text}, Example Ltd <{OFFICE}> wrote:\n{quoted}\n"
    domain = (sender or person_email).split("@")[1]
    extra = dict(headers or {})
    msg = EmailMessage()
    if auth is not None:
        msg["Authentication-Results"] = auth_results(domain) if auth == "default" else auth
    if extra_auth_below:
        msg["Authentication-Results"] = extra_auth_below
    msg["From"] = sender or person_email
    msg["To"] = reply_to
    msg["Subject"] = "Re: " + str(review["Subject"])
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id(tag, domain)
    msg["In-Reply-To"] = parent
    # as mail clients do: the parent's References, then the parent
    msg["References"] = " ".join([*str(review.get("References", "")).split(), parent])
    for name, value in extra.items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes(policy=SMTP), msg["Message-ID"]


def deliver(dovecot, folder: str, raw: bytes) -> int:
    """APPEND as a mail server would deliver it: INTERNALDATE is the message's own Date."""
    from email.parser import BytesHeaderParser
    from email.utils import parsedate_to_datetime

    date = BytesHeaderParser().parsebytes(raw).get("Date")
    return dovecot.append(folder, raw, msg_time=parsedate_to_datetime(date) if date else None)


def review_date(review) -> datetime:
    from email.utils import parsedate_to_datetime

    return parsedate_to_datetime(str(review["Date"]))
