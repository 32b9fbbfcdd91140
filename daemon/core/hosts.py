"""Host names and addresses, as the settings and the mail adapters judge them.

Rules: pure functions of their argument; no name resolution (a host name other than
"localhost" is never taken for loopback, since DNS could say anything). Providers are
recognised by domain, never by substring: a self-hosted "outlook.example.com" is not Microsoft.
"""

from __future__ import annotations

import ipaddress

# Providers whose SMTP servers file a copy of what they accept in the Sent folder themselves.
PROVIDERS_FILING_SENT = ("gmail.com", "googlemail.com", "office365.com", "outlook.com")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) or localhost: where plain-text connections are allowed."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def files_own_sent_copy(smtp_host: str) -> bool:
    """Whether this SMTP host's provider files what it accepts in Sent itself (Gmail, Microsoft 365)."""
    host = smtp_host.strip().lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in PROVIDERS_FILING_SENT)


def appends_to_sent(choice: str, smtp_host: str) -> bool:
    """Whether parting files its sent copy: mailbox.append_to_sent "true"/"false", or "auto" (not
    where the provider files one itself, which would make two)."""
    if choice != "auto":
        return choice == "true"
    return not files_own_sent_copy(smtp_host)
