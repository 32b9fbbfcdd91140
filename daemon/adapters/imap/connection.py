"""Blocking IMAP access through imapclient, meant to run in a worker thread (asyncio.to_thread).

Rules of this module:
- No asyncio here. Every call blocks, and every call is bounded in time: connect_timeout covers
  the TCP connect, the TLS handshake, the greeting, STARTTLS and LOGIN; read_timeout covers each
  command afterwards; IDLE is bounded by its own timeout.
- Every failure leaves as one of the Imap*Error classes below. Their messages name the server
  (host:port) and the user, never the password.
- Watching never changes the mailbox: folders are opened read-only (EXAMINE) and messages are read
  with BODY.PEEK. APPEND is the only write.
- One ImapConnection is used by one thread at a time; `abort()` is the one call that is safe from
  another thread (it only shuts the socket down, to unblock a stuck worker).
"""

from __future__ import annotations

import email.parser
import imaplib
import logging
import select
import socket
import ssl
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime

import imapclient
from imapclient import exceptions as imap_exceptions

from daemon.adapters.imap import fetchreader
from daemon.adapters.imap.values import (  # noqa: F401 - also re-exported
    _LOGOUT_TIMEOUT,
    _SENT_FLAG,
    DEFAULT_HEADER_FIELDS,
    FetchedHeader,
    FolderInfo,
    IdleResult,
    ImapAuthError,
    ImapConnectionError,
    ImapConnectionLost,
    ImapError,
    ImapFolderError,
    _describe,
    _reports_change,
    _says_bye,
    _section_value,
    header_fields_item,
)
from daemon.adapters.oauth import Login, OAuthCredential, OAuthProblem, SignInNeeded
from daemon.core.hosts import is_loopback
from daemon.core.model import ImapSettings

MAX_MESSAGE_BYTES = 10_000_000  # a longer message is read up to here (its last whole line)
# Whole messages fetched in one command stay under this many bytes, so a batch of large mail
# cannot balloon the daemon's memory; small mail still travels a thousand to a command.
FETCH_BUDGET_BYTES = 16_000_000


def _groups_within(uids: Sequence[int], sizes: Mapping[int, int], max_bytes: int, budget: int
                   ) -> Iterator[list[int]]:
    """UIDs in order, grouped so each group's known sizes (each capped at max_bytes) fit the
    budget; a message of unknown size counts as max_bytes, and no group is empty."""
    group: list[int] = []
    total = 0
    for uid in uids:
        size = min(sizes.get(uid, max_bytes), max_bytes)
        if group and total + size > budget:
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def _retained_change(client: imapclient.IMAPClient) -> bool:
    """Whether the server announced new or removed mail while answering an earlier command.

    Untagged EXISTS/RECENT/EXPUNGE lines that arrive during SEARCH or FETCH are kept by imaplib
    (imapclient's FETCH and SEARCH take only their own responses) and never announced again, so
    a message arriving while a batch is read would otherwise wait for the next resync. Taking them
    here also empties them, so each announcement counts once.
    """
    retained = client._imap.untagged_responses
    return any([retained.pop(name, None) for name in ("EXISTS", "RECENT", "EXPUNGE")])


class ImapSignInNeeded(ImapAuthError):
    """The server refused OAuth sign-in even with a fresh token, or there is no usable token."""


class ImapConnection:
    """One logged-in IMAP session. Use as a context manager, or connect() ... close()."""

    def __init__(
        self, settings: ImapSettings, password: Login, *, log: logging.Logger | None = None
    ) -> None:
        self._settings = settings
        self._password = password
        self._log = log or logging.getLogger(__name__)
        self._client: imapclient.IMAPClient | None = None
        self._capabilities: frozenset[bytes] = frozenset()
        self._quiet_after_noop = False  # the last command was a NOOP that reported nothing
        self.where = f"{settings.host}:{settings.port}"
        self.auth_mechanism = "LOGIN"  # or the SASL mechanism an OAuth sign-in used

    # ---------------------------------------------------------------- session

    def __enter__(self) -> ImapConnection:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def tls_version(self) -> str | None:
        """The TLS version in use ("TLSv1.3"), None on a plain connection."""
        sock = self._client.socket() if self._client is not None else None
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    @property
    def capabilities(self) -> frozenset[bytes]:
        return self._capabilities

    @property
    def has_idle(self) -> bool:
        return b"IDLE" in self._capabilities

    @property
    def has_condstore(self) -> bool:
        return bool({b"CONDSTORE", b"QRESYNC"} & self._capabilities)

    def connect(self) -> None:
        """Connect, secure the connection as configured, and log in."""
        if self._client is not None:
            raise RuntimeError(f"already connected to {self.where}")
        s = self._settings
        if s.security == "none" and not is_loopback(s.host):
            raise ImapConnectionError(
                f"refusing to connect to {self.where} without TLS: security 'none' is only "
                "allowed to a loopback address (127.0.0.1, ::1, localhost); use tls or starttls"
            )
        context = self._ssl_context() if s.security in ("tls", "starttls") else None
        phase = "connecting"
        client = None
        try:
            # imapclient >= 4.1 applies `connect` to the TCP connect, the TLS handshake and
            # the greeting (issue #646 fixed it for TLS), then sets `read` on the socket.
            client = imapclient.IMAPClient(
                s.host, port=s.port, ssl=s.security == "tls", ssl_context=context,
                timeout=imapclient.SocketTimeout(connect=s.connect_timeout, read=s.read_timeout),
            )
            # imapclient sets imaplib's debug level to 5 and routes it to its logger, so imaplib
            # formats a debug line for every response line (~3 us a message in a backfill) even
            # when nobody logs it; keep it only when that logger is enabled for DEBUG.
            if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
                client._imap.debug = 0
            # STARTTLS and LOGIN belong to connecting too: bound them by connect_timeout.
            client.socket().settimeout(s.connect_timeout)
            if s.security == "starttls":
                phase = "STARTTLS"
                if not client.has_capability("STARTTLS"):
                    raise ImapConnectionError(
                        f"{self.where} does not offer STARTTLS; refusing to log in without TLS "
                        "(use security: tls on the TLS port, usually 993)"
                    )
                client.starttls(context)
            phase = "logging in"
            self._login(client)
            client.normalise_times = False  # keep INTERNALDATE's zone: we convert to UTC
            self._capabilities = frozenset(c.upper() for c in client.capabilities())
            if b"CONDSTORE" in self._capabilities and b"ENABLE" in self._capabilities:
                self._enable_condstore(client)
            client.socket().settimeout(s.read_timeout)
        except ImapError:
            self._shutdown_quietly(client)
            raise
        except (OSError, imaplib.IMAP4.error) as exc:
            self._shutdown_quietly(client)
            raise self._connect_failure(exc, phase) from exc
        self._client = client
        self._log.debug("connected to %s as %s (%s)", self.where, s.username,
                        self.tls_version or "no TLS")

    def close(self) -> None:
        """LOGOUT; tolerant of a dead connection and bounded by a few seconds."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.socket().settimeout(min(_LOGOUT_TIMEOUT, self._settings.read_timeout))
            client.logout()
        except Exception:  # the connection is going away either way
            self._shutdown_quietly(client)

    def abort(self) -> None:
        """Shut the socket down so that a call blocked in another thread returns at once."""
        client = self._client
        if client is None:
            return
        try:
            # The plain socket's shutdown: SSLSocket.shutdown would also drop its SSL state
            # under the feet of the thread that is reading.
            socket.socket.shutdown(client.socket(), socket.SHUT_RDWR)
        except OSError:
            pass

    # ---------------------------------------------------------------- folders

    def find_sent_folder(self) -> str | None:
        """The folder flagged \\Sent (SPECIAL-USE); failing that, a folder with a usual name."""
        with self._guard("LIST") as client:
            return client.find_special_folder(_SENT_FLAG)

    def select(self, folder: str) -> FolderInfo:
        """Open the folder read-only (EXAMINE)."""
        with self._guard(f"EXAMINE {folder!r}") as client:
            response = client.select_folder(folder, readonly=True)
            _retained_change(client)  # the folder as it is now: what we read next starts from here
        uidvalidity = response.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise ImapError(f"{self.where} sent no UIDVALIDITY for folder {folder!r}")
        return FolderInfo(
            name=folder,
            uidvalidity=int(uidvalidity),
            uidnext=response.get(b"UIDNEXT"),
            exists=int(response.get(b"EXISTS", 0)),
            highestmodseq=response.get(b"HIGHESTMODSEQ"),
        )

    # ---------------------------------------------------------------- reading

    def new_uids(self, last_uid: int, *, since: date | None = None) -> list[int]:
        """UIDs above last_uid in the selected folder, ascending (received SINCE the date if given)."""
        criteria: list[object] = ["UID", f"{last_uid + 1}:*"]
        if since is not None:
            criteria += ["SINCE", since]
        with self._guard("UID SEARCH") as client:
            found = client.search(criteria)
        # "UID n:*" always matches the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    def fetch_headers(self, uids: Sequence[int], fields: Sequence[str] = DEFAULT_HEADER_FIELDS
                      ) -> list[FetchedHeader]:
        """Header fields, INTERNALDATE and size of these messages; expunged ones are left out."""
        if not uids:
            return []
        items = [header_fields_item(fields), "INTERNALDATE", "RFC822.SIZE"]
        with self._guard(f"FETCH headers of {len(uids)} messages") as client:
            try:
                response = fetchreader.fetch(client, list(uids), items)  # client.fetch, read faster
            except imap_exceptions.ProtocolError as exc:
                # One unreadable response spoils the batch: fetch one by one, skip the bad ones.
                self._log.warning("unreadable FETCH response from %s (%s); fetching one by one",
                                  self.where, exc)
                response = self._fetch_each(client, uids, items)
        headers = []
        for uid in sorted(response):
            header = self._fetched_header(uid, response[uid])
            if header is not None:
                headers.append(header)
        return headers

    def fetch_full(self, uid: int, *, max_bytes: int = MAX_MESSAGE_BYTES) -> bytes | None:
        """The whole message (None if it is gone). A message over max_bytes is cut after its
        last complete line within the limit, and a warning is logged."""
        return self.fetch_messages([uid], max_bytes=max_bytes).get(uid)

    def fetch_messages(self, uids: Sequence[int], *, sizes: Mapping[int, int] | None = None,
                       max_bytes: int = MAX_MESSAGE_BYTES, budget: int = FETCH_BUDGET_BYTES
                       ) -> dict[int, bytes]:
        """Whole messages, as many to a FETCH command as `budget` bytes allow (by their `sizes`,
        when known); UIDs no longer in the folder are left out. A message over max_bytes is cut
        as fetch_full cuts it. One unreadable answer spoils only its own message."""
        found: dict[int, bytes] = {}
        items = [f"BODY.PEEK[]<0.{max_bytes}>", "RFC822.SIZE"]
        for group in _groups_within(uids, sizes or {}, max_bytes, budget):
            with self._guard(f"FETCH {len(group)} messages") as client:
                try:
                    response = fetchreader.fetch(client, group, items)  # client.fetch, read faster
                except imap_exceptions.ProtocolError as exc:
                    self._log.warning("unreadable FETCH response from %s (%s); fetching one by one",
                                      self.where, exc)
                    response = self._fetch_each(client, group, items)
            for uid in group:
                body = self._whole_message(uid, response.get(uid), max_bytes)
                if body is not None:
                    found[uid] = body
        return found

    def _whole_message(self, uid: int, data: dict | None, max_bytes: int) -> bytes | None:
        body = _section_value(data, b"BODY[]") if data else None
        if body is None or data is None:
            return None
        size = data.get(b"RFC822.SIZE")
        if (size is not None and size > max_bytes) or len(body) > max_bytes:
            body = body[:max_bytes]
            cut = body.rfind(b"\n") + 1
            body = body[:cut] if cut else body
            self._log.warning("message uid %s at %s is %s bytes; read only the first %s",
                              uid, self.where, size, len(body))
        return body

    def search_from(self, folder: str, address: str, since: date) -> list[int]:
        """UIDs in the folder of messages from this address that arrived since this day, oldest first."""
        self.select(folder)
        with self._guard("UID SEARCH FROM") as client:
            return sorted(client.search(["FROM", address, "SINCE", since]))

    def search_message_id(self, folder: str, message_id: str) -> list[int]:
        """UIDs in the folder whose Message-ID is this one (with or without angle brackets)."""
        bare = message_id.strip().removeprefix("<").removesuffix(">").strip()
        if not bare or any(not 32 < ord(ch) < 127 for ch in bare):
            raise ValueError(f"not a Message-ID: {message_id!r}")
        self.select(folder)
        # HEADER search is a substring match, and servers differ on the angle brackets:
        # search with them, then without, and confirm every hit by reading its Message-ID.
        for needle in (f"<{bare}>", bare):
            quoted = '"' + needle.replace("\\", "\\\\").replace('"', '\\"') + '"'
            with self._guard("UID SEARCH HEADER Message-ID") as client:
                found = client.search(f"HEADER Message-ID {quoted}")
            confirmed = self._with_message_id(sorted(found), bare)
            if confirmed:
                return confirmed
        return []

    # ---------------------------------------------------------------- writing

    def append(self, folder: str, raw: bytes, flags: Sequence[bytes] = (b"\\Seen",),
               msg_time: datetime | None = None) -> None:
        with self._guard(f"APPEND to {folder!r}") as client:
            client.append(folder, raw, flags=tuple(flags), msg_time=msg_time)

    # ---------------------------------------------------------------- waiting

    def idle_wait(self, timeout: float) -> IdleResult:
        """Wait up to `timeout` seconds (at most idle_renew) for the server to report a change
        to the selected folder. Raises ImapConnectionLost when the connection is dead."""
        timeout = max(0.0, min(timeout, self._settings.idle_renew.as_timedelta().total_seconds()))
        if not self.has_idle:
            return self._poll_wait(timeout)
        # Dovecot reports in IDLE only what arrives during IDLE; mail that came after our last
        # command would wait for DONE. A NOOP first tells it, unless the last call just did.
        noop_first = not self._quiet_after_noop
        with self._guard("IDLE") as client:
            if _retained_change(client):
                self._quiet_after_noop = False
                return IdleResult(changed=True)
            seen: list[tuple] = []
            if noop_first:
                _, seen = client.noop()
                if _says_bye(seen):
                    raise ImapConnectionLost(f"{self.where} ended the session")
                if _reports_change(seen):
                    return IdleResult(changed=True)
            deadline = time.monotonic() + timeout
            try:
                client.idle()
            except imap_exceptions.IMAPClientError as exc:
                if "BYE" not in str(exc):  # imapclient reports a BYE here as a plain error
                    raise
                raise ImapConnectionLost(f"{self.where} ended the session: {exc}") from exc
            while (remaining := deadline - time.monotonic()) > 0:
                got = client.idle_check(timeout=remaining)
                seen += got
                # No complete line at all means EOF or half a TLS record: the NOOP decides.
                if not got or _says_bye(got) or _reports_change(got):
                    break
            if _says_bye(seen):
                raise ImapConnectionLost(f"{self.where} ended the session during IDLE")
            _, after = client.idle_done()
            seen += after
            if not _reports_change(seen):
                # A quiet IDLE proves nothing about the connection; a NOOP answered does.
                _, after = client.noop()
                seen += after
            if _says_bye(seen):
                raise ImapConnectionLost(f"{self.where} ended the session")
            changed = _reports_change(seen)
        self._quiet_after_noop = not changed
        return IdleResult(changed=changed)

    def _poll_wait(self, timeout: float) -> IdleResult:
        """Without IDLE: sleep on the socket (a BYE or EOF wakes us), then NOOP."""
        with self._guard("NOOP") as client:
            if _retained_change(client):
                return IdleResult(changed=True)
            select.select([client.socket()], [], [], timeout)
            _, responses = client.noop()
            if _says_bye(responses):
                raise ImapConnectionLost(f"{self.where} ended the session")
            return IdleResult(changed=_reports_change(responses))

    # ---------------------------------------------------------------- internals

    def _ssl_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self._settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ImapConnectionError(
                f"cannot use CA file {self._settings.ca_file!r} for {self.where}: {_describe(exc)}"
            ) from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _connect_failure(self, exc: BaseException, phase: str) -> ImapConnectionError:
        s, where = self._settings, self.where
        if isinstance(exc, TimeoutError):
            security = {"tls": "TLS", "starttls": "STARTTLS", "none": "no TLS"}[s.security]
            text = f"timed out after {s.connect_timeout:g} s {phase} to {where} ({security})"
        elif isinstance(exc, ssl.SSLError):
            hint = ("; set imap.ca_file if the server uses a private CA"
                    if isinstance(exc, ssl.SSLCertVerificationError) else "")
            text = f"TLS with {where} failed ({phase}): {_describe(exc)}{hint}"
        elif isinstance(exc, ConnectionRefusedError):
            text = f"connection to {where} refused: is the server running on that port?"
        elif isinstance(exc, socket.gaierror):
            text = f"cannot resolve {s.host!r}: {exc.strerror or exc}"
        else:
            text = f"connection to {where} failed ({phase}): {_describe(exc)}"
        return ImapConnectionError(text)

    def _enable_condstore(self, client: imapclient.IMAPClient) -> None:
        """So that SELECT reports HIGHESTMODSEQ; a server refusing it only loses that."""
        try:
            client.enable("CONDSTORE")
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            self._log.info("%s refused ENABLE CONDSTORE: %s", self.where, exc)

    def _login(self, client: imapclient.IMAPClient) -> None:
        user = self._settings.username
        if isinstance(self._password, OAuthCredential):
            self._oauth_login(client, self._password)
            return
        if self._password is None:
            raise ImapAuthError(f"no IMAP password given for {user!r} at {self.where}")
        try:
            client.login(user, self._password)
        except imap_exceptions.LoginError as exc:
            reason = str(exc).replace(self._password, "***") if self._password else str(exc)
            raise ImapAuthError(f"{self.where} refused the login of {user!r}: {reason}") from exc

    def _oauth_login(self, client: imapclient.IMAPClient, credential: OAuthCredential) -> None:
        """OAUTHBEARER (RFC 7628) where offered, else XOAUTH2; a refused token is renewed once."""
        user = self._settings.username
        mechanism = "OAUTHBEARER" if client.has_capability("AUTH=OAUTHBEARER") else "XOAUTH2"
        self.auth_mechanism = mechanism
        refused = ""
        for _attempt in range(2):
            try:
                token = credential.access_token()
            except SignInNeeded as exc:
                credential.record_problem(str(exc))
                raise ImapSignInNeeded(f"{self.where}: sign-in needed for {user!r}: {exc}") from None
            except OAuthProblem as exc:
                raise ImapConnectionError(f"{self.where}: no access token for {user!r}: {exc}") from None
            try:
                if mechanism == "OAUTHBEARER":
                    client.oauthbearer_login(user, token)
                else:
                    client.oauth2_login(user, token)
            except imap_exceptions.LoginError as exc:
                refused = str(exc).replace(token, "***")
                credential.invalidate(token)  # expired early, or revoked: one fresh token is worth a try
                continue
            credential.record_problem(None)
            return
        problem = (f"{self.where} refused the {mechanism} login of {user!r} twice, with a fresh access token "
                   f"the second time ({refused}): run `parting login` (or check the app's mailbox permission)")
        credential.record_problem(problem)
        raise ImapSignInNeeded(problem)

    @contextmanager
    def _guard(self, action: str) -> Iterator[imapclient.IMAPClient]:
        client = self._client
        if client is None:
            raise ImapConnectionLost(f"not connected to {self.where} ({action})")
        self._quiet_after_noop = False
        try:
            yield client
        except ImapConnectionLost:
            self._drop(client)
            raise
        except (imaplib.IMAP4.abort, imap_exceptions.ProtocolError, OSError, EOFError) as exc:
            # After an unreadable response we cannot trust where the stream stands either.
            self._drop(client)
            raise ImapConnectionLost(
                f"connection to {self.where} lost during {action}: {_describe(exc)}"
            ) from exc
        except imaplib.IMAP4.error as exc:
            text = str(exc)
            if any(word in text.upper() for word in ("NONEXISTENT", "TRYCREATE", "DOESN'T EXIST")):
                raise ImapFolderError(f"{action} at {self.where}: no such folder ({text})") from exc
            raise ImapError(f"{action} failed at {self.where}: {text}") from exc

    def _drop(self, client: imapclient.IMAPClient) -> None:
        if self._client is client:
            self._client = None
        self._shutdown_quietly(client)

    @staticmethod
    def _shutdown_quietly(client: imapclient.IMAPClient | None) -> None:
        if client is None:
            return
        try:
            client.shutdown()
        except Exception:
            pass

    def _fetch_each(self, client: imapclient.IMAPClient, uids: Sequence[int],
                    items: list[str]) -> dict:
        response = {}
        for uid in uids:
            try:
                response.update(client.fetch([uid], items))
            except imap_exceptions.ProtocolError as exc:
                self._log.warning("skipping uid %s at %s: unreadable FETCH response (%s)",
                                  uid, self.where, exc)
        return response

    def _fetched_header(self, uid: int, data: dict) -> FetchedHeader | None:
        header = _section_value(data, b"BODY[HEADER")
        internaldate = data.get(b"INTERNALDATE")
        if header is None or not isinstance(internaldate, datetime):
            self._log.warning("skipping uid %s at %s: FETCH response lacks %s", uid, self.where,
                              "the header" if header is None else "INTERNALDATE")
            return None
        if internaldate.tzinfo is None:
            internaldate = internaldate.replace(tzinfo=UTC)
        return FetchedHeader(
            uid=uid,
            header=header,
            internaldate=internaldate.astimezone(UTC),
            size=int(data.get(b"RFC822.SIZE") or len(header)),
        )

    def _with_message_id(self, uids: list[int], bare: str) -> list[int]:
        if not uids:
            return []
        item = header_fields_item(["Message-ID"])
        with self._guard("FETCH Message-ID") as client:
            response = client.fetch(uids, [item])
        parser = email.parser.BytesHeaderParser()
        confirmed = []
        for uid in uids:
            header = _section_value(response.get(uid, {}), b"BODY[HEADER") or b""
            value = str(parser.parsebytes(header).get("Message-ID", ""))
            if value.strip().removeprefix("<").removesuffix(">").strip() == bare:
                confirmed.append(uid)
        return confirmed
