"""FolderWatcher fetches the next batch's headers while on_batch stores this one, and uses its
connection from one thread at a time: a body read waits for that fetch. A batch that fails, or a
stop, still leaves nothing skipped: the store's state says where the next sync starts.
(A pure unit test of the watcher's order of work: the connection is a recording fake.)"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest

from daemon.adapters.imap import watcher as watcher_module
from daemon.adapters.imap.watcher import FetchedHeader, FolderInfo, FolderWatcher
from daemon.core.model import ImapSettings

UIDS = list(range(1, 8))  # batches of 3: [1 2 3] [4 5 6] [7]


class FakeConnection:
    events: list[str] = []

    def __init__(self, *args: object, **kwargs: object) -> None:
        self.busy = threading.Lock()

    def _use(self, name: str) -> None:
        assert self.busy.acquire(blocking=False), f"{name} while another thread used the connection"
        try:
            FakeConnection.events.append(f"start {name}")
            time.sleep(0.05)
            FakeConnection.events.append(f"end {name}")
        finally:
            self.busy.release()

    def connect(self) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...

    def select(self, folder: str) -> FolderInfo:
        return FolderInfo(name=folder, uidvalidity=1, uidnext=8, exists=7, highestmodseq=None)

    def new_uids(self, last_uid: int, *, since: object = None) -> list[int]:
        return [uid for uid in UIDS if uid > last_uid]

    def fetch_headers(self, uids: list[int], fields: object) -> list[FetchedHeader]:
        self._use(f"headers {uids[0]}")
        when = datetime(2026, 3, 2, tzinfo=UTC)
        return [FetchedHeader(uid=uid, header=b"Subject: x\r\n\r\n", internaldate=when, size=20) for uid in uids]

    def fetch_messages(self, uids: list[int], *, sizes: object = None) -> dict[int, bytes]:
        self._use(f"bodies {uids[0]}")
        return {uid: b"Subject: x\r\n\r\nbody\r\n" for uid in uids}


def watch(monkeypatch, fail_at: int | None = None) -> tuple[list[str], int, list[int]]:
    monkeypatch.setattr(watcher_module, "ImapConnection", FakeConnection)
    FakeConnection.events = []
    committed: list[int] = []

    async def on_batch(folder, info, headers, read_bodies) -> None:
        first = headers[0].uid
        FakeConnection.events.append(f"batch {first}")
        if first == fail_at:
            raise RuntimeError("parse failed")  # while the next batch's headers are still coming
        await asyncio.sleep(0.1)  # parsing: the next batch's headers arrive meanwhile
        await read_bodies([first])
        committed.extend(h.uid for h in headers)
        FakeConnection.events.append(f"committed {first}")

    async def get_state(folder):
        return None

    async def main() -> int:
        settings = ImapSettings(host="127.0.0.1", port=143, security="none", username="u", lookback_days=0)
        folder_watcher = FolderWatcher(settings, "pw", "inbox", on_batch=on_batch, get_state=get_state,
                                       on_uidvalidity_change=get_state, stop=asyncio.Event(), batch=3)
        return await folder_watcher.run_once()

    delivered = asyncio.run(main())
    return FakeConnection.events, delivered, committed


def test_the_next_batch_is_fetched_while_this_one_is_stored(monkeypatch) -> None:
    events, delivered, committed = watch(monkeypatch)
    assert delivered == 7 and committed == UIDS
    # headers of batch 2 were fetched before batch 1 was committed, and its bodies waited for them
    assert events.index("start headers 4") < events.index("committed 1")
    assert events.index("end headers 4") < events.index("start bodies 1")
    assert events.index("start headers 7") < events.index("committed 4")


def test_a_failed_batch_waits_for_the_fetch_ahead_and_delivers_nothing_after_it(monkeypatch) -> None:
    with pytest.raises(RuntimeError):
        watch(monkeypatch, fail_at=4)
    events = FakeConnection.events
    assert "committed 1" in events and "committed 4" not in events and "batch 7" not in events
    assert events[-1] == "end headers 7"  # the connection was left free, not in use by a thread
