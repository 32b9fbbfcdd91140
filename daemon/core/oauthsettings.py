"""How `parting login` enrols and how the daemon gets access tokens (mailbox.auth: oauth2).

Rules of this module:
- A frozen dataclass only, exported by core/model.py as before, which imports this module only
  when it is first asked for: a password mailbox's reports never create it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

OAuthFlow = Literal["device", "browser", "client_credentials"]


@dataclass(frozen=True)
class OAuthSettings:
    """How `parting login` enrols and how the daemon gets access tokens (mailbox.auth: oauth2)."""

    client_id: str
    token_url: str
    scopes: tuple[str, ...]
    token_file: str  # in the state directory: the refresh token, mode 0600, never in the YAML
    flow: OAuthFlow = "device"
    tenant: str | None = None  # Microsoft 365: the directory (tenant) id or domain
    authorize_url: str | None = None  # installed-app flow (PKCE)
    device_url: str | None = None  # device authorization endpoint (RFC 8628)
    revoke_url: str | None = None
    client_secret_file: str | None = None
    client_secret_env: str | None = None
    # A certificate credential instead of a secret (RFC 7523 private_key_jwt): both or neither.
    client_certificate_file: str | None = None
    client_certificate_env: str | None = None
    client_private_key_file: str | None = None
    client_private_key_env: str | None = None

    @property
    def client_authentication(self) -> str:
        """How the app proves itself at the token endpoint: private_key_jwt, client_secret_post or none."""
        if self.client_certificate_file or self.client_certificate_env:
            return "private_key_jwt"
        return "client_secret_post" if self.client_secret_file or self.client_secret_env else "none"
