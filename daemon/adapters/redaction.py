"""The secrets every log line must mask: registered by whoever reads one (settings, OAuth tokens).

Kept apart from runtime/logs.py so that an adapter that reads a secret can register it without
importing the runtime; the log formatters read `mask` from here.
"""

from __future__ import annotations

_secrets: set[str] = set()


def register_secret(value: str | bytes | None) -> None:
    """Mask this value wherever it would appear in a log line."""
    if not value:
        return
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if len(text) >= 4:
        _secrets.add(text)


def mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "********")
    return text
