"""Host names and addresses, as the settings and the mail adapters judge them.

Rules: pure functions of their argument; no name resolution (a host name other than
"localhost" is never taken for loopback, since DNS could say anything).
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 (bracketed or not) or localhost: where plain-text connections are allowed."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
