"""The app's certificate credential: a client assertion JWT signed with its private key (RFC 7523).

Rules of this module:
- Microsoft identity platform calls this a "certificate credential" and recommends it over client
  secrets for daemons: the token request carries a short-lived JWT (`iss` = `sub` = client id,
  `aud` = token endpoint, `exp`, a fresh `jti`) signed RS256 with the private key, its header naming
  the certificate by thumbprint (`x5t#S256`, and the SHA-1 `x5t` Microsoft still matches on).
- Signing is Authlib's `PrivateKeyJWT` client authentication; this module only loads and checks the
  PEM files (with `cryptography`) and adds the thumbprint header. No JWT is assembled by hand.
- The private key is a secret: registered with the log redaction when read, masked in every repr.
- A certificate and key that do not belong together, or are not RSA, are refused when the config is
  read, naming the file, before any identity provider is asked.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Any

from daemon.adapters.redaction import register_secret

ALGORITHM = "RS256"  # what Microsoft identity platform accepts for certificate credentials


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class CertificateProblem(ValueError):
    """The certificate or the key cannot be used; the message says which and why."""

    def __init__(self, which: str, message: str) -> None:
        super().__init__(message)
        self.which = which  # "certificate" or "private_key": the setting to point at


@dataclass(frozen=True)
class ClientCertificate:
    """The app's certificate and private key (PEM), checked to belong together."""

    certificate_pem: bytes
    private_key_pem: bytes = field(repr=False)
    thumbprint_sha1: str = ""  # x5t: base64url of the SHA-1 of the certificate's DER form
    thumbprint_sha256: str = ""  # x5t#S256

    @classmethod
    def load(cls, certificate_pem: bytes, private_key_pem: bytes) -> ClientCertificate:
        """Check the pair; raises CertificateProblem naming the file that is wrong."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        register_secret(private_key_pem)
        for line in private_key_pem.splitlines():  # a log line quoting part of the key is masked too
            if not line.startswith(b"-----") and len(line.strip()) >= 16:  # not a short tail
                register_secret(line.strip())
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
        except ValueError:
            raise CertificateProblem("certificate", "not a PEM certificate (expected a block starting "
                                     "-----BEGIN CERTIFICATE-----)") from None
        try:
            key = serialization.load_pem_private_key(private_key_pem, password=None)
        except TypeError:
            raise CertificateProblem("private_key", "the private key is encrypted; store it unencrypted "
                                     "(`openssl pkey -in key.pem -out plain.pem`, then chmod 600 or "
                                     "LoadCredential=)") from None
        except ValueError:
            raise CertificateProblem("private_key", "not a PEM private key (expected a block starting "
                                     "-----BEGIN PRIVATE KEY-----)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CertificateProblem("private_key", "the private key is not RSA; Microsoft's certificate "
                                     "credentials are signed RS256: make an RSA key (2048 bits or more)")
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if (key.public_key().public_bytes(serialization.Encoding.DER, public)
                != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
            raise CertificateProblem("private_key", "this private key does not belong to the certificate: "
                                     "give the key the certificate was made with")
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(certificate_pem, private_key_pem, _b64url(hashlib.sha1(der).digest()),  # noqa: S324 - x5t is SHA-1 by definition
                   _b64url(hashlib.sha256(der).digest()))

    def client_auth(self, token_url: str) -> Any:
        """Authlib's private_key_jwt client authentication, the thumbprints in the JWT header."""
        from authlib.common.urls import add_params_to_qs, url_decode
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        class WithClientId(PrivateKeyJWT):
            # Microsoft's token endpoint asks for client_id in the form beside the assertion.
            def __call__(self, auth: Any, method: str, uri: str, headers: Any, body: str) -> Any:
                uri, headers, body = super().__call__(auth, method, uri, headers, body)
                if "client_id" not in dict(url_decode(body)):
                    body = add_params_to_qs(body, [("client_id", auth.client_id)])
                return uri, headers, body

        return WithClientId(token_url, alg=ALGORITHM,
                            headers={"x5t#S256": self.thumbprint_sha256, "x5t": self.thumbprint_sha1})

    def describe(self) -> str:
        return f"certificate (private_key_jwt, thumbprint x5t#S256 {self.thumbprint_sha256})"


ClientAuth = str | ClientCertificate | None  # how the app proves itself: a secret, a certificate, or not at all
