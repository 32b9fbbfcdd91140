"""Provider presets: what `mailbox.provider` fills in when the file leaves it out.

Rules of this module:
- A preset only fills keys the file did not write: every value stays overridable, and what was
  filled is remembered (key path, value) so `check-config` can show it.
- Values are written as the config writes them (the kinds already converted the file's values,
  and these are plain strings, numbers and lists of the same shape).
- No YAML and no IO here.

Sources for the values (checked when written; the providers change them rarely):
- Microsoft 365: "Authenticate an IMAP, POP or SMTP connection using OAuth" (Microsoft Learn,
  Exchange Online): outlook.office365.com:993, smtp.office365.com:587 STARTTLS, scopes
  https://outlook.office.com/IMAP.AccessAsUser.All and SMTP.Send, or
  https://outlook.office365.com/.default for the client-credentials grant; the identity platform's
  v2.0 endpoints under https://login.microsoftonline.com/{tenant}/oauth2/v2.0/.
- Google Workspace: "IMAP, POP, and SMTP" and "OAuth 2.0 for TV and limited-input device
  applications" (Google for Developers): imap.gmail.com:993, smtp.gmail.com:587 STARTTLS, scope
  https://mail.google.com/; the device grant does not allow mail scopes, so the installed-app flow
  (PKCE, loopback redirect) is the preset.
- Both file what is submitted over SMTP in Sent themselves, so append_to_sent is false.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MS = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"

PRESETS: dict[str, dict[str, object]] = {
    "generic": {},
    "microsoft365": {
        "mailbox.imap.host": "outlook.office365.com",
        "mailbox.imap.port": 993,
        "mailbox.imap.security": "tls",
        "mailbox.imap.folders.sent": "Sent Items",
        "mailbox.smtp.host": "smtp.office365.com",
        "mailbox.smtp.port": 587,
        "mailbox.smtp.security": "starttls",
        "mailbox.append_to_sent": "false",
        "mailbox.oauth.flow": "device",
        "mailbox.oauth.tenant": "organizations",
        "mailbox.oauth.authorize_url": f"{_MS}/authorize",
        "mailbox.oauth.token_url": f"{_MS}/token",
        "mailbox.oauth.device_url": f"{_MS}/devicecode",
        "mailbox.oauth.scopes": ["offline_access", "https://outlook.office.com/IMAP.AccessAsUser.All",
                                 "https://outlook.office.com/SMTP.Send"],
    },
    "google": {
        "mailbox.imap.host": "imap.gmail.com",
        "mailbox.imap.port": 993,
        "mailbox.imap.security": "tls",
        "mailbox.smtp.host": "smtp.gmail.com",
        "mailbox.smtp.port": 587,
        "mailbox.smtp.security": "starttls",
        "mailbox.append_to_sent": "false",
        "mailbox.oauth.flow": "browser",
        "mailbox.oauth.authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "mailbox.oauth.token_url": "https://oauth2.googleapis.com/token",
        "mailbox.oauth.revoke_url": "https://oauth2.googleapis.com/revoke",
        "mailbox.oauth.scopes": ["https://mail.google.com/"],
    },
}
# Microsoft's client-credentials grant asks for the app's own permissions, not delegated scopes.
MS_CLIENT_CREDENTIALS_SCOPES = ("https://outlook.office365.com/.default",)

def apply_preset(tree: dict[str, Any], written: set[str], convert: Callable[[str, object], object]) -> list[tuple[str, str]]:
    """Fill the unwritten keys of `tree` from the chosen provider's preset, in place.

    `convert(key_path, value)` turns a preset value into what the schema's kind makes of it.
    Returns the (key path, shown value) pairs filled, in preset order.
    """
    provider = tree["mailbox"]["provider"]
    preset = PRESETS.get(provider if isinstance(provider, str) else "generic", {})
    filled: list[tuple[str, str]] = []
    for path, value in preset.items():
        if path in written:
            continue
        *parents, leaf = path.split(".")
        node = tree
        for part in parents:
            node = node[part]
        node[leaf] = convert(path, value)
        filled.append((path, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return filled


def expand_tenant(url: str | None, tenant: str | None) -> str | None:
    """Endpoints written with {tenant} get the configured tenant (Microsoft's directory id or domain)."""
    if url is None:
        return None
    return url.replace("{tenant}", tenant or "organizations")
