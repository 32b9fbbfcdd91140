"""Backfill throughput: parting's real ingest path against a bare imapclient loop, same mailbox.

parting's run includes its ingest worker process (flows/ingest_pool.py): its CPU, peak RSS and the
time the main process waited for it are in each run's record and printed with it. So is the CPU
Dovecot spent serving each run (all its processes: `dovecot_cpu_seconds`), so that what the
three use together can be set against what the machine's cores give in the run's wall time.

Each measured run is a fresh interpreter (bench/worker.py). Before the timed runs one bare pass
reads the whole mailbox, so Dovecot has opened every file and cached the header fields: all
timed runs, parting's and the bare loop's alike, then see the same warm server. That first,
cold pass is reported too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import ROOT, unit_environment
from bench.fixture import Mailbox


def run_worker(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.worker", *args], capture_output=True, text=True, cwd=ROOT,
                          env=unit_environment())
    if done.returncode != 0:
        raise RuntimeError(f"bench.worker {args[0]} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def group_cpu_seconds(group: int) -> float:
    """User + system CPU of every process in the process group `group` (the Dovecot master's),
    with that of the children each has reaped: a Dovecot imap process serves one login and exits,
    and its time is then its parent's `cutime`. Read from /proc; 0.0 where there is none."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it ended meanwhile
            continue
        if int(fields[2]) == group:  # fields after the name: state, ppid, pgrp, ...
            ticks += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def with_dovecot_cpu(box: Mailbox, *args: str) -> dict:
    """run_worker, its record with the CPU Dovecot spent meanwhile (`dovecot_cpu_seconds`)."""
    group = box.dovecot.pid
    before = group_cpu_seconds(group) if group else 0.0
    result = run_worker(*args)
    result["dovecot_cpu_seconds"] = group_cpu_seconds(group) - before if group else 0.0
    return result


def bare_args(box: Mailbox) -> list[str]:
    dovecot = box.dovecot
    return ["bare-ingest", dovecot.host, str(dovecot.port), dovecot.user, str(box.workdir / "imap-password"),
            box.since]


def ingest_runs(box: Mailbox, repeat: int, log=print) -> dict:
    """`repeat` rounds of (parting, bare, bare with parting's bodies); the last config is kept
    (its database holds the whole mailbox) for the latency benchmark."""
    cold = run_worker(*bare_args(box))
    log(f"  cold bare pass: {cold['seconds']:.2f} s")
    runs = []
    config = None
    for number in range(repeat):
        config = box.config()
        bodies = config.parent / "bodies.json"
        parting = with_dovecot_cpu(box, "parting-ingest", str(config), "--cycle", f"--bodies-out={bodies}")
        if parting["stored"] + parting["quarantined"] != box.messages:
            raise RuntimeError(f"parting stored {parting['stored']} and quarantined {parting['quarantined']} "
                               f"of {box.messages} messages")
        bare = with_dovecot_cpu(box, *bare_args(box))
        with_bodies = run_worker(*bare_args(box), f"--bodies-in={bodies}")
        runs.append({"parting": parting, "bare": bare, "bare_bodies": with_bodies})
        log(f"  run {number + 1}/{repeat}: parting {parting['seconds']:.2f} s, bare {bare['seconds']:.2f} s, "
            f"bare+bodies {with_bodies['seconds']:.2f} s, peak RSS {parting['hwm_mb']:.0f} MB")
        log(f"    CPU: main process {parting['cpu_seconds']:.2f} s, ingest worker {parting['worker_cpu_seconds']:.2f} s"
            f" (peak RSS {parting['worker_hwm_mb']:.0f} MB, {parting['workers_started']} started); the main process"
            f" waited {parting['wait_headers_seconds']:.2f} s for its header readings and"
            f" {parting['wait_bodies_seconds']:.2f} s for its body readings; Dovecot"
            f" {parting['dovecot_cpu_seconds']:.2f} s (bare loop: {bare['dovecot_cpu_seconds']:.2f} s)")
    return {"cold": cold, "runs": runs, "config": str(config), "timings": box.timings}
