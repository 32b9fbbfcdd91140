"""Real mail servers on loopback for tests, benchmarks and the fault suite.

DovecotServer runs Debian's dovecot from a private config in a work directory; SmtpSink is an
aiosmtpd server in a thread that records what it accepts and can misbehave on request; TlsFiles
is a throwaway CA with a certificate for 127.0.0.1 and localhost.

Importing: inside pytest write `from servers import DovecotServer` (tests/conftest.py puts tests/
on sys.path; `from tests.servers import ...` works too because it also adds the repo root). Outside
pytest run from the repo root with `PYTHONPATH=tests`, or add tests/ to sys.path yourself.

Work directories: as root, Dovecot's mail and IMAP processes run as the `dovecot` user, so every
parent of the work directory must be searchable by that user and the socket paths in it must stay
short. pytest's tmp_path fails both (/tmp/pytest-of-root is 0700), so use `scratch_dir()`.
"""
from __future__ import annotations

import asyncio
import atexit
import email
import email.message
import email.policy
import grp
import hmac
import os
import pwd
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import imapclient
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

DOVECOT_BINARY = Path("/usr/sbin/dovecot")
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
# Linux limits a unix socket path to 107 bytes; Dovecot's longest name under base_dir is ~30.
_MAX_BASE_DIR = 70


def scratch_dir(prefix: str = "parting-") -> Path:
    """A new, short, private directory that Dovecot's unprivileged processes can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)  # others may pass through, not list
    return path


def _can_bind(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Dovecot binds
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path

    @classmethod
    def create(cls, directory: Path) -> TlsFiles:
        """Make a throwaway CA and a server certificate for 127.0.0.1 and localhost."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        files = cls(directory / "ca.pem", directory / "server.pem", directory / "server.key")
        ca.cert_pem.write_to_path(str(files.ca_file))
        files.cert_file.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(files.key_file))
        return files

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the server against the throwaway CA, hostname checks on."""
        return ssl.create_default_context(cafile=str(self.ca_file))


class DovecotServer:
    """A private Dovecot (IMAP only) on loopback; see the module docstring about workdir."""

    host = LOOPBACK
    user = "office@example.com"
    password = "office-secret"

    def __init__(self, workdir: Path, *, sent_folder: str | None = "Sent",
                 tls: TlsFiles | None = None, oauth_introspection_url: str | None = None,
                 oauth_mechanisms: str = "xoauth2 oauthbearer") -> None:
        if sent_folder is not None and re.search(r'["\\\r\n]', sent_folder):
            raise ValueError(f"sent_folder {sent_folder!r} cannot be written in dovecot.conf")
        self.workdir = Path(workdir).resolve()
        self.sent_folder = sent_folder
        self.tls = tls
        # With an introspection URL, Dovecot's oauth2 passdb accepts XOAUTH2 and OAUTHBEARER logins
        # whose bearer token that endpoint (RFC 7662, POST) calls active for the same user name.
        self.oauth_introspection_url = oauth_introspection_url
        self.oauth_mechanisms = oauth_mechanisms
        self.port: int | None = None
        self.tls_port: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._users: dict[str, str] = {self.user: self.password}
        self._mail_uid, self._mail_gid = _mail_owner()
        self.log_file = self.workdir / "dovecot.log"
        self._stderr_file = self.workdir / "dovecot.stderr"
        self._config_file = self.workdir / "dovecot.conf"
        self._passwd_file = self.workdir / "passwd"
        self._mail_root = self.workdir / "mail"
        self._base_dir = self.workdir / "run"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The master's pid, which is also its process group; None when stopped."""
        return self._process.pid if self._process is not None else None

    def start(self) -> DovecotServer:
        if self._process is not None:
            raise RuntimeError("Dovecot is already running")
        if not DOVECOT_BINARY.exists():
            raise RuntimeError(f"{DOVECOT_BINARY} is missing: install the Debian package "
                               "dovecot-imapd (./scripts/test does it when run as root)")
        self._prepare_workdir()
        # Leftovers of a killed master: its pid file (a recycled pid would look like a running
        # Dovecot) and the dotlock on its instance registry (the next master waits for it).
        (self._base_dir / "master.pid").unlink(missing_ok=True)
        (self.workdir / "state" / "instances.lock").unlink(missing_ok=True)
        keep_ports = self.port is not None  # a restart must come back on the same ports
        for _attempt in range(2 if keep_ports else 5):
            if not keep_ports:
                self.port = _free_port()
                self.tls_port = _free_port() if self.tls else None
            self._write_config()
            busy = [port for port in (self.port, self.tls_port) if port and not _can_bind(port)]
            # Checking first saves the second a failing Dovecot master takes to exit.
            failure = f"Address already in use: port {busy}" if busy else self._launch()
            if failure is None:
                atexit.register(self.stop)
                return self
            if "Address already in use" not in failure:
                break  # someone took a free port between our probe and Dovecot's bind
            time.sleep(0.1)
        raise RuntimeError(f"Dovecot did not start on {self.host}:{self.port}: {failure}\n"
                           + self._diagnostics())

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        _terminate_group(process)

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def add_user(self, name: str, password: str) -> None:
        """Add a login; Dovecot rereads the passwd file when it changes, so this works live."""
        if any(ch in name + password for ch in ":\r\n"):
            raise ValueError("user names and passwords may not contain ':' or newlines")
        self._users[name] = password
        if self._passwd_file.exists():
            self._write_passwd()

    # -- IMAP helpers (each opens its own connection) --------------------------------------

    def client(self, folder: str | None = None, *, user: str | None = None,
               password: str | None = None, tls: bool = False) -> imapclient.IMAPClient:
        """A logged-in client (the caller logs out); tls=True uses the imaps port and the CA."""
        port = self._running_port()
        if tls:
            if self.tls is None or self.tls_port is None:
                raise RuntimeError("this DovecotServer was started without TLS")
            imap = imapclient.IMAPClient(self.host, self.tls_port, ssl=True, timeout=10,
                                         ssl_context=self.tls.client_context())
        else:
            imap = imapclient.IMAPClient(self.host, port, ssl=False, timeout=10)
        try:
            imap.login(user or self.user, password if password is not None else self.password)
            if folder is not None:
                imap.select_folder(folder)
        except BaseException:
            imap.shutdown()
            raise
        return imap

    def append(self, folder: str, raw: bytes, *, flags: Iterable[str | bytes] = (),
               msg_time: datetime | None = None) -> int:
        """APPEND one message; returns its UID."""
        with self.client() as imap:
            response = imap.append(folder, raw, flags=tuple(flags), msg_time=msg_time)
        return _appended_uids(response)[0]

    def append_many(self, folder: str, raws: Iterable[bytes]) -> list[int]:
        """APPEND many messages in one MULTIAPPEND command; returns their UIDs in order."""
        raws = list(raws)
        if not raws:
            return []
        with self.client() as imap:
            status, lines = imap.multiappend(folder, raws)  # unlike append(): (status, lines)
        if status != "OK":
            raise RuntimeError(f"MULTIAPPEND to {folder!r} failed: {status} {lines!r}")
        return _appended_uids(lines[-1])

    def create_folder(self, name: str) -> None:
        with self.client() as imap:
            imap.create_folder(name)

    def delete_folder(self, name: str) -> None:
        with self.client() as imap:
            imap.delete_folder(name)

    def uids(self, folder: str) -> list[int]:
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            return sorted(imap.search("ALL"))

    def fetch_all(self, folder: str) -> list[bytes]:
        """Every message's raw bytes in UID order, without setting \\Seen."""
        with self.client() as imap:
            imap.select_folder(folder, readonly=True)
            uids = sorted(imap.search("ALL"))
            fetched = imap.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
        return [fetched[uid][b"BODY[]"] for uid in uids]

    # -- internals -------------------------------------------------------------------------

    def _running_port(self) -> int:
        if self._process is None or self.port is None:
            raise RuntimeError("Dovecot is not running: call start() first")
        return self.port

    def _prepare_workdir(self) -> None:
        if len(str(self._base_dir)) > _MAX_BASE_DIR:
            raise ValueError(f"workdir {self.workdir} is too long for Dovecot's unix sockets; "
                             "use servers.scratch_dir()")
        unreachable = _first_unsearchable(self.workdir, self._mail_uid, self._mail_gid)
        if unreachable is not None:
            raise ValueError(f"workdir {self.workdir}: uid {self._mail_uid} cannot enter "
                             f"{unreachable}; use servers.scratch_dir()")
        self._mail_root.mkdir(parents=True, exist_ok=True)
        (self.workdir / "state").mkdir(exist_ok=True)
        os.chown(self._mail_root, self._mail_uid, self._mail_gid)  # Dovecot makes the rest
        self._write_passwd()

    def _write_passwd(self) -> None:
        lines = "".join(f"{name}:{{PLAIN}}{secret}::::::\n" for name, secret in self._users.items())
        temporary = self._passwd_file.with_suffix(".new")
        temporary.write_text(lines)
        temporary.replace(self._passwd_file)  # Dovecot never sees half a file

    def _write_config(self) -> None:
        as_root = os.geteuid() == 0
        me = pwd.getpwuid(os.geteuid()).pw_name
        login_user, internal_user = ("dovenull", "dovecot") if as_root else (me, me)
        group = "dovecot" if as_root else grp.getgrgid(os.getegid()).gr_name
        sent = "" if self.sent_folder is None else (
            f'  mailbox "{self.sent_folder}" {{\n    special_use = \\Sent\n'
            "    auto = subscribe\n  }\n")
        if self.tls:
            ssl_lines = (f"ssl = yes\nssl_cert = <{self.tls.cert_file}\n"
                         f"ssl_key = <{self.tls.key_file}\n")
        else:
            ssl_lines = "ssl = no\n"
        oauth_passdb, mechanisms = "", "plain login"
        if self.oauth_introspection_url:
            oauth_conf = self.workdir / "dovecot-oauth2.conf.ext"
            oauth_conf.write_text(f"introspection_mode = post\nintrospection_url = {self.oauth_introspection_url}\n"
                                  "username_attribute = username\nactive_attribute = active\n"
                                  "active_value = true\nforce_introspection = yes\n")
            oauth_passdb = (f"passdb {{\n  driver = oauth2\n  mechanisms = {self.oauth_mechanisms}\n"
                            f"  args = {oauth_conf}\n}}\n")
            mechanisms += f" {self.oauth_mechanisms}"
        # Without root nothing can chroot, and these services chroot by default.
        no_chroot = "" if as_root else "  chroot =\n"
        unchrooted = "".join(f"service {name} {{\n{no_chroot}}}\n"
                             for name in ("anvil", "ipc", "imap-urlauth-login"))
        self._config_file.write_text(f"""\
# Written by tests/servers.py: a private Dovecot, nothing read from /etc/dovecot.
protocols = imap
listen = {self.host}
base_dir = {self._base_dir}
state_dir = {self.workdir / "state"}
instance_name = parting-{self.port}
log_path = {self.log_file}
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {group}
first_valid_uid = {self._mail_uid}
last_valid_uid = {self._mail_uid}
first_valid_gid = {self._mail_gid}
last_valid_gid = {self._mail_gid}
{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_fsync = never
{oauth_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self._passwd_file}
}}
userdb {{
  driver = static
  args = uid={self._mail_uid} gid={self._mail_gid} home={self._mail_root}/%u
}}
namespace inbox {{
  inbox = yes
  separator = /
{sent}}}
service imap-login {{
{no_chroot}  inet_listener imap {{
    port = {self.port}
  }}
  inet_listener imaps {{
    port = {self.tls_port or 0}
    ssl = yes
  }}
}}
{unchrooted}""")

    def _launch(self) -> str | None:
        """Start the master and wait for the IMAP greeting; on failure, what Dovecot said."""
        seen = self._stderr_file.stat().st_size if self._stderr_file.exists() else 0
        with open(self._stderr_file, "ab") as stderr:
            self._process = subprocess.Popen(
                [str(DOVECOT_BINARY), "-F", "-c", str(self._config_file)],
                stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                start_new_session=True)  # its own process group, so stop() can reap children
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            said = self._stderr_file.read_bytes()[seen:].decode(errors="replace")
            # A master that hit a fatal error takes a second to exit; no need to wait for it.
            if self._process.poll() is not None or "Fatal: " in said:
                self.stop()
                return said or "(Dovecot exited without a word)"
            if _imap_greets(self.host, self.port):
                return None
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Dovecot gave no IMAP greeting within {START_TIMEOUT:.0f} s\n"
                           + self._diagnostics())

    def _diagnostics(self) -> str:
        parts = []
        for path in (self._stderr_file, self.log_file):
            if path.exists():
                text = path.read_text(errors="replace")[-4000:]
                parts.append(f"--- {path} ---\n{text}")
        return "\n".join(parts) or "(Dovecot wrote no log)"


def _mail_owner() -> tuple[int, int]:
    """Mail is stored as `dovecot` when we are root (Dovecot refuses uid 0), else as us."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid()
    entry = pwd.getpwnam("dovecot")
    return entry.pw_uid, entry.pw_gid


def _first_unsearchable(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way to `path` that `uid` may not enter, if any."""
    if uid == os.geteuid():
        return None
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            return None  # we create the rest, searchable under any usual umask
        info = directory.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & 0o100
        elif info.st_gid == gid:
            allowed = info.st_mode & 0o010
        else:
            allowed = info.st_mode & 0o001
        if not allowed:
            return directory
    return None


def _imap_greets(host: str, port: int | None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as connection:
            return connection.recv(64).startswith(b"* OK")
    except OSError:
        return False


def _terminate_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the master and all its children, quickly, leaving nothing behind.

    Every process gets SIGTERM at once and shuts down cleanly; the master would then sleep a
    fixed second before exiting, so once its children are gone it is killed instead.
    """
    group = process.pid  # until we wait() for the master, no one else can get this pid
    try:
        os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and set(process_group_members(group)) - {group}:
            time.sleep(0.01)
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass  # the whole group is gone already
    process.wait()


def process_group_members(group: int) -> list[int]:
    """Pids of the live (not zombie) processes in a process group, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue  # exited while we looked
        state, process_group = fields[0], int(fields[2])
        if process_group == group and state not in ("Z", "X"):
            members.append(int(entry.name))
    return members


_APPENDUID = re.compile(rb"\[APPENDUID \d+ ([0-9:,]+)\]")


def _appended_uids(response: bytes | str) -> list[int]:
    if isinstance(response, str):
        response = response.encode()
    found = _APPENDUID.search(response)
    if found is None:
        raise RuntimeError(f"APPEND response carries no APPENDUID: {response!r}")
    uids: list[int] = []
    for part in found.group(1).split(b","):
        first, _, last = part.partition(b":")
        uids.extend(range(int(first), int(last or first) + 1))
    return uids


# -- SMTP ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: email.message.EmailMessage
    received_at: datetime
    login: str | None = None  # the AUTH user name, None when the client did not log in
    tls: bool = False  # whether the message came over TLS (implicit or STARTTLS)


@dataclass(frozen=True)
class _Fault:
    kind: str  # "reply" | "drop" | "stall"
    reply: str = ""
    seconds: float = 0.0


class _Controller(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's start-up probe connects."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An SMTP server on loopback that records accepted mail and injects faults on request."""

    host = LOOPBACK

    def __init__(self, *, users: dict[str, str] | None = None, tls: TlsFiles | None = None,
                 implicit_tls: bool = False, require_auth: bool | None = None) -> None:
        if implicit_tls and tls is None:
            raise ValueError("implicit_tls needs tls files")
        self.users = dict(users or {})
        self.tls = tls
        self.implicit_tls = implicit_tls
        self.require_auth = bool(self.users) if require_auth is None else require_auth
        self.port: int | None = None
        self._messages: list[ReceivedMail] = []
        self._faults: deque[_Fault] = deque()
        self._changed = threading.Condition()
        self._controller: _Controller | None = None

    def start(self) -> SmtpSink:
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        context = self.tls.server_context() if self.tls else None
        # require_auth is enforced in handle_MAIL: aiosmtpd's own auth_required warns when AUTH
        # is allowed without TLS, which is exactly what loopback tests want.
        options: dict[str, Any] = {"auth_require_tls": False}
        if self.users:
            options["authenticator"] = self._authenticate
        if context is not None and not self.implicit_tls:
            options["tls_context"] = context
        controller = _Controller(self, hostname=self.host, port=0,
                                 ssl_context=context if self.implicit_tls else None,
                                 server_hostname="sink.test", ready_timeout=10, **options)
        controller.start()
        self._controller, self.port = controller, controller.port
        return self

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._changed:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"expected {count} message(s) within {timeout} s, "
                                   f"got {len(self._messages)}")
            return list(self._messages)

    # -- faults: each applies to the next `times` DATA commands ----------------------------

    def reply_with(self, reply: str, *, times: int = 1) -> None:
        """Answer DATA with this reply, e.g. "451 4.3.0 Try again later"; nothing is recorded."""
        if not re.fullmatch(r"[2-5]\d\d[ -].*", reply) or "\r" in reply or "\n" in reply:
            raise ValueError(f"not a one-line SMTP reply: {reply!r}")
        self._add_fault(_Fault("reply", reply=reply), times)

    def drop_after_data(self, *, times: int = 1) -> None:
        """Record the message, then close the connection without answering DATA."""
        self._add_fault(_Fault("drop"), times)

    def stall(self, seconds: float, *, times: int = 1) -> None:
        """Read the message, then stay silent for `seconds`; nothing is recorded."""
        self._add_fault(_Fault("stall", seconds=seconds), times)

    def reset_faults(self) -> None:
        with self._changed:
            self._faults.clear()

    def _add_fault(self, fault: _Fault, times: int) -> None:
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._changed:
            self._faults.extend([fault] * times)

    # -- aiosmtpd hooks (run in the sink's thread) -----------------------------------------

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            expected = self.users.get(login)
            if expected is not None and hmac.compare_digest(
                    expected.encode(), auth_data.password):
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        if self.require_auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._changed:
            fault = self._faults.popleft() if self._faults else None
        if fault is not None and fault.kind == "reply":
            return fault.reply
        if fault is not None and fault.kind == "stall":
            await asyncio.sleep(fault.seconds)
            return "451 4.3.0 Answer withheld by the test sink"
        data = bytes(envelope.original_content)
        received = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=email.message_from_bytes(data, policy=email.policy.default),
            received_at=datetime.now(UTC),
            login=session.auth_data if isinstance(session.auth_data, str) else None,
            tls=server.transport.get_extra_info("ssl_object") is not None,
        )
        with self._changed:
            self._messages.append(received)
            self._changed.notify_all()
        if fault is not None and fault.kind == "drop":
            server.transport.close()
            # aiosmtpd cancels this handler when it notices the closed connection.
            await asyncio.sleep(60)
        return "250 2.0.0 OK: queued by the test sink"

