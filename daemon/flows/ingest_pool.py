"""Ingest's pure per-message work, and one worker process that does it beside the daemon.

Rules of this module:
- `read_headers` and `read_bodies` are functions of the fetched bytes only (no store, no settings,
  no clock): the in-process path and the worker call the very same functions, so a batch read by
  either stores the same rows. A malformed message comes back as a value (its reason and hash),
  never as an exception, so its quarantine and log line are the main process's, as before.
- One worker process, spawned as a fresh interpreter (the daemon has threads, the watchers'
  fetch-ahead among them: a forked child could inherit a lock one of them held and never wake). It
  only ever receives bytes and returns values; everything it does the main process can do itself, so any trouble
  with it (it cannot start, it dies, it raises) is `WorkerFailed`, and the caller reads that batch
  in-process: nothing is lost, nothing counted twice (only the main process writes the store).
- It is used only by a catch-up of more than one batch (a live message in IDLE is read in-process:
  starting a process would delay the reply), shared by the watchers that catch up at once, and
  ended (SIGTERM, then SIGKILL, each bounded) by the last of them, by a stop or a cancel. The child
  also ends by itself when the daemon's end of its pipe closes, so a killed daemon leaves no orphan.
- Only the main process logs; the worker prints nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from daemon.core.bounces import delivery_failures
from daemon.core.mail import (
    MalformedMessage,
    asks_something,
    bounce_recipients,
    message_text,
    parse_message,
    request_header,
)
from daemon.core.model import DeliveryFailure, ParsedMessage
from daemon.core.replytext import split_reply

STOP_SECONDS = 2.0  # how long the worker may take to end after SIGTERM before SIGKILL
# For a batch written at once, the main process reads a share of its bodies while the worker reads
# the rest (it also reads the next batch's headers): the share moves by a step a batch towards the
# side that waited less. A staged batch's bodies the worker reads all, behind (`body_readings`).
FIRST_MAIN_SHARE, SHARE_STEP, MAX_MAIN_SHARE = 0.3, 0.05, 0.8

# ------------------------------------------------------------------------------ the pure work

HeaderItem = tuple[int, bytes, datetime | None, int]  # uid, header bytes, INTERNALDATE, RFC822.SIZE


@dataclass(frozen=True)
class HeaderReading:
    """One fetched header block read: `parsed` (and whether it carries X-Parting-Request), or,
    for a malformed one, why (`problem`) with the sha256 of its bytes."""

    uid: int
    parsed: ParsedMessage | None
    request_header: bool = False
    problem: str | None = None
    content_hash: str = ""


def read_headers(items: Sequence[HeaderItem]) -> list[HeaderReading]:
    readings = []
    for uid, header, internaldate, size in items:
        try:
            parsed = parse_message(header, internaldate=internaldate, size=size)
        except MalformedMessage as problem:
            readings.append(HeaderReading(uid, None, problem=problem.reason,
                                          content_hash=hashlib.sha256(header).hexdigest()))
            continue
        readings.append(HeaderReading(uid, parsed, request_header(header)))
    return readings


@dataclass(frozen=True)
class BodyItem:
    """A fetched body and what its message needs read from it."""

    uid: int
    body: bytes
    keep_text: bool  # a staff reply: its text is stored
    outgoing: bool  # ours: does its new text ask something?
    bounce: bool  # which addresses failed, and why


@dataclass(frozen=True)
class BodyReading:
    text: str | None  # kept only when asked (keep_text), else None
    unreadable: str | None  # MalformedMessage's reason: the headers are kept without the text
    asks: bool  # the new text (quotes and signature cut) asks something; outgoing mail only
    bounce_recipients: tuple[str, ...] = ()
    failures: tuple[DeliveryFailure, ...] = ()


def read_body(item: BodyItem) -> BodyReading:
    text = unreadable = None
    try:
        text = message_text(item.body)
    except MalformedMessage as problem:
        unreadable = problem.reason
    new_text = split_reply(text)[0] if text and item.outgoing else None
    return BodyReading(
        text=text if item.keep_text else None,
        unreadable=unreadable,
        asks=bool(new_text and asks_something(new_text)),
        bounce_recipients=bounce_recipients(item.body) if item.bounce else (),
        failures=delivery_failures(item.body) if item.bounce else (),
    )


def read_bodies(items: Sequence[BodyItem]) -> dict[int, BodyReading]:
    return {item.uid: read_body(item) for item in items}


TASKS: dict[str, Any] = {"headers": read_headers, "bodies": read_bodies}


@dataclass(frozen=True)
class Later:
    """Bodies the worker is reading: their UIDs, and what waits for its readings (None: it failed)."""

    uids: frozenset[int]
    wait: Callable[[], dict[int, BodyReading] | None]

# ------------------------------------------------------------------------------ the process


class WorkerFailed(Exception):
    """The worker could not do a task (it did not start, died, or raised): do it in-process."""


def serve() -> None:
    """The worker's loop on its standard input and output (the daemon's pipes): (task, payload)
    in, ("ok", result) or ("error", text) out, until the daemon closes its end or dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C in a terminal is the daemon's to handle
    requests, answers = Connection(0, writable=False), Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # anything printed by mistake goes to stderr, never into the answers
    while True:
        try:
            task, payload = requests.recv()
        except (EOFError, OSError):  # nothing more to do
            return
        try:
            answer: tuple[str, Any] = ("ok", TASKS[task](payload))
        except Exception as problem:  # noqa: BLE001 - reported to the daemon, which does the task itself
            answer = ("error", f"{type(problem).__name__}: {problem}")
        answers.send(answer)


class Worker:
    """One worker process and its pipes; `call` is blocking (run it in a thread) and serialised.

    Spawned: a fresh interpreter (`python -c`) importing this package from where the daemon
    imported it, not a fork; nor multiprocessing's `spawn`, whose resource tracker process would
    outlive the worker as another child of the daemon."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])
        environ = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from daemon.flows.ingest_pool import serve; serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=environ, close_fds=True)
        except Exception as problem:
            raise WorkerFailed(f"could not start: {problem}") from problem
        assert self.process.stdin is not None and self.process.stdout is not None
        self._requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self._answers = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()  # the duplicates above are the daemon's only ends
        self.process.stdout.close()
        self._lock = threading.Lock()
        self.failed: str | None = None
        self.told = False  # the daemon's log said it failed

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def call(self, task: str, payload: Any) -> Any:
        with self._lock:
            if self.failed:
                raise WorkerFailed(self.failed)
            try:
                self._requests.send((task, payload))
                status, answer = self._answers.recv()
            except Exception as problem:  # the pipe may hold half a message: this worker is done
                if isinstance(problem, (EOFError, OSError)):
                    self._reap()  # to say how it ended
                    self.failed = f"the worker process ended ({self.process.returncode})"
                else:
                    self.failed = f"talking to the worker failed: {type(problem).__name__}: {problem}"
                raise WorkerFailed(self.failed) from problem
            if status != "ok":
                raise WorkerFailed(f"the worker raised {answer}")
            return answer

    def close(self) -> None:
        """End the process (bounded: SIGTERM, then SIGKILL) and reap it."""
        self.failed = self.failed or "closed"
        self._requests.close()  # EOF: an idle worker ends by itself
        if self.alive():
            self.process.terminate()
        self._reap()
        self._answers.close()

    def _reap(self) -> None:
        try:
            self.process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class IngestPool:
    """The daemon's use of one worker: started by the first catch-up of more than one batch,
    shared by the watchers catching up at once, ended with the last of them (or `close`).

    A catch-up hands over each batch's headers as soon as they are fetched (`ahead`): the worker
    reads them while the main process stores the batch before. `header_readings` then returns
    the readings of a batch handed over ahead (None: read it in-process), `body_readings` reads
    its bodies in the worker when one is running (None: in-process).
    """

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.worker: Worker | None = None
        self.users = 0
        self.started = 0  # worker processes started, for tests and the bench
        self.pids: list[int] = []
        self.header_batches = 0  # batches whose headers the worker read
        self.stolen_halves = 0  # halves of those the main process read itself, the worker being busy
        self.main_share = FIRST_MAIN_SHARE  # of a batch's bodies, read by the main process meanwhile
        self.body_batches = 0  # batches whose bodies it read
        self._ahead: dict[int, tuple[object, list[tuple[list[HeaderItem], Future[list[HeaderReading]]]]]] = {}
        # One thread talks to the worker, in the order the tasks were handed over.
        self._calls: ThreadPoolExecutor | None = None

    # -------------------------------------------------------------- the watcher's catch-up hook

    def catch_up(self, folder: str, batches: int) -> CatchUp | None:
        if batches < 2:
            return None  # one batch: a live message stays in-process, no process to start
        self.users += 1
        if self.worker is None or self.worker.failed:
            self._start()
        return CatchUp(self)

    def _start(self) -> None:
        if self.worker is not None:
            self.worker.close()
        try:
            self.worker = Worker()
        except WorkerFailed as problem:
            self.worker = None
            self.log.warning("ingest worker %s; reading in this process", problem)
            return
        self.started += 1
        self.pids.append(self.worker.pid)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Keep the worker, once a catch-up starts it, until the end of the block: `run --once`
        reads INBOX, then Sent, and one worker serves both (a start costs a batch read here)."""
        self.users += 1
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        self.users = max(0, self.users - 1)
        if self.users == 0:
            self.close()

    def close(self) -> None:
        """End the worker now (bounded); pending readings fail over to in-process."""
        self._ahead.clear()
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()  # a call in flight ends at once (WorkerFailed)
        calls, self._calls = self._calls, None
        if calls is not None:
            calls.shutdown(wait=False, cancel_futures=True)

    def _call(self, worker: Worker, task: str, payload: Any) -> Future[Any]:
        if self._calls is None:
            self._calls = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-worker")
        return self._calls.submit(worker.call, task, payload)

    # -------------------------------------------------------------- readings

    def _submit(self, headers: Sequence[Any]) -> None:
        worker = self.worker
        if worker is None or worker.failed:
            return
        items: list[HeaderItem] = [(h.uid, h.header, h.internaldate, h.size) for h in headers]
        # In two halves: a half the worker has not begun when the batch is due is read here instead.
        half = (len(items) + 1) // 2
        self._ahead[id(headers)] = (headers, [(part, self._call(worker, "headers", part))
                                              for part in (items[:half], items[half:]) if part])

    async def header_readings(self, headers: Sequence[Any]) -> list[HeaderReading] | None:
        found = self._ahead.pop(id(headers), None)
        if found is None or found[0] is not headers:
            return None
        parts = found[1]
        stolen = [index for index, (_, future) in enumerate(parts) if index and future.cancel()]
        if stolen or not all(future.done() for _, future in parts):
            # This process waits for the worker's headers: it takes a larger share of the bodies.
            self.main_share = min(MAX_MAIN_SHARE, self.main_share + SHARE_STEP)
        mine = {index: read_headers(parts[index][0]) for index in stolen}  # while the worker reads the rest
        readings: list[HeaderReading] = []
        for index, (_, future) in enumerate(parts):
            if index in mine:
                readings.extend(mine[index])
                continue
            waited = asyncio.wrap_future(future)
            await asyncio.wait({waited})  # only a cancel of this task raises here, never the worker's trouble
            problem = WorkerFailed("closed") if waited.cancelled() else waited.exception()
            if problem is not None:
                for _, rest in parts:
                    rest.cancel()
                self._failed(problem)
                return None
            readings.extend(waited.result())
        self.header_batches += 1
        self.stolen_halves += len(stolen)
        return readings

    def body_readings(self, items: Sequence[BodyItem], *, behind: bool = False) -> Later | None:
        """Hand the worker its share of the bodies (the main process reads the rest meanwhile);
        None when no worker runs. The share follows the last batch: whichever side waited for
        the other gives the other less. `behind`: the bodies are wanted only once the next batch
        is threaded, so the worker reads them all, after the next batch's headers."""
        worker = self.worker
        if not items or worker is None or worker.failed:
            return None
        given = list(items if behind else items[:len(items) - round(len(items) * self.main_share)])
        waiting = [] if behind else self._set_back_headers()
        future: Future[dict[int, BodyReading]] = self._call(worker, "bodies", given)
        self._hand_back_headers(worker, waiting)

        def wait() -> dict[int, BodyReading] | None:
            if not behind:  # (read behind, nobody waited for them: the share stays)
                if future.done():  # the worker was done first: give it more next time
                    self.main_share = max(0.0, self.main_share - SHARE_STEP)
                else:
                    self.main_share = min(MAX_MAIN_SHARE, self.main_share + SHARE_STEP)
            try:
                readings = future.result()
            except Exception as problem:  # noqa: BLE001 - read in-process instead (a cancel included)
                self._failed(problem)
                return None
            self.body_batches += 1
            return readings
        return Later(frozenset(item.uid for item in given), wait)

    def _set_back_headers(self) -> list[tuple[int, int, list[HeaderItem]]]:
        """The header halves handed over ahead that the worker has not begun, taken off its queue:
        the batch being stored waits for its bodies now, the next batch for its headers only
        once this one is stored, so the bodies go first (else the daemon waits on both)."""
        waiting: list[tuple[int, int, list[HeaderItem]]] = []
        for key, (_, parts) in self._ahead.items():
            waiting.extend((key, index, part) for index, (part, future) in enumerate(parts) if future.cancel())
        return waiting

    def _hand_back_headers(self, worker: Worker, waiting: list[tuple[int, int, list[HeaderItem]]]) -> None:
        for key, index, part in waiting:
            parts = self._ahead[key][1]
            parts[index] = (part, self._call(worker, "headers", part))

    def _failed(self, problem: BaseException) -> None:
        worker = self.worker
        if worker is None or worker.told:
            return
        if not isinstance(problem, WorkerFailed):
            problem = WorkerFailed(f"{type(problem).__name__}: {problem}")
        worker.failed, worker.told = worker.failed or str(problem), True  # told once; the rest stays in-process
        self.log.warning("ingest worker: %s; this batch and the rest of the catch-up are read in this process",
                         problem)


class CatchUp:
    """One watcher's catch-up of several batches: what `FolderWatcher(on_catch_up=...)` returns."""

    def __init__(self, pool: IngestPool) -> None:
        self.pool = pool
        self._closed = False

    def ahead(self, headers: Sequence[Any]) -> None:
        if not self._closed:
            self.pool._submit(headers)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.pool._release()
