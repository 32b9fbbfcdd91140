"""A private Dovecot holding a generated mailbox, and parting configurations pointing at it.

The Dovecot is tests/servers.py's DovecotServer in a servers.scratch_dir(). Two ways to seed it:
`write_maildir` writes the files into the Dovecot user's Maildir before Dovecot starts (as
Dovecot's own LDA names them, with S= and W= sizes, mtime = arrival); `multiappend` APPENDs
through IMAP in chunks. `python -m bench` times both (`seed_with_*`); Mailbox uses the maildir.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml
from harness import write_config
from servers import DovecotServer, _mail_owner, scratch_dir

from bench import corpus

LOOKBACK_DAYS = 3650  # read the whole generated mailbox (dates go back ~330 days)


def maildir_of(mail_root: Path, user: str, folder: str) -> Path:
    """Where the DovecotServer of tests/servers.py keeps a folder (maildir:~/Maildir, home mail/<user>)."""
    base = mail_root / user / "Maildir"
    return base if folder == "INBOX" else base / f".{folder}"


def write_maildir(mail_root: Path, user: str, mails: Sequence[corpus.Mail], owner: tuple[int, int]) -> None:
    """Write every message as a maildir file before Dovecot starts: cur/ with the Seen flag,
    S= (size) and W= (size with CRLF) in the name so Dovecot need not read a file to size it,
    mtime = arrival, which Dovecot reports as INTERNALDATE. The name starts with the arrival
    time, so Dovecot hands out UIDs in arrival order."""
    uid, gid = owner
    home = mail_root / user
    for path in (mail_root, home, home / "Maildir"):
        path.mkdir(exist_ok=True)
        os.chown(path, uid, gid)
    cur_fds: dict[str, int] = {}
    pid = os.getpid()
    try:
        for index, mail in enumerate(mails):
            cur = cur_fds.get(mail.folder)
            if cur is None:
                cur = cur_fds[mail.folder] = _make_maildir(maildir_of(mail_root, user, mail.folder),
                                                           mail.folder != "INBOX", owner)
            stamp = int(mail.when.timestamp())
            vsize = len(mail.raw) + mail.raw.count(b"\n")
            name = f"{stamp}.M{index:06d}P{pid}.bench,S={len(mail.raw)},W={vsize}:2,S"
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=cur)
            try:
                os.write(fd, mail.raw)
                os.fchown(fd, uid, gid)
                os.utime(fd, (stamp, stamp))
            finally:
                os.close(fd)
    finally:
        for fd in cur_fds.values():
            os.close(fd)


def _make_maildir(folder: Path, subfolder: bool, owner: tuple[int, int]) -> int:
    """Create a maildir (cur, new, tmp) owned by `owner`; returns a descriptor of its cur/."""
    for sub in ("", "cur", "new", "tmp"):
        (folder / sub).mkdir(exist_ok=True)
        os.chown(folder / sub, *owner)
    if subfolder:  # Dovecot marks its maildir++ subfolders so
        (folder / "maildirfolder").touch()
        os.chown(folder / "maildirfolder", *owner)
    return os.open(folder / "cur", os.O_RDONLY | os.O_DIRECTORY)


def multiappend(dovecot, mails: Sequence[corpus.Mail], chunk: int = 500) -> None:
    """APPEND every message over one connection, `chunk` per MULTIAPPEND command, each with its
    arrival time as INTERNALDATE (DovecotServer.append_many cannot pass dates)."""
    with dovecot.client() as imap:
        for folder in dict.fromkeys(m.folder for m in mails):
            batch = [m for m in mails if m.folder == folder]
            for start in range(0, len(batch), chunk):
                items = [{"msg": m.crlf(), "flags": (b"\\Seen",), "date": m.when} for m in batch[start:start + chunk]]
                imap.multiappend(folder, items)


def examine(dovecot: DovecotServer) -> dict[str, int]:
    """EXAMINE both folders (Dovecot indexes a new maildir here); their message counts."""
    counts = {}
    with dovecot.client() as imap:
        for folder in ("INBOX", "Sent"):
            counts[folder] = int(imap.select_folder(folder, readonly=True)[b"EXISTS"])
    return counts


@dataclass
class Mailbox:
    """A started Dovecot with `messages` generated messages for `clients`."""

    messages: int
    clients: list[corpus.ClientSpec]
    workdir: Path
    dovecot: DovecotServer
    mails: list[corpus.Mail]
    timings: dict[str, float] = field(default_factory=dict)
    _configs: int = 0

    @classmethod
    def create(cls, messages: int, client_count: int, *, seed: int = 1) -> Mailbox:
        clients = corpus.make_clients(client_count)
        start = time.perf_counter()
        mails = corpus.generate(messages, clients, end=corpus.now_utc() - timedelta(hours=1), seed=seed)
        generated = time.perf_counter()
        workdir = scratch_dir("parting-bench-")
        dovecot = DovecotServer(workdir)
        write_maildir(workdir / "mail", dovecot.user, mails, _mail_owner())
        written = time.perf_counter()
        dovecot.start()
        box = cls(messages, clients, workdir, dovecot, mails)
        examine(dovecot)
        box.timings = {"generate_seconds": generated - start, "maildir_write_seconds": written - generated,
                       "start_and_index_seconds": time.perf_counter() - written}
        (workdir / "imap-password").write_text(dovecot.password + "\n")
        return box

    def config(self, *, lookback_days: int = LOOKBACK_DAYS) -> Path:
        """A fresh folder with a config (dry run: nothing is mailed) and an empty database."""
        self._configs += 1
        folder = self.workdir / f"parting-{self._configs}"
        path = write_config(folder, self.dovecot, None, clients=[c.as_config() for c in self.clients],
                            extra={"mode": "dry_run", "dry_run": {"folder": str(folder / "dry-run")}})
        (folder / "dry-run").mkdir()
        data = yaml.safe_load(path.read_text())
        data["mailbox"]["imap"]["lookback"] = f"{lookback_days} days"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    @property
    def since(self) -> str:
        """The SINCE date FolderWatcher searches with, for the bare loop."""
        return str(corpus.now_utc().date() - timedelta(days=LOOKBACK_DAYS))

    def close(self) -> None:
        self.dovecot.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def seed_with_multiappend(messages: int, client_count: int, chunk: int, *, seed: int = 1) -> dict[str, float]:
    """The other way to seed: start an empty Dovecot, MULTIAPPEND `chunk` messages a command."""
    clients = corpus.make_clients(client_count)
    mails = corpus.generate(messages, clients, end=corpus.now_utc() - timedelta(hours=1), seed=seed)
    workdir = scratch_dir("parting-bench-")
    dovecot = DovecotServer(workdir)
    try:
        start = time.perf_counter()
        dovecot.start()
        multiappend(dovecot, mails, chunk=chunk)
        examine(dovecot)
        return {"seconds": time.perf_counter() - start}
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def seed_with_maildir(messages: int, client_count: int, *, seed: int = 1) -> dict[str, float]:
    """Write the maildir, start Dovecot, EXAMINE both folders (which indexes them)."""
    clients = corpus.make_clients(client_count)
    mails = corpus.generate(messages, clients, end=corpus.now_utc() - timedelta(hours=1), seed=seed)
    workdir = scratch_dir("parting-bench-")
    dovecot = DovecotServer(workdir)
    try:
        start = time.perf_counter()
        write_maildir(workdir / "mail", dovecot.user, mails, _mail_owner())
        dovecot.start()
        examine(dovecot)
        return {"seconds": time.perf_counter() - start}
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)
