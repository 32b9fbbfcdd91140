"""`parting doctor`: check a deployment end to end, each check with what it found or what to fix.

Rules of this module:
- Checking changes nothing: no mail is sent, the database is opened read-only, IMAP folders are
  only examined (EXAMINE), SMTP goes no further than the login.
- Every check is reported, in a fixed order. One that needs a failed check is reported as
  "skipped: needs X" rather than failing again; independent checks run regardless.
- A secret's value never appears in a detail or a fix, only the file or variable it lives in.
- Blocking work (IMAP, SQLite) runs in worker threads; each network step is bounded by the
  configured timeouts, and IMAP and SMTP are checked at the same time.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from daemon.adapters.imap.connection import ImapAuthError, ImapConnection, ImapError
from daemon.adapters.oauth import Login, OAuthCredential, OAuthProblem, SignInNeeded, client_authentication
from daemon.adapters.oauth_certificate import ClientAuth
from daemon.adapters.settings.load import Problem, SettingsError, load_settings
from daemon.adapters.settings.secret_files import check_runtime, load_secrets
from daemon.adapters.smtp import DeliveryProblem, check_login
from daemon.adapters.store import SCHEMA_VERSION, Store, StoreError
from daemon.adapters.templates import SAMPLE_CONTEXTS, TemplateProblem, Templates
from daemon.core.model import ImapSettings, OAuthSettings, Settings, SmtpSettings
from daemon.queries.doctor_evidence import evidence_lines
from daemon.queries.replication import STALE_AFTER, litestream_config, replication_lag

__all__ = ["Check", "as_json", "config_problems", "report_lines", "run_checks"]

SKIPPED = "skipped: needs "
_TOKEN_KEY_MIN_BYTES = 32
_SMTP_AUTH_CODES = {530, 534, 535, 538}  # RFC 4954: the login itself was refused
_SYMBOLS = {"ok": "✓", "warning": "!", "failed": "✗", "skipped": "-"}


@dataclass(frozen=True)
class Check:
    """One check's outcome. `fix` says exactly what to do when it failed; `warning` marks a check
    that passed but is worth knowing about (no IDLE, dry run)."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False

    @property
    def status(self) -> str:
        """ok | warning | failed | skipped"""
        if self.ok:
            return "warning" if self.warning else "ok"
        return "skipped" if self.detail.startswith(SKIPPED) else "failed"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix,
                "warning": self.warning}


def _passed(name: str, detail: str) -> Check:
    return Check(name, True, detail)


def _warned(name: str, detail: str) -> Check:
    return Check(name, True, detail, warning=True)


def _failed(name: str, detail: str, fix: str | None) -> Check:
    return Check(name, False, detail, fix)


def _skipped(name: str, needs: str) -> Check:
    return Check(name, False, SKIPPED + needs)


# ---------------------------------------------------------------------------------- the run


async def run_checks(config_path: str | Path, *, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Every check of the deployment described by `config_path`, in order (see module docstring)."""
    environ = os.environ if environ is None else environ
    try:
        settings = load_settings(config_path, environ=environ)
    except SettingsError as error:
        return [_failed("config", "\n".join(error.lines()),
                        f"correct the lines above; `parting check-config {config_path}` lists the same"),
                *(_skipped(name, "config")
                  for name in ("credentials", "database", "IMAP", "SMTP", "templates", "mode"))]
    checks = [_passed("config", f"{settings.source}: {len(settings.people)} people, "
                                f"{len(settings.clients)} clients, mailbox {settings.mailbox.address}")]
    values, secret_checks = _secrets(settings, environ)
    checks += secret_checks
    runtime = check_runtime(settings)
    mailbox = settings.mailbox
    imap_login: Login = _text(values.get("mailbox.imap.password"))
    smtp_login: Login = _text(values.get("mailbox.smtp.password"))
    if mailbox.oauth is not None:
        sign_in, credential = await asyncio.to_thread(
            _sign_in_check, mailbox.oauth, values, str(config_path))
        checks.append(sign_in)
        imap_login = smtp_login = credential
    database, imap, smtp = await asyncio.gather(
        asyncio.to_thread(_database_check, settings, runtime),
        asyncio.to_thread(_imap_checks, mailbox.imap, imap_login, settings),
        _smtp_check(mailbox.smtp, smtp_login),
    )
    return [*checks, database, *imap, smtp, _templates_check(settings), _mode_check(settings, runtime),
            *await asyncio.to_thread(_replication_check, settings, config_path, environ)]


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")


def _sign_in_check(oauth: OAuthSettings, values: dict[str, bytes],
                   config_path: str) -> tuple[Check, OAuthCredential | None]:
    """Whether an access token can be had from the token file `parting login` wrote, and how the app
    proves itself at the token endpoint (its secret, or its certificate)."""
    from daemon.adapters.oauth_certificate import CertificateProblem, ClientCertificate

    client_secret: ClientAuth = _text(values.get("mailbox.oauth.client_secret"))
    if oauth.client_authentication == "private_key_jwt":
        certificate, key = values.get("mailbox.oauth.client_certificate"), values.get("mailbox.oauth.client_private_key")
        if certificate is None or key is None:
            return _skipped("OAuth sign-in", "OAuth client certificate"), None
        try:
            client_secret = ClientCertificate.load(certificate, key)
        except CertificateProblem as problem:
            return _failed("OAuth sign-in", f"the client {problem.which.replace('_', ' ')}: {problem}",
                           f"fix mailbox.oauth.client_{problem.which}_file, then run doctor again"), None
    how = client_authentication(client_secret)
    credential = OAuthCredential(oauth, client_secret)
    try:
        credential.access_token()
    except SignInNeeded as problem:
        return _failed("OAuth sign-in", str(problem), f"run `parting login --config {config_path}`"), None
    except OAuthProblem as problem:
        return _failed("OAuth sign-in", str(problem), "check the network or proxy to the identity provider "
                                                       f"({oauth.token_url}), then run doctor again"), None
    return _passed("OAuth sign-in", f"access token renewed from {oauth.token_file} ({oauth.flow}); client "
                                    f"authentication: {how}"), credential


# ---------------------------------------------------------------------------------- secrets


@dataclass(frozen=True)
class _Secret:
    name: str  # the check's name, and what the secret is
    key: str  # its settings key without the _file / _env suffix
    file: str | None
    env: str | None

    @property
    def source(self) -> str:
        return self.file if self.file is not None else f"${self.env}"


def _secrets(settings: Settings, environ: Mapping[str, str]) -> tuple[dict[str, bytes], list[Check]]:
    """The secrets that could be read (by key), and one check per configured secret."""
    imap, smtp, review = settings.mailbox.imap, settings.mailbox.smtp, settings.review
    secrets = [] if settings.mailbox.oauth else [
        _Secret("IMAP password", "mailbox.imap.password", imap.password_file, imap.password_env)]
    oauth = settings.mailbox.oauth
    if oauth is not None and (oauth.client_secret_file or oauth.client_secret_env):
        secrets.append(_Secret("OAuth client secret", "mailbox.oauth.client_secret", oauth.client_secret_file,
                               oauth.client_secret_env))
    if oauth is not None and oauth.client_authentication == "private_key_jwt":
        secrets.append(_Secret("OAuth client certificate", "mailbox.oauth.client_certificate",
                               oauth.client_certificate_file, oauth.client_certificate_env))
        secrets.append(_Secret("OAuth client private key", "mailbox.oauth.client_private_key",
                               oauth.client_private_key_file, oauth.client_private_key_env))
    if smtp.password_file or smtp.password_env:
        secrets.append(_Secret("SMTP password", "mailbox.smtp.password", smtp.password_file, smtp.password_env))
    secrets.append(_Secret("token key", "review.token_key", review.token_key_file, review.token_key_env))
    values: dict[str, bytes] = {}
    checks: list[Check] = []
    for secret in secrets:
        value, check = _read_secret(secret, environ)
        if value is not None:
            values[secret.key] = value
        checks.append(check)
    return values, _agree_with_runtime(settings, environ, secrets, checks)


def _read_secret(secret: _Secret, environ: Mapping[str, str]) -> tuple[bytes | None, Check]:
    # The config rules guarantee a file or a variable for every secret listed.
    if secret.file is not None:
        value, check = _read_secret_file(secret, secret.file)
    else:
        value, check = _read_secret_env(secret, secret.env or "", environ)
    if value is None:
        return None, check
    if secret.key == "review.token_key" and len(value) < _TOKEN_KEY_MIN_BYTES:
        make = (f"`head -c 48 /dev/urandom | base64 > {secret.file}` and `chmod 600 {secret.file}`"
                if secret.file else f"put 48 random bytes in base64 into ${secret.env}")
        short = f"{secret.source} holds {len(value)} bytes; review tokens need at least {_TOKEN_KEY_MIN_BYTES}"
        return value, _also(check, _failed(secret.name, short, f"make a new key: {make}"))
    if secret.key != "review.token_key":
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return None, _also(check, _failed(secret.name, f"{secret.source} is not UTF-8 text",
                                              f"write the password into {secret.source} as UTF-8 text"))
    if not check.ok:  # readable, but open to other users: still usable by the checks that need it
        return value, check
    size = f", {len(value)} bytes" if secret.key == "review.token_key" else ""
    return value, _passed(secret.name, f"{check.detail}{size}")


def _also(earlier: Check, failure: Check) -> Check:
    """`failure`, keeping what an earlier failed look at the same secret found."""
    if earlier.ok:
        return failure
    return _failed(failure.name, f"{earlier.detail}\n{failure.detail}", f"{earlier.fix}; {failure.fix}")


def _strip_newline(data: bytes) -> bytes:
    """As `parting run` reads a secret: one trailing line end is not part of it."""
    return data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data


def _read_secret_file(secret: _Secret, file: str) -> tuple[bytes | None, Check]:
    name, key = secret.name, f"{secret.key}_file"
    hint = _credential_hint(file)
    try:
        info = os.stat(file)
    except FileNotFoundError:
        return None, _failed(name, f"{file} does not exist",
                             f"write the {name} on one line into {file} and `chmod 600 {file}`, or point "
                             f"{key} at the right file; {hint}")
    except OSError as error:
        return None, _failed(name, f"cannot reach {file}: {error.strerror or error}",
                             f"let the user running parting reach {file}, or {hint}")
    if stat.S_ISDIR(info.st_mode):
        return None, _failed(name, f"{file} is a folder, not a file", f"point {key} at the file inside it")
    try:
        data = Path(file).read_bytes()
    except OSError as error:
        return None, _failed(name, f"cannot read {file}: {error.strerror or error}",
                             f"make {file} readable by the user running parting (owner only: "
                             f"`chmod 600 {file}`), or {hint}")
    value = _strip_newline(data)
    if not value:
        return None, _failed(name, f"{file} is empty", f"write the {name} into {file}")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077 and secret.key != "mailbox.oauth.client_certificate":  # a certificate is public
        return value, _failed(name, f"{file} is open to other users (mode {mode:04o})", f"chmod 600 {file}")
    return value, _passed(name, f"{file} (mode {mode:04o})")


def _credential_hint(file: str) -> str:
    credential = Path(file).name
    unit_line = f"LoadCredential={credential}:/etc/parting/credentials/{credential}"
    if file.startswith("/run/credentials/"):
        return (f"systemd writes {file} only while the service runs, from `{unit_line}` in its unit: "
                "check that line and that the service is running")
    return f"under systemd: `{unit_line}` in the unit and just `{credential}` in the config"


def _read_secret_env(secret: _Secret, variable: str, environ: Mapping[str, str]) -> tuple[bytes | None, Check]:
    key = f"{secret.key}_env"
    if variable not in environ:
        return None, _failed(secret.name, f"environment variable {variable} is not set",
                             f"give the service {variable} (systemd EnvironmentFile=) and set it before "
                             f"running `parting doctor`, or use {secret.key}_file")
    value = _strip_newline(environ[variable].encode("utf-8"))
    if not value:
        return None, _failed(secret.name, f"environment variable {variable} is empty",
                             f"put the {secret.name} in {variable}, or point {key} at another variable")
    return value, _passed(secret.name, f"${variable}")


def _agree_with_runtime(settings: Settings, environ: Mapping[str, str], secrets: list[_Secret],
                        checks: list[Check]) -> list[Check]:
    """`parting run` reads the secrets through load_secrets: whatever it refuses fails here too."""
    try:
        load_secrets(settings, environ=environ)
    except SettingsError as error:
        problems: list[Problem] = list(error.problems)
    else:
        return checks
    agreed = []
    for secret, check in zip(secrets, checks):
        mine = [p for p in problems if p.key_path.startswith(secret.key)]
        problems = [p for p in problems if p not in mine]
        if check.ok and mine:
            check = _failed(secret.name, "\n".join(map(str, mine)), None)
        agreed.append(check)
    if problems:
        agreed.append(_failed("credentials", "\n".join(map(str, problems)), None))
    return agreed


# ---------------------------------------------------------------------------------- database


def _database_check(settings: Settings, runtime: list[Problem]) -> Check:
    database = Path(settings.database)
    folder = database.parent
    if any(problem.key_path == "state.database" for problem in runtime):
        if not folder.is_dir():
            return _failed("database", f"the folder {folder} does not exist",
                           f"create it (`mkdir -p {folder}`) writable by the service user; systemd "
                           "StateDirectory=parting makes /var/lib/parting")
        if not os.access(folder, os.W_OK | os.X_OK):
            return _failed("database", f"cannot write in {folder}",
                           f"make {folder} writable by the service user (SQLite keeps its -wal and -shm "
                           "files beside the database)")
        return _failed("database", f"cannot read and write {database}",
                       f"make {database} readable and writable by the service user")
    if database.is_dir():
        return _failed("database", f"{database} is a folder",
                       f"set state.database to a file, e.g. {database}/parting.db")
    if not database.exists():
        return _passed("database", f"{database} does not exist yet: will be created by `parting run`")
    try:
        with Store.open_readonly(database) as store:
            version, integrity = store.schema_version(), store.integrity_check()
    except StoreError as error:
        text = str(error)
        if "older than this parting" in text:
            return _passed("database", f"{database}: {text.split(':')[0]}; `parting run` upgrades it on start "
                                       "(its integrity is checked after that)")
        if "newer than this parting" in text:
            return _failed("database", f"{database}: {text.split(':')[0]}",
                           f"upgrade parting (this one knows schema version {SCHEMA_VERSION}), or set "
                           "state.database to this version's file")
        return _failed("database", text, "set state.database to parting's database file, readable by this user")
    if integrity != "ok":
        return _failed("database", f"{database}: SQLite integrity check failed: {integrity[:300]}",
                       f"stop parting, keep a copy of {database} and restore the last backup "
                       f"(`sqlite3 {database} .recover` saves what it can)")
    return _passed("database", f"{database}: schema version {version}, integrity ok")


def _replication_check(settings: Settings, config_path: str | Path, environ: Mapping[str, str]) -> list[Check]:
    """Only when Litestream is configured for this instance: how far its replica is behind."""
    config = litestream_config(config_path, environ)
    if config is None:
        return []
    lag = replication_lag(settings.database, config, environ)
    if not lag.ok:
        return [_failed("replication", lag.detail, lag.fix)]
    stale = lag.seconds > STALE_AFTER
    return [_warned("replication", lag.detail) if stale else _passed("replication", lag.detail)]


# ---------------------------------------------------------------------------------- IMAP


def _imap_checks(imap: ImapSettings, password: Login, settings: Settings) -> list[Check]:
    """Login, the inbox, the Sent folder, IDLE and the colleagues' evidence, over one connection
    (blocking: a worker thread)."""
    later = ("inbox folder", "Sent folder", "IMAP IDLE", "colleagues")
    if password is None:
        needs = "OAuth sign-in" if settings.mailbox.oauth else "IMAP password"
        return [_skipped("IMAP login", needs), *(_skipped(name, "IMAP login") for name in later)]
    connection = ImapConnection(imap, password)
    try:
        connection.connect()
    except ImapAuthError as error:
        where = (f"{imap.password_file} (mailbox.imap.password_file)" if imap.password_file
                 else f"${imap.password_env} (mailbox.imap.password_env)")
        return [_failed("IMAP login", str(error), f"check the password in {where}, and the user name "
                                                 f"{imap.username} (mailbox.imap.username)"),
                *(_skipped(name, "IMAP login") for name in later)]
    except ImapError as error:
        return [_failed("IMAP login", str(error), f"check mailbox.imap.host ({imap.host}), port ({imap.port}) "
                                                 f"and security ({imap.security}), and that this machine "
                                                 "can reach the server"),
                *(_skipped(name, "IMAP login") for name in later)]
    try:
        checks = [_passed("IMAP login", f"{imap.username} at {connection.where} "
                                        f"({connection.tls_version or 'no TLS'})")]
        checks.append(_folder_check(connection, "inbox folder", imap.inbox,
                                    "name the inbox in mailbox.imap.folders.inbox"))
        checks.append(_sent_check(connection, imap.sent))
        if connection.has_idle:
            checks.append(_passed("IMAP IDLE", "supported: new mail is noticed as it arrives"))
        else:
            checks.append(_warned("IMAP IDLE", f"not offered by {connection.where}: works with polling, "
                                               "new mail is noticed at the next poll"))
        checks.append(_colleagues_check(connection, settings))
        return checks
    finally:
        connection.close()


def _colleagues_check(connection: ImapConnection, settings: Settings) -> Check:
    """Per person: would an approval from them be accepted today, and on what evidence."""
    lines, worst = evidence_lines(connection, settings, date.today())
    detail = "\n".join(lines)
    if worst == "refused" and settings.review.require_authentication:
        return _failed("colleagues", detail, "set mailbox.provider (microsoft365, google) or review.authserv_id "
                                             "to the server that stamps your colleagues' mail (README: Microsoft 365, "
                                             "Google Workspace)")
    return _warned("colleagues", detail) if worst != "ok" else _passed("colleagues", detail)


_SENT_FIX = "create a Sent folder or name it in mailbox.imap.folders.sent"


def _folder_check(connection: ImapConnection, name: str, folder: str, fix: str, how: str = "") -> Check:
    try:
        info = connection.select(folder)
    except ImapError as error:
        return _failed(name, str(error), fix)
    return _passed(name, f"{folder!r}{how}: {info.exists} messages")


def _sent_check(connection: ImapConnection, configured: str) -> Check:
    if configured != "auto":
        return _folder_check(connection, "Sent folder", configured, _SENT_FIX)
    try:
        found = connection.find_sent_folder()
    except ImapError as error:
        return _failed("Sent folder", str(error), _SENT_FIX)
    if found is None:
        return _failed("Sent folder", f"no folder at {connection.where} is marked \\Sent (SPECIAL-USE) "
                                      "and folders.sent is auto", _SENT_FIX)
    return _folder_check(connection, "Sent folder", found, _SENT_FIX, " (found by auto)")


# ---------------------------------------------------------------------------------- SMTP


async def _smtp_check(smtp: SmtpSettings, password: Login) -> Check:
    where = f"{smtp.host}:{smtp.port}"
    security = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[smtp.security]
    name = "SMTP login" if smtp.username else "SMTP server"
    if smtp.username and password is None:
        return _skipped(name, "SMTP password")
    try:
        await check_login(smtp, password)
    except DeliveryProblem as problem:
        if smtp.username and problem.code in _SMTP_AUTH_CODES:
            secret = (f"{smtp.password_file} (mailbox.smtp.password_file)" if smtp.password_file
                      else f"${smtp.password_env} (mailbox.smtp.password_env)")
            fix = f"check the password in {secret}, and the user name {smtp.username} (mailbox.smtp.username)"
        else:
            fix = (f"check mailbox.smtp.host ({smtp.host}), port ({smtp.port}) and security ({smtp.security}), "
                   "and that this machine can reach the server")
        return _failed(name, problem.reason, fix)
    if smtp.username:
        return _passed(name, f"{smtp.username} at {where} ({security}); no mail sent")
    return _passed(name, f"{where} answers EHLO ({security}, no login configured); no mail sent")


# ---------------------------------------------------------------------------------- templates, mode


def _templates_check(settings: Settings) -> Check:
    own = settings.templates_dir
    try:
        templates = Templates(own)
    except TemplateProblem as problem:
        return _failed("templates", str(problem), f"create {own}, or remove templates.dir to use the shipped ones")
    problems = []
    for name in SAMPLE_CONTEXTS:
        try:
            templates.render_with_samples(name)
        except TemplateProblem as problem:
            problems.append(str(problem))
    if problems:
        fix = (f"correct the templates named above in {own}, or delete them there to use the shipped ones"
               if own else "the templates shipped with parting are damaged: reinstall parting")
        return _failed("templates", "\n".join(problems), fix)
    source = own or "shipped with parting"
    return _passed("templates", f"{len(SAMPLE_CONTEXTS)} templates render with sample values ({source})")


def _mode_check(settings: Settings, runtime: list[Problem]) -> Check:
    notes = ""
    if not settings.review.require_authentication:
        notes = ("; review.require_authentication is false: reviewers' replies are trusted without "
                 "Authentication-Results (test setups only)")
    if settings.mode == "dry_run":
        folder = settings.dry_run_dir
        if any(problem.key_path == "dry_run.folder" for problem in runtime):
            return _failed("mode", f"dry_run: cannot write outgoing mail in {folder}",
                           f"create {folder} (`mkdir -p {folder}`) writable by the service user")
        return _warned("mode", f"dry_run: nothing is sent; outgoing mail is written to {folder} "
                               f"as .eml files{notes}")
    if notes:
        return _warned("mode", f"live: approved mail is sent{notes}")
    return _passed("mode", "live: approved mail is sent")


# ---------------------------------------------------------------------------------- output


def config_problems(checks: list[Check]) -> list[str]:
    """The settings problems when the config could not be loaded at all (the CLI exits 2), else []."""
    first = checks[0] if checks else None
    if first is None or first.name != "config" or first.ok:
        return []
    return first.detail.splitlines()


def as_json(checks: list[Check]) -> dict[str, Any]:
    return {"ok": all(check.ok for check in checks), "checks": [check.as_dict() for check in checks]}


def report_lines(checks: list[Check]) -> list[str]:
    """Aligned lines: a mark (✓ ok, ! warning, ✗ failed, - skipped), the name, the detail and any fix."""
    width = max((len(check.name) for check in checks), default=0)
    lines = []
    for check in checks:
        first, *rest = check.detail.splitlines() or [""]
        lines.append(f"{_SYMBOLS[check.status]} {check.name:<{width}}  {first}")
        lines += [f"  {'':<{width}}  {line}" for line in rest]
        if check.fix:
            lines.append(f"    fix: {check.fix}")
    counts = {status: sum(check.status == status for check in checks) for status in _SYMBOLS}
    if counts["failed"] or counts["skipped"]:
        skipped = f", {counts['skipped']} skipped" if counts["skipped"] else ""
        lines.append(f"{counts['failed']} of {len(checks)} checks failed{skipped}: fix them and run "
                     "`parting doctor` again")
    else:
        warned = f" ({counts['warning']} with a warning)" if counts["warning"] else ""
        lines.append(f"All {len(checks)} checks passed{warned}.")
    return lines
