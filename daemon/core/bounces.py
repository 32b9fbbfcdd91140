"""Delivery failures: which message of ours a bounce reports, to whom, and why.

Rules of this module:
- Pure; reads a delivery status notification (RFC 3464) with the bounded helpers of
  core/mailbody.py and never raises: an unreadable report names no message.
- The original message is the Message-ID of the returned headers (text/rfc822-headers or the
  attached message/rfc822), else the bounce's own In-Reply-To or References, which some servers
  set. Without one the bounce stays evidence only (the `bounced` rule), never undeliverable.
- A failure is a recipient block whose Action is "failed" (or, without an Action, a 5.x.x
  Status): delays and relays are not failures. Without any readable block, X-Failed-Recipients
  names the addresses (status unknown).
- The reason is the Diagnostic-Code when there is one (what the receiving server said), else
  the Status code; one line, at most 300 characters.
"""

from __future__ import annotations

import re
from email.message import Message
from email.parser import HeaderParser

from daemon.core.mail import MalformedMessage, bounce_recipients, parse_message
from daemon.core.mailbody import delivery_status_blocks, one_line, parse_body, walk_parts
from daemon.core.model import DeliveryFailure

MAX_REASON = 300
_MESSAGE_ID = re.compile(r"<([^<>\s]{1,255})>")


def delivery_failures(raw: bytes) -> tuple[DeliveryFailure, ...]:
    """One DeliveryFailure per address the bounce in `raw` says was not delivered; () when it
    names no original message of ours or no failed address."""
    try:
        parsed = parse_message(raw)
    except MalformedMessage:
        return ()
    if not parsed.bounce:
        return ()
    message = parse_body(raw)
    if message is None:
        return ()
    try:
        original = _returned_message_id(message) or next(iter((*parsed.in_reply_to, *parsed.references)), None)
        failed, reported = _failed_blocks(message)
    except Exception:  # why: a defective report reads as no report
        return ()
    if original is None:
        return ()
    if not reported:  # no readable recipient block: X-Failed-Recipients, if any, names them
        failed = [(address, "", "") for address in bounce_recipients(raw)]
    return tuple(DeliveryFailure(original, address, status, reason or status or "delivery failed")
                 for address, status, reason in failed)


def _returned_message_id(message: Message) -> str | None:
    for part in walk_parts(message):
        content_type = part.get_content_type()
        headers: Message | None
        if content_type in ("text/rfc822-headers", "text/global-headers"):
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(part.get_payload())
            headers = HeaderParser().parsestr(text, headersonly=True)
        elif content_type in ("message/rfc822", "message/global") and part.is_multipart():
            inner = part.get_payload()
            headers = inner[0] if isinstance(inner, list) and inner and isinstance(inner[0], Message) else None
        else:
            continue
        value = headers.get("Message-ID") if headers is not None else None
        match = _MESSAGE_ID.search(str(value or ""))
        if match:
            return match.group(1)
    return None


def _failed_blocks(message: Message) -> tuple[list[tuple[str, str, str]], bool]:
    """(address, status, diagnostic) of each failed recipient block, and whether any recipient
    block was read at all."""
    found: list[tuple[str, str, str]] = []
    reported = False
    for block in delivery_status_blocks(message):
        recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
        if not recipient:
            continue
        reported = True
        address = recipient.split(";", 1)[-1].strip().strip("<>").lower()
        action = str(block.get("Action", "")).strip().lower()
        status = str(block.get("Status", "")).strip()
        if "@" not in address or not (action == "failed" or (not action and status.startswith("5."))):
            continue
        diagnostic = str(block.get("Diagnostic-Code") or "").split(";", 1)[-1]
        found.append((address, one_line(status)[:20], one_line(diagnostic)[:MAX_REASON]))
    return found, reported
