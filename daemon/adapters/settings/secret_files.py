"""Secrets and the runtime environment: what `run` needs beyond a valid config file.

Rules of this module:
- Secret values are read only from the files and environment variables the settings name;
  they never appear in a message, a repr or a log line.
- Every unusable secret or folder is reported at once, pointing at its key's line.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.adapters.settings.problems import Problem, SettingsError, problem_at
from daemon.core.model import Settings

if TYPE_CHECKING:
    from daemon.adapters.oauth import Login
    from daemon.adapters.oauth_certificate import ClientAuth, ClientCertificate


@dataclass(frozen=True)
class Secrets:
    imap_password: Login  # an OAuthCredential once the runtime sets up mailbox.auth: oauth2
    smtp_password: Login
    token_key: bytes
    warnings: tuple[str, ...] = ()
    oauth_client_secret: str | None = None  # mailbox.oauth.client_secret_file / _env
    # mailbox.oauth.client_certificate_file + client_private_key_file (or _env), checked to belong together
    oauth_client_certificate: ClientCertificate | None = None

    @property
    def oauth_client_auth(self) -> ClientAuth:
        """What the app proves itself with at the token endpoint: its certificate, its secret, or nothing."""
        return self.oauth_client_certificate or self.oauth_client_secret

    def __repr__(self) -> str:
        def masked(value: object) -> str:
            return "None" if value is None else "'***'"

        return (f"Secrets(imap_password={masked(self.imap_password)}, smtp_password={masked(self.smtp_password)}, "
                f"token_key={masked(self.token_key)}, oauth_client_secret={masked(self.oauth_client_secret)}, "
                f"oauth_client_certificate={masked(self.oauth_client_certificate)}, "
                f"warnings={self.warnings!r})")

    __str__ = __repr__


_TOKEN_KEY_MIN_BYTES = 32


def load_secrets(settings: Settings, *, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read the passwords and the token key; raise SettingsError naming every one that cannot be used."""
    environ = os.environ if environ is None else environ
    problems: list[Problem] = []
    warnings: list[str] = []

    def read(key: str, file: str | None, env_name: str | None, what: str) -> bytes | None:
        if file is not None:
            value, message = _read_secret_file(file, key, what, warnings)
            where = f"{key}_file"
        elif env_name is not None:
            value, message = _read_secret_env(env_name, key, what, environ)
            where = f"{key}_env"
        else:
            return None
        if message:
            problems.append(problem_at(settings, where, message))
        return value

    imap, smtp, review = settings.mailbox.imap, settings.mailbox.smtp, settings.review
    imap_password = read("mailbox.imap.password", imap.password_file, imap.password_env, "IMAP password")
    smtp_password = read("mailbox.smtp.password", smtp.password_file, smtp.password_env, "SMTP password")
    token_key = read("review.token_key", review.token_key_file, review.token_key_env, "token key")
    oauth = settings.mailbox.oauth
    client_secret = read("mailbox.oauth.client_secret", oauth.client_secret_file, oauth.client_secret_env,
                         "OAuth client secret") if oauth is not None else None
    certificate = None
    if oauth is not None and oauth.client_authentication == "private_key_jwt":
        certificate = _client_certificate(settings, read, problems)
    if token_key is not None and len(token_key) < _TOKEN_KEY_MIN_BYTES:
        where = "review.token_key_file" if review.token_key_file else "review.token_key_env"
        problems.append(problem_at(settings, where, f"the token key is {len(token_key)} bytes; it must be at "
                                   f"least {_TOKEN_KEY_MIN_BYTES}: make one with "
                                   "`head -c 48 /dev/urandom | base64 > token-key`"))
    if token_key is None and not problems:
        problems.append(problem_at(settings, "review",
                                   "no token key: set review.token_key_file or token_key_env"))
    passwords = {}
    for key, value in (("mailbox.imap.password", imap_password), ("mailbox.smtp.password", smtp_password),
                       ("mailbox.oauth.client_secret", client_secret)):
        try:
            passwords[key] = None if value is None else value.decode("utf-8")
        except UnicodeDecodeError:
            problems.append(problem_at(settings, key + "_file", "the password is not UTF-8 text"))
    if problems:
        raise SettingsError(problems)
    return Secrets(passwords["mailbox.imap.password"], passwords["mailbox.smtp.password"], token_key or b"",
                   tuple(warnings), passwords["mailbox.oauth.client_secret"], certificate)


def _client_certificate(settings: Settings, read: Callable[[str, str | None, str | None, str], bytes | None],
                        problems: list[Problem]) -> ClientCertificate | None:
    """The app's certificate and private key (the config rules made sure both are named), checked."""
    from daemon.adapters.oauth_certificate import CertificateProblem, ClientCertificate

    oauth = settings.mailbox.oauth
    assert oauth is not None
    key = read("mailbox.oauth.client_private_key", oauth.client_private_key_file, oauth.client_private_key_env,
               "PEM private key")
    certificate = read("mailbox.oauth.client_certificate", oauth.client_certificate_file,
                       oauth.client_certificate_env, "PEM certificate")
    if key is None or certificate is None:
        return None
    try:
        return ClientCertificate.load(certificate, key)
    except CertificateProblem as problem:
        name = f"mailbox.oauth.client_{problem.which}"
        where = f"{name}_file" if getattr(oauth, f"client_{problem.which}_file") else f"{name}_env"
        problems.append(problem_at(settings, where, str(problem)))
        return None


def _strip_newline(data: bytes) -> bytes:
    return data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data


def _read_secret_file(file: str, key: str, what: str, warnings: list[str]) -> tuple[bytes | None, str]:
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        return None, (f"cannot read {file}: no such file; create it with the {what}"
                      f"{'' if what.startswith('PEM') else ' on one line'}, "
                      f"or point {key}_file at the right file")
    except IsADirectoryError:
        return None, f"cannot read {file}: it is a folder; point {key}_file at the file inside it"
    except PermissionError:
        return None, (f"cannot read {file}: permission denied; make it readable by the service user "
                      "or use LoadCredential=")
    except OSError as error:
        return None, f"cannot read {file}: {error.strerror or error}"
    mode = os.stat(file).st_mode
    if stat.S_ISREG(mode) and mode & 0o077 and key != "mailbox.oauth.client_certificate":  # a certificate is public
        warnings.append(f"{file} ({key}_file) can be read by other users; chmod 600 it or use LoadCredential=")
    value = _strip_newline(data)
    if not value:
        return None, f"{file} is empty; write the {what} into it"
    return value, ""


def _read_secret_env(name: str, key: str, what: str, environ: Mapping[str, str]) -> tuple[bytes | None, str]:
    if name not in environ:
        return None, (f"environment variable {name} is not set; give the service the {what} in it "
                      f"(systemd EnvironmentFile=) or use {key}_file")
    value = _strip_newline(environ[name].encode("utf-8"))
    if not value:
        return None, f"environment variable {name} is empty; put the {what} in it"
    return value, ""


def check_runtime(settings: Settings) -> list[Problem]:
    """What `run` needs from the machine: writable database and dry-run folders, a templates folder."""
    problems: list[Problem] = []

    def writable_folder(folder: Path, key: str, purpose: str) -> None:
        if not folder.is_dir():
            problems.append(problem_at(settings, key, f"the folder {folder} does not exist; create it "
                                       f"({purpose})"))
        elif not os.access(folder, os.W_OK | os.X_OK):
            problems.append(problem_at(settings, key, f"cannot write in {folder}: make it writable by the "
                                       f"service user ({purpose})"))

    database = Path(settings.database)
    writable_folder(database.parent, "state.database", "the database and its journal files live there; "
                    "systemd StateDirectory=parting makes one")
    if database.exists() and not os.access(database, os.R_OK | os.W_OK):
        problems.append(problem_at(settings, "state.database", f"cannot read and write {database}: make it "
                                   "readable and writable by the service user"))
    if settings.mode == "dry_run" and settings.dry_run_dir:
        writable_folder(Path(settings.dry_run_dir), "dry_run.folder", "dry_run writes outgoing mail there")
    if settings.templates_dir and not Path(settings.templates_dir).is_dir():
        problems.append(problem_at(settings, "templates.dir",
                                   f"the folder {settings.templates_dir} does not exist"))
    return sorted(problems, key=lambda problem: problem.line)
