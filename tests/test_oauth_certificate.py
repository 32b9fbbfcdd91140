"""Client credentials with a certificate instead of a secret (RFC 7523 private_key_jwt, Microsoft's
"certificate credential"): `parting login` end to end against the fake identity provider, which
checks the client assertion, then a Dovecot login; a key the provider does not know; the config
errors; what check-config and doctor say."""

from __future__ import annotations

import asyncio
import datetime
import json
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from test_oauth_login import write_config
from test_settings_providers import config, problems

from daemon.adapters.imap.connection import ImapConnection
from daemon.adapters.oauth import OAuthCredential
from daemon.adapters.oauth_certificate import ClientCertificate
from daemon.adapters.redaction import mask
from daemon.adapters.settings.load import SettingsError, load_settings
from daemon.adapters.settings.secret_files import load_secrets
from daemon.cli import cli
from daemon.core.model import ImapSettings
from daemon.queries.doctor import run_checks


def make_pair(kind: str = "rsa") -> tuple[bytes, bytes]:
    """A self-signed certificate and its private key (PEM), as an admin makes for an app registration."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if kind == "rsa" else \
        ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parting app")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=365)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def certificate_config(tmp_path, idp, certificate: bytes, key: bytes):
    (tmp_path / "app.crt").write_bytes(certificate)
    (tmp_path / "app.key").write_bytes(key)
    (tmp_path / "app.key").chmod(0o600)
    return write_config(tmp_path, idp, flow="client_credentials", client_certificate_file="app.crt",
                        client_private_key_file="app.key")


@pytest.mark.integration
def test_client_credentials_with_a_certificate_end_to_end(idp, dovecot_oauth, tmp_path):
    certificate, key = make_pair()
    idp.client_certificate = certificate  # uploaded to the app registration; no client secret exists
    config_path = certificate_config(tmp_path, idp, certificate, key)
    result = CliRunner().invoke(cli, ["login", "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    assert "as the app itself (client credentials)" in result.output
    assert "client authentication: certificate (private_key_jwt" in result.output
    assert "renewed with the app's certificate" in result.output
    # the identity provider checked a JWT naming the certificate by its thumbprints (x5t#S256 and x5t)
    header = idp.assertions[-1]
    assert header["alg"] == "RS256" and header["x5t#S256"] and header["x5t"]
    token_file = tmp_path / "oauth-token.json"
    saved = json.loads(token_file.read_text())
    assert "PRIVATE KEY" not in token_file.read_text() and "PRIVATE KEY" not in result.output
    # the daemon's sign-in, as `parting run` sets it up, uses what login wrote
    settings = load_settings(config_path)
    secrets = load_secrets(settings)
    credential = OAuthCredential(settings.mailbox.oauth, secrets.oauth_client_auth)
    imap = ImapSettings(host=dovecot_oauth.host, port=dovecot_oauth.port, security="none",
                        username=dovecot_oauth.user, connect_timeout=5, read_timeout=10)
    with ImapConnection(imap, credential) as connection:
        assert connection.connected
    assert credential.access_token() == saved["access_token"]
    # once the access token is refused, a new one comes from a fresh assertion (a new jti)
    idp.expire_access_tokens()
    credential.invalidate(saved["access_token"])
    with ImapConnection(imap, credential) as connection:
        assert connection.connected
    assert credential.renewals == 1 and len(idp.used_jti) == 2


def test_a_key_the_identity_provider_does_not_know_is_refused_clearly(idp, tmp_path):
    registered, _ = make_pair()
    idp.client_certificate = registered
    other_certificate, other_key = make_pair()  # a pair of its own, not the one uploaded
    config_path = certificate_config(tmp_path, idp, other_certificate, other_key)
    result = CliRunner().invoke(cli, ["login", "--config", str(config_path)])
    assert result.exit_code != 0
    assert "upload this certificate to the app registration" in result.output
    assert "AADSTS700027" in result.output
    assert not (tmp_path / "oauth-token.json").exists()
    assert idp.assertions == []


def test_the_private_key_is_masked_everywhere(idp, tmp_path):
    certificate, key = make_pair()
    secrets = load_secrets(load_settings(certificate_config(tmp_path, idp, certificate, key)))
    body = key.decode().strip()
    key_lines = body.splitlines()[1:-1]  # between the BEGIN and END lines
    masked = mask(f"oops: {body}")
    assert "********" in masked and not any(line in masked for line in key_lines)
    assert mask(f"part of it: {key_lines[3]}") == "part of it: ********"
    assert "PRIVATE" not in repr(secrets) and "PRIVATE" not in repr(secrets.oauth_client_certificate)


def test_a_key_that_does_not_belong_to_the_certificate_is_a_config_error(idp, tmp_path):
    certificate, _ = make_pair()
    _, other_key = make_pair()
    with pytest.raises(SettingsError) as caught:
        load_secrets(load_settings(certificate_config(tmp_path, idp, certificate, other_key)))
    [problem] = caught.value.problems
    assert problem.key_path == "mailbox.oauth.client_private_key_file"
    assert "does not belong to the certificate" in problem.message


def test_a_key_that_is_not_rsa_is_a_config_error(idp, tmp_path):
    certificate, key = make_pair("ec")
    with pytest.raises(SettingsError) as caught:
        load_secrets(load_settings(certificate_config(tmp_path, idp, certificate, key)))
    assert "not RSA" in caught.value.problems[0].message


M365 = "  provider: microsoft365\n  auth: oauth2\n  oauth: {client_id: c, tenant: t, flow: client_credentials, %s}\n"


@pytest.mark.parametrize(("written", "key", "words"), [
    ("client_certificate_file: app.crt", "mailbox.oauth.client_certificate_file",
     "a certificate without its private key"),
    ("client_private_key_env: APP_KEY", "mailbox.oauth.client_private_key_env",
     "a private key without its certificate"),
    ("client_secret_file: s, client_certificate_file: app.crt, client_private_key_file: app.key",
     "mailbox.oauth.client_secret_file", "a client secret or a certificate, not both"),
    ("client_certificate_file: a, client_certificate_env: A, client_private_key_file: k",
     "mailbox.oauth.client_certificate_env", "not both"),
    ("token_file: t.json", "mailbox.oauth.flow", "client_certificate_file and client_private_key_file"),
])
def test_certificate_config_errors(tmp_path, written, key, words):
    found = dict(problems(config(tmp_path, M365 % written)))
    assert words in found[key], found


def test_check_config_says_which_client_authentication(tmp_path):
    path = config(tmp_path, M365 % "client_certificate_file: app.crt, client_private_key_file: app.key")
    result = CliRunner().invoke(cli, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert "client authentication: certificate (private_key_jwt" in result.output
    path = config(tmp_path, M365 % "client_secret_file: s")
    assert "client authentication: client secret" in CliRunner().invoke(cli, ["check-config", str(path)]).output


def test_doctor_says_the_app_signs_in_with_its_certificate(idp, tmp_path):
    certificate, key = make_pair()
    idp.client_certificate = certificate
    config_path = certificate_config(tmp_path, idp, certificate, key)
    tree = yaml.safe_load(config_path.read_text())
    tree["mailbox"]["imap"]["port"] = tree["mailbox"]["smtp"]["port"] = 9  # nothing listens: fails fast
    config_path.write_text(yaml.safe_dump(tree))
    checks = {check.name: check for check in asyncio.run(run_checks(config_path))}
    assert checks["OAuth client private key"].ok and checks["OAuth client certificate"].ok
    sign_in = checks["OAuth sign-in"]
    assert sign_in.ok, sign_in.detail
    assert "client authentication: certificate (private_key_jwt, thumbprint x5t#S256" in sign_in.detail


def test_the_pair_comes_from_a_systemd_credential_and_an_environment_variable(idp, tmp_path):
    certificate, key = make_pair()
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "app.crt").write_bytes(certificate)  # LoadCredential=app.crt:/etc/parting/app.crt
    (credentials / "token-key").write_text("k" * 40)
    config_path = write_config(tmp_path, idp, flow="client_credentials", client_certificate_file="app.crt",
                               client_private_key_env="PARTING_APP_KEY")
    environ = {"CREDENTIALS_DIRECTORY": str(credentials), "PARTING_APP_KEY": key.decode()}
    settings = load_settings(config_path, environ=environ)
    assert settings.mailbox.oauth.client_certificate_file == str(credentials / "app.crt")
    pair = load_secrets(settings, environ=environ).oauth_client_certificate
    assert pair is not None and pair.certificate_pem == certificate.rstrip(b"\n")
    with pytest.raises(SettingsError) as caught:  # the variable missing: said, at its key
        load_secrets(settings, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert caught.value.problems[0].key_path == "mailbox.oauth.client_private_key_env"


def test_the_fake_identity_provider_checks_audience_and_replay(idp):
    """The fake is honest: what Microsoft refuses, it refuses too (so the tests above mean something)."""
    from authlib.oauth2.rfc7523 import private_key_jwt_sign
    from joserfc.jwk import RSAKey

    certificate, key = make_pair()
    idp.client_certificate = certificate
    pair = ClientCertificate.load(certificate, key)
    header = {"x5t#S256": pair.thumbprint_sha256}

    def post(assertion: str) -> tuple[int, dict]:
        form = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": idp.client_id,
                                       "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:"
                                       "jwt-bearer", "client_assertion": assertion}).encode()
        try:
            with urllib.request.urlopen(f"{idp.url}/token", form) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)

    elsewhere = private_key_jwt_sign(RSAKey.import_key(key), idp.client_id, f"{idp.url}/other", header=header)
    assert post(elsewhere)[1]["error_description"].startswith("AADSTS50013")
    good = private_key_jwt_sign(RSAKey.import_key(key), idp.client_id, f"{idp.url}/token", header=header)
    assert post(good)[0] == 200
    assert "AADSTS700025" in post(good)[1]["error_description"]  # the same jti again
