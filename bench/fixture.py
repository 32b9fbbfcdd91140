"""A private Dovecot holding a generated mailbox, and parting configurations pointing at it.

The Dovecot is tests/servers.py's DovecotServer in a servers.scratch_dir(); it is seeded by
writing maildir files before it starts (the faster way, see `seed_comparison` in ingest_bench).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import yaml
from harness import write_config
from servers import DovecotServer, _mail_owner, scratch_dir

from bench import corpus

LOOKBACK_DAYS = 3650  # read the whole generated mailbox (dates go back ~330 days)


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
        corpus.write_maildir(workdir / "mail", dovecot.user, mails, _mail_owner())
        written = time.perf_counter()
        dovecot.start()
        box = cls(messages, clients, workdir, dovecot, mails)
        box.examine()
        box.timings = {"generate_seconds": generated - start, "maildir_write_seconds": written - generated,
                       "start_and_index_seconds": time.perf_counter() - written}
        (workdir / "imap-password").write_text(dovecot.password + "\n")
        return box

    def examine(self) -> dict[str, int]:
        """EXAMINE both folders (Dovecot indexes a new maildir here); their message counts."""
        counts = {}
        with self.dovecot.client() as imap:
            for folder in ("INBOX", "Sent"):
                counts[folder] = int(imap.select_folder(folder, readonly=True)[b"EXISTS"])
        return counts

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
        corpus.multiappend(dovecot, mails, chunk=chunk)
        with dovecot.client() as imap:
            for folder in ("INBOX", "Sent"):
                imap.select_folder(folder, readonly=True)
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
        corpus.write_maildir(workdir / "mail", dovecot.user, mails, _mail_owner())
        dovecot.start()
        with dovecot.client() as imap:
            for folder in ("INBOX", "Sent"):
                imap.select_folder(folder, readonly=True)
        return {"seconds": time.perf_counter() - start}
    finally:
        dovecot.stop()
        shutil.rmtree(workdir, ignore_errors=True)
