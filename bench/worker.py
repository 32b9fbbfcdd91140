"""One measured task in a fresh interpreter, so each run starts cold and its memory is its own.

    python -m bench.worker parting-ingest CONFIG [--cycle] [--bodies-out FILE]
    python -m bench.worker bare-ingest HOST PORT USER PASSWORD_FILE SINCE [--bodies-in FILE]

Prints one JSON object on its last stdout line. Times exclude interpreter start and imports;
`hwm_mb` is the process's peak resident set (VmHWM), `start_rss_mb` its size before the work.

parting-ingest is the daemon's own backfill: the Service's folder watchers (INBOX, then Sent, as
`parting run --once` does) with its intake's on_batch (runtime/intake.py: parse, body fetch, commit) into the
empty database of CONFIG. Ingestor.parse, Ingestor.commit and the batch's body reads are wrapped
with timers (a few microseconds a batch) to say where the time goes.

bare-ingest is the limit: plain imapclient doing the same IMAP work (login, EXAMINE, UID SEARCH
UID 1:* SINCE, UID FETCH of the same header fields, INTERNALDATE and RFC822.SIZE, 1000 UIDs a
command) and throwing the answers away. With --bodies-in it also fetches, per batch and in one
FETCH command, the bodies parting fetched (their UIDs as written by --bodies-out).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from array import array
from datetime import date
from pathlib import Path

import bench  # noqa: F401 - puts tests/ on sys.path

BATCH = 1000  # FolderWatcher's default batch


def memory_mb(field: str, pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_writes() -> int:
    """Bytes this process has had written to storage so far (/proc/self/io write_bytes)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class Timers:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def wrap(self, owner: object, name: str, label: str, count=None):
        original = getattr(owner, name)
        timers = self
        if asyncio.iscoroutinefunction(original):
            async def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    timers.add(label, time.perf_counter() - start, count(args, kwargs) if count else 1)
        else:
            def timed(*args, **kwargs):
                start = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    timers.add(label, time.perf_counter() - start, count(args, kwargs) if count else 1)
        setattr(owner, name, timed)

    def add(self, label: str, seconds: float, count: int) -> None:
        self.seconds[label] = self.seconds.get(label, 0.0) + seconds
        self.counts[label] = self.counts.get(label, 0) + count


async def parting_ingest(config: str, run_cycle: bool, bodies_out: str | None) -> dict:
    from daemon.flows.ingest import Ingestor
    from daemon.flows.ingest_pool import IngestPool, Later, Worker
    from daemon.runtime.intake import Intake
    from daemon.runtime.logs import get_logger
    from daemon.runtime.service import Service, open_context

    timers = Timers()
    fetched: dict[str, array] = {}  # compact: the record must not weigh on the peak RSS measured
    original_on_batch = Intake._on_batch

    async def recording_on_batch(self, folder, info, headers, read_bodies):
        async def recorded(uids):
            fetched.setdefault(folder, array("L")).extend(uids)
            start = time.perf_counter()
            try:
                return await read_bodies(uids)
            finally:
                timers.add("bodies", time.perf_counter() - start, len(uids))
        return await original_on_batch(self, folder, info, headers, recorded)

    Intake._on_batch = recording_on_batch
    timers.wrap(Ingestor, "parse", "parse")
    timers.wrap(Ingestor, "stage", "commit")  # threading a batch, its rows kept for the flush
    timers.wrap(Ingestor, "flush", "commit")  # writing the staged batches
    worker_hwm: list[float] = []  # each ingest worker's peak, read before it is ended
    original_close = Worker.close

    def measured_close(self):
        if self.alive():
            worker_hwm.append(memory_mb("VmHWM", self.process.pid))
        original_close(self)

    Worker.close = measured_close
    # The time the main process waits for the worker (headers handed over ahead, bodies).
    timers.wrap(IngestPool, "header_readings", "wait_headers")
    original_body_readings = IngestPool.body_readings

    def timed_body_readings(self, items, **options):
        later = original_body_readings(self, items, **options)
        if later is None:
            return None

        def wait():
            start = time.perf_counter()
            try:
                return later.wait()
            finally:
                timers.add("wait_bodies", time.perf_counter() - start, 1)
        return Later(later.uids, wait)

    IngestPool.body_readings = timed_body_readings

    service = Service(config)
    service.ctx = open_context(config)
    service.ingestor = Ingestor(service.ctx.settings, service.ctx.store, get_logger("ingest"))
    start_rss = memory_mb("VmRSS")
    cpu0, wall0, children0 = cpu_seconds(), time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    written0 = disk_writes()
    delivered = await service.catch_up_once()
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds() - cpu0
    pool = service.ingest_pool
    if pool is not None:
        pool.close()  # ended by each catch-up already: then this does nothing
    result = {
        "seconds": wall, "cpu_seconds": cpu, "delivered": delivered,
        "stored": service.ctx.store.message_count(),
        "quarantined": service.ctx.store.quarantine_count(), "triaged": service.ctx.store.triage_count(),
        "parse_seconds": timers.seconds.get("parse", 0.0), "commit_seconds": timers.seconds.get("commit", 0.0),
        "bodies_seconds": timers.seconds.get("bodies", 0.0), "bodies": timers.counts.get("bodies", 0),
        "start_rss_mb": start_rss, "hwm_mb": memory_mb("VmHWM"), "rss_mb": memory_mb("VmRSS"),
        # The ingest worker (flows/ingest_pool.py): its CPU (reaped children), peak RSS, how many
        # were started, and how long the main process waited for its readings.
        "worker_cpu_seconds": cpu_seconds(resource.RUSAGE_CHILDREN) - children0,
        "worker_hwm_mb": max(worker_hwm, default=0.0), "workers_started": pool.started if pool else 0,
        "main_share_at_end": pool.main_share if pool else 0.0,
        "header_batches_in_worker": pool.header_batches if pool else 0,
        "header_halves_taken_back": pool.stolen_halves if pool else 0,
        "wait_headers_seconds": timers.seconds.get("wait_headers", 0.0),
        "wait_bodies_seconds": timers.seconds.get("wait_bodies", 0.0),
        # What the backfill had the kernel write to disk (the database, its WAL and checkpoints).
        "written_mb": (disk_writes() - written0) / 1e6,
    }
    if run_cycle:
        wall0 = time.perf_counter()
        await service.cycle()
        result["cycle_seconds"] = time.perf_counter() - wall0
        result["hwm_after_cycle_mb"] = memory_mb("VmHWM")
    service.ctx.store.close()
    if bodies_out:
        Path(bodies_out).write_text(json.dumps({folder: list(uids) for folder, uids in fetched.items()}))
    return result


def bare_ingest(host: str, port: int, user: str, password_file: str, since: str, bodies_in: str | None) -> dict:
    import imapclient

    from daemon.adapters.imap.connection import header_fields_item
    from daemon.core.mail import HEADER_FIELDS

    items = [header_fields_item(HEADER_FIELDS), "INTERNALDATE", "RFC822.SIZE"]
    bodies: dict[str, list[int]] = json.loads(Path(bodies_in).read_text()) if bodies_in else {}
    password = Path(password_file).read_text().strip()
    start_rss = memory_mb("VmRSS")
    cpu0, wall0 = cpu_seconds(), time.perf_counter()
    headers = fetched_bodies = 0
    for folder in ("INBOX", "Sent"):
        client = imapclient.IMAPClient(host, port=port, ssl=False, timeout=120)
        client.login(user, password)
        client.normalise_times = False
        client.enable("CONDSTORE")
        client.select_folder(folder, readonly=True)
        uids = sorted(client.search(["UID", "1:*", "SINCE", date.fromisoformat(since)]))
        wanted = set(bodies.get(folder, ()))
        for start in range(0, len(uids), BATCH):
            chunk = uids[start:start + BATCH]
            headers += len(client.fetch(chunk, items))
            body_uids = [uid for uid in chunk if uid in wanted]
            if body_uids:
                fetched_bodies += len(client.fetch(body_uids, ["BODY.PEEK[]<0.10000000>", "RFC822.SIZE"]))
        client.logout()
    return {"seconds": time.perf_counter() - wall0, "cpu_seconds": cpu_seconds() - cpu0, "delivered": headers,
            "bodies": fetched_bodies, "start_rss_mb": start_rss, "hwm_mb": memory_mb("VmHWM")}


def main(argv: list[str]) -> None:
    task, *args = argv
    options = {a.split("=", 1)[0]: a.split("=", 1)[1] if "=" in a else "" for a in args if a.startswith("--")}
    positional = [a for a in args if not a.startswith("--")]
    if task == "parting-ingest":
        result = asyncio.run(parting_ingest(positional[0], "--cycle" in options, options.get("--bodies-out")))
    elif task == "bare-ingest":
        host, port, user, password_file, since = positional
        result = bare_ingest(host, int(port), user, password_file, since, options.get("--bodies-in"))
    else:
        raise SystemExit(f"unknown task {task!r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
