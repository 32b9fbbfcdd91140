"""The ingest worker process (flows/ingest_pool.py): a catch-up of several batches reads headers
and bodies in one spawned worker while the daemon stores the batch before, and stores exactly
what an in-process read stores, whatever happens to the worker.

The golden mailbox of test_ingest_golden.py is read with batches of 7 (so each folder's catch-up
has several), through `parting run --once` as the Service runs it, and compared with the golden
file row by row: with the worker, with a worker that cannot start, that is killed mid-backfill,
and that raises.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from harness import RunningDaemon, write_config
from test_ingest_golden import GOLDEN, GOLDEN_CLIENTS, MALFORMED, NOW, mailbox, snapshot

from daemon.adapters.imap.connection import FetchedHeader
from daemon.core.mail import MalformedMessage, parse_message
from daemon.flows import ingest_pool
from daemon.flows.ingest_pool import BodyItem, Worker, WorkerFailed, read_bodies, read_headers
from daemon.runtime.clock import ManualClock
from daemon.runtime.service import Service

BATCH = 7  # the golden mailbox holds a few dozen messages a folder: several batches each


def seeded_config(dovecot, smtp_sink, folder: Path, *, seed: bool = True) -> Path:
    for mail_folder, raw, when in mailbox() if seed else ():
        dovecot.append(mail_folder, raw, msg_time=when)
    outgoing = folder / "outgoing"
    outgoing.mkdir(parents=True)
    return write_config(folder / "conf", dovecot, smtp_sink, clients=GOLDEN_CLIENTS,
                        extra={"mode": "dry_run", "dry_run": {"folder": str(outgoing)}})


def run_once(config: Path, **options) -> Service:
    service = Service(config, clock=ManualClock(NOW), environ={}, **options)
    assert asyncio.run(service.run(once=True, install_signals=False)) == 0
    return service


def assert_golden(config: Path) -> None:
    got = snapshot(config.parent / "parting.db")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want)
    for table in want:
        assert len(got[table]) == len(want[table]), table
        for mine, golden in zip(got[table], want[table], strict=True):
            differ = {key: (mine.get(key), golden.get(key)) for key in {*mine, *golden} if mine.get(key) != golden.get(key)}
            assert not differ, (table, golden.get("message_id"), differ)


def assert_ended(pids: list[int]) -> None:
    """Each process is gone (or a zombie its new parent has not reaped yet): no worker runs on."""
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        assert state == "Z", f"worker {pid} still runs (state {state})"


def children() -> set[int]:
    """The processes whose parent is this one, ended but not reaped ones included."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():  # a zombie counts: an ended worker must be reaped too
            found.add(int(stat.parent.name))
    return found


def quarantine_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("quarantined a message")]


# ---------------------------------------------------------------------------- the pure work


def test_a_malformed_header_comes_back_as_a_value_with_parse_message_s_reason() -> None:
    raw = next(path.read_bytes() for path in sorted(MALFORMED.iterdir()) if _malformed(path.read_bytes()))
    with pytest.raises(MalformedMessage) as raised:
        parse_message(raw)
    reading, = read_headers([(5, raw, None, len(raw))])
    assert reading.parsed is None and reading.uid == 5
    assert reading.problem == raised.value.reason
    assert reading.content_hash == __import__("hashlib").sha256(raw).hexdigest()


def _malformed(raw: bytes) -> bool:
    try:
        parse_message(raw)
    except MalformedMessage:
        return True
    return False


def test_the_worker_process_returns_what_the_same_functions_return_in_process() -> None:
    headers = [(uid, raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", when, len(raw))
               for uid, (_, raw, when) in enumerate(mailbox(), start=1)]
    headers.append((999, b"", None, 0))  # malformed: empty
    bodies = [BodyItem(uid, raw, keep_text=True, outgoing=folder == "Sent", bounce=True)
              for uid, (folder, raw, _) in enumerate(mailbox(), start=1)]
    worker = Worker()
    try:
        assert worker.call("headers", headers) == read_headers(headers)
        assert worker.call("bodies", bodies) == read_bodies(bodies)
        with pytest.raises(WorkerFailed, match="KeyError"):  # it raised: the caller does the task itself
            worker.call("no such task", [])
        assert worker.call("headers", headers[:1]) == read_headers(headers[:1]), "it still serves after raising"
    finally:
        worker.close()
    assert not worker.alive() and worker.process.returncode is not None
    with pytest.raises(WorkerFailed):
        worker.call("headers", headers)


def test_the_worker_ends_by_itself_when_the_daemon_is_killed(tmp_path: Path) -> None:
    """A SIGKILLed daemon cannot end its worker: the worker sees its pipe close and exits."""
    script = ("import os, signal, sys\n"
              "from daemon.flows.ingest_pool import Worker\n"
              "worker = Worker()\n"
              "assert worker.call('headers', []) == []\n"
              "print(worker.pid, flush=True)\n"
              "os.kill(os.getpid(), signal.SIGKILL)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).parent.parent)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # waiting for another process to exit, not for business time
        try:
            assert_ended([pid])
            break
        except AssertionError:
            time.sleep(0.05)
    assert_ended([pid])


# ---------------------------------------------------------------------------- through the daemon


def test_a_catch_up_of_several_batches_stores_the_golden_rows_through_the_worker(
        dovecot, smtp_sink, tmp_path: Path, caplog) -> None:
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    before = children()
    with caplog.at_level(logging.INFO):
        service = run_once(config, batch=BATCH)
    assert children() <= before, "each catch-up ended its worker"
    pool = service.ingest_pool
    assert pool is not None and pool.started == 1, "one worker for both folders' catch-ups, in turn"
    assert pool.header_batches >= 4 and pool.body_batches >= 1, "the worker read headers and bodies"
    assert_golden(config)
    assert_ended(pool.pids)
    # The quarantine's log lines are the main process's, as in-process.
    pooled = quarantine_lines(caplog)
    caplog.clear()
    other = seeded_config(dovecot, smtp_sink, tmp_path / "again", seed=False)  # the same mailbox, in-process
    with caplog.at_level(logging.INFO):
        run_once(other, batch=BATCH, ingest_worker=False)
    assert pooled and sorted(pooled) == sorted(quarantine_lines(caplog))


def test_a_catch_up_of_one_batch_starts_no_worker(dovecot, smtp_sink, tmp_path: Path) -> None:
    """The default batch holds the whole golden mailbox: as a live message in IDLE, it is read
    in-process, with no process to start first."""
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    service = run_once(config)
    assert service.ingest_pool is not None and service.ingest_pool.started == 0
    assert_golden(config)


def test_a_worker_that_cannot_start_leaves_the_catch_up_in_process(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch, caplog) -> None:
    def refuse(*args, **kwargs):
        raise OSError("Resource temporarily unavailable")

    monkeypatch.setattr(ingest_pool.subprocess, "Popen", refuse)
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    service = run_once(config, batch=BATCH)
    assert service.ingest_pool is not None and service.ingest_pool.started == 0
    assert "ingest worker could not start: Resource temporarily unavailable" in caplog.text
    assert_golden(config)


def test_a_worker_killed_mid_backfill_loses_and_doubles_nothing(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch, caplog) -> None:
    real_call = Worker.call
    calls = {"n": 0}

    def call(self: Worker, task: str, payload):
        calls["n"] += 1
        if calls["n"] == 3:  # two tasks done, the third finds its worker killed
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(10)
        return real_call(self, task, payload)

    monkeypatch.setattr(Worker, "call", call)
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    service = run_once(config, batch=BATCH)
    assert calls["n"] >= 3
    assert "the worker process ended (-9)" in caplog.text
    assert service.ingest_pool is not None and service.ingest_pool.started == 2, "the Sent catch-up starts a new one"
    assert_golden(config)
    assert_ended(service.ingest_pool.pids)


def test_a_worker_that_raises_leaves_its_batch_to_the_daemon(
        dovecot, smtp_sink, tmp_path: Path, monkeypatch, caplog) -> None:
    real_call = Worker.call

    def call(self: Worker, task: str, payload):
        return real_call(self, "bodies!" if task == "bodies" else task, payload)  # the worker knows no such task

    monkeypatch.setattr(Worker, "call", call)
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    service = run_once(config, batch=BATCH)
    assert "the worker raised KeyError" in caplog.text
    assert service.ingest_pool is not None and service.ingest_pool.body_batches == 0
    assert_golden(config)


async def test_stopping_mid_backfill_ends_the_worker_and_a_restart_finishes_the_same(
        dovecot, smtp_sink, tmp_path: Path) -> None:
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    before = children()  # Dovecot and the SMTP sink, started by the fixtures
    daemon = RunningDaemon(config, NOW)
    daemon.service = Service(config, clock=daemon.clock, tick=0.2, environ={}, batch=3)
    pool = daemon.service.ingest_pool
    assert pool is not None
    daemon.task = asyncio.create_task(daemon.service.run(install_signals=False))
    await daemon.wait_for(lambda: pool.header_batches >= 2, timeout=30, what="the worker's second batch")
    assert pool.worker is not None and pool.worker.alive()
    assert set(pool.pids) <= children()
    await daemon.stop()
    assert pool.worker is None
    assert_ended(pool.pids)
    assert children() <= before, "no child process remains after stop"
    # A batch counted only once committed: a fresh start reads the rest, nothing twice. (Threads
    # may differ from the golden file's: the daemon reads both folders at once, `--once` in turn.)
    await asyncio.to_thread(run_once, config, batch=BATCH)
    got, want = snapshot(config.parent / "parting.db"), json.loads(GOLDEN.read_text())
    assert sorted(row["message_id"] for row in got["messages"]) == sorted(row["message_id"] for row in want["messages"])
    assert got["quarantine"] == want["quarantine"] and got["folders"] == want["folders"]
    assert got["message_uids"] == want["message_uids"], "every UID stored once, none skipped"


CRASHING_DAEMON = """
import asyncio, sys
from daemon.flows.ingest_pool import IngestPool
from daemon.runtime.clock import ManualClock
from daemon.runtime.service import Service
from datetime import datetime

started = IngestPool._start
def start(self):
    started(self)
    if self.worker is not None:
        print("worker", self.worker.pid, flush=True)
IngestPool._start = start
service = Service(sys.argv[1], clock=ManualClock(datetime.fromisoformat(sys.argv[2])), environ={}, batch=3, staged=6, staged_from=0)
asyncio.run(service.run(once=True, install_signals=False))
"""


def test_a_daemon_killed_mid_backfill_leaves_no_worker_and_a_restart_stores_the_golden_rows(
        dovecot, smtp_sink, tmp_path: Path) -> None:
    """SIGKILL after the fourth commit (of two batches of three each; the worker busy with the
    next one): the worker ends by itself, the store holds whole batches only, and a restart
    finishes exactly."""
    config = seeded_config(dovecot, smtp_sink, tmp_path)
    done = subprocess.run([sys.executable, "-c", CRASHING_DAEMON, str(config), NOW.isoformat()], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parent.parent,
                          env={**os.environ, "PARTING_CRASH_AT": "after_ingest_commit:4"})
    assert done.returncode == -signal.SIGKILL, done.stderr
    pids = [int(line.split()[1]) for line in done.stdout.splitlines() if line.startswith("worker ")]
    assert pids, done.stdout
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # waiting for another process to exit, not for business time
        try:
            assert_ended(pids)
            break
        except AssertionError:
            time.sleep(0.05)
    assert_ended(pids)
    assert 0 < len(snapshot(config.parent / "parting.db")["message_uids"]) < len(json.loads(GOLDEN.read_text())["message_uids"])
    run_once(config, batch=BATCH)
    assert_golden(config)


def fetched_headers(count: int) -> list[FetchedHeader]:
    """The header blocks of the golden mailbox's first `count` messages, as a FETCH gives them."""
    return [FetchedHeader(uid, raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", when, len(raw))
            for uid, (_, raw, when) in enumerate(mailbox()[:count], start=1)]


def body_items(count: int) -> list[BodyItem]:
    """The golden mailbox's first `count` messages as bodies of our own requests."""
    return [BodyItem(uid, raw, keep_text=False, outgoing=True, bounce=False)
            for uid, (_, raw, _) in enumerate(mailbox()[:count], start=1)]


async def test_a_half_the_busy_worker_has_not_begun_is_read_by_the_daemon_itself() -> None:
    headers = fetched_headers(40)
    items = [(h.uid, h.header, h.internaldate, h.size) for h in headers]
    pool = ingest_pool.IngestPool(logging.getLogger("test"))
    helper = pool.catch_up("INBOX", 2)
    assert helper is not None and pool.worker is not None
    try:
        busy = pool._call(pool.worker, "headers", items * 100)  # the worker reads another batch first
        helper.ahead(headers)
        share = pool.main_share
        readings = await pool.header_readings(headers)
        assert readings == read_headers(items)
        assert pool.stolen_halves == 1, "the second half was not begun: read here"
        # The daemon waited for the worker's headers: it reads a larger share of the next bodies.
        assert pool.main_share == pytest.approx(share + ingest_pool.SHARE_STEP)
        assert len(busy.result()) == 4000
    finally:
        helper.close()
    assert pool.worker is None


async def test_headers_the_worker_has_read_in_time_leave_the_daemon_s_share_as_it_is() -> None:
    headers = fetched_headers(40)
    pool = ingest_pool.IngestPool(logging.getLogger("test"))
    helper = pool.catch_up("INBOX", 2)
    assert helper is not None and pool.worker is not None
    try:
        helper.ahead(headers)
        pool._call(pool.worker, "headers", []).result()  # one thread, in order: both halves are read
        share = pool.main_share
        assert await pool.header_readings(headers) is not None
        assert pool.stolen_halves == 0 and pool.main_share == share
    finally:
        helper.close()


def test_the_daemon_s_share_of_the_bodies_moves_towards_the_side_that_waited_less() -> None:
    bodies = body_items(20)
    headers = [(h.uid, h.header, h.internaldate, h.size) for h in fetched_headers(40)]
    pool = ingest_pool.IngestPool(logging.getLogger("test"))
    helper = pool.catch_up("Sent", 2)
    assert helper is not None and pool.worker is not None
    try:
        first = pool.main_share
        later = pool.body_readings(bodies)
        assert later is not None and len(later.uids) == len(bodies) - round(len(bodies) * first)
        pool._call(pool.worker, "headers", headers * 100)  # queued behind: the worker is busy...
        # ...so the readings are not there when the daemon is: it takes a larger share next time.
        pool.main_share, later = first, pool.body_readings(bodies)
        busy = pool._call(pool.worker, "headers", headers * 100)
        assert later is not None and later.wait() is not None
        assert pool.main_share == pytest.approx(first + ingest_pool.SHARE_STEP)
        busy.result()
        # The worker done first: the daemon takes a smaller share.
        later = pool.body_readings(bodies)
        pool._call(pool.worker, "headers", []).result()  # one thread, in order: the bodies are read
        assert later is not None and later.wait() == read_bodies([b for b in bodies if b.uid in later.uids])
        assert pool.main_share == pytest.approx(first)
    finally:
        helper.close()


async def test_a_batch_s_bodies_go_to_the_worker_before_the_next_batch_s_headers() -> None:
    # The daemon waits for this batch's bodies now and for the next batch's headers only once
    # this batch is stored: halves handed over ahead and not begun go back behind the bodies.
    bodies = body_items(20)
    headers = fetched_headers(40)
    items = [(h.uid, h.header, h.internaldate, h.size) for h in headers]
    pool = ingest_pool.IngestPool(logging.getLogger("test"))
    helper = pool.catch_up("Sent", 2)
    assert helper is not None and pool.worker is not None
    calls: list[tuple[str, Any]] = []
    call = pool._call

    def recorded(worker: Any, task: str, payload: Any) -> Any:
        future = call(worker, task, payload)
        calls.append((task, future))
        return future

    pool._call = recorded  # type: ignore[method-assign]
    try:
        busy = pool._call(pool.worker, "headers", items * 100)  # the worker reads another batch first
        helper.ahead(headers)  # the next batch's headers, in two halves, queued behind it
        later = pool.body_readings(bodies)
        assert later is not None
        # One thread talks to the worker, in the order of the calls not cancelled.
        order = [task for task, future in calls if not future.cancelled()]
        assert order == ["headers", "bodies", "headers", "headers"], order
        assert later.wait() == read_bodies([b for b in bodies if b.uid in later.uids])
        assert await pool.header_readings(headers) == read_headers(items)
        busy.result()
    finally:
        helper.close()
