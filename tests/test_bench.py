"""The benchmark command still runs end to end and reports every figure the benchmarks issue names.

Tiny sizes and no timing assertions: the figures themselves are measured by `python -m bench`
(bench/README.md); this only proves that the command, its private Dovecot and its JSON work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_the_bench_reports_every_figure_in_a_table_and_as_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--messages", "300,600", "--clients", "20", "--repeat", "2",
         "--replies", "3", "--command-repeat", "2", "--idle-seconds", "2", "--policy-clients", "40", "--per-client", "20",
         "--cache", str(tmp_path / "cache"), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(out.read_text())
    figures = {(f["group"], f["name"].strip()): f for f in data["figures"]}
    wanted = [
        ("seed 300 msgs", "maildir files, then start + EXAMINE"),
        ("ingest 300 msgs", "parting backfill (watchers + on_batch)"),
        ("ingest 300 msgs", "bare imapclient loop, same headers"),
        ("ingest 300 msgs", "parting / bare"),
        ("ingest 600 msgs", "parting / bare"),
        ("ingest 600 msgs", "peak RSS after backfill (VmHWM)"),
        ("ingest 600 msgs", "written to disk (database, WAL, checkpoints)"),
        ("ingest 600 msgs", "its ingest worker's CPU"),
        ("ingest 600 msgs", "Dovecot's CPU meanwhile (bare loop's beside it)"),
        ("ingest 600 msgs", f"the {os.cpu_count()} cores' busy share (the three's CPU / cores x wall)"),
        ("ingest linearity", "time per message, 600 vs 300"),
        ("commands, 300 msgs stored", "parting status (new process, wall)"),
        ("commands, 300 msgs stored", "parting explain CLIENT (new process, wall)"),
        ("commands, 300 msgs stored", "parting drafts (new process, wall)"),
        ("commands, 300 msgs stored", "parting outbox (new process, wall)"),
        ("commands, 600 msgs stored", "parting deadlines (new process, wall)"),
        ("commands, 600 msgs stored", "python -c pass (new process, wall)"),
        ("reply latency (3 replies/run)", "parting: APPEND -> committed, p99"),
        ("reply latency (3 replies/run)", "bare IDLE client: APPEND -> EXISTS, p50"),
        ("reply latency (3 replies/run)", "parting - bare (same reply), p50"),
        ("idle daemon", "CPU per 5 minutes, 2 s window scaled"),
        ("policy 40 clients x 20", "core.policy.evaluate, every client"),
        ("policy 40 clients x 20", "`parting simulate` (CLI, wall)"),
    ]
    assert [key for key in wanted if key not in figures] == []
    for key in wanted:
        figure = figures[key]
        assert figure["runs"] and figure["min"] <= figure["median"] <= figure["max"], key
    assert len(figures[("ingest 300 msgs", "parting / bare")]["runs"]) == 2  # --repeat is honoured
    assert figures[("ingest 300 msgs", "parting / bare")]["target"] == ">= 50% (stretch 90%)"
    assert figures[("ingest linearity", "time per message, 600 vs 300")]["target"] == "<= 1.1 x"
    assert figures[("policy 40 clients x 20", "`parting simulate` (CLI, wall)")]["target"] == "<= 3 s"
    assert data["machine"]["nproc"] >= 1 and data["parameters"]["sizes"] == [300, 600]
    table = done.stdout
    assert "median" in table and "min" in table and "max" in table and "parting / bare" in table


def test_the_end_of_a_cycle_is_found_even_when_the_commit_is_seen_after_it(tmp_path: Path) -> None:
    """The cause of "the daemon sent no STATUS= within 60 s" under load: the cycle's STATUS came
    before our poller saw the commit, and only STATUS after the poller's time was accepted."""
    import socket
    import time

    from bench.latency import Notifications, end_of_woken_cycle

    notifications = Notifications(tmp_path / "notify.sock")
    try:
        appended = time.perf_counter()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as daemon:
            daemon.sendto(b"STATUS=watching 2 clients", str(notifications.path))
        status_at = notifications.received.queue[0][0] if _arrived(notifications) else None
        assert status_at is not None
        committed_seen = status_at + 0.05  # a loaded poller saw the row after the cycle ended
        assert end_of_woken_cycle(notifications, appended, timeout=5) == status_at
        notifications.received.put((status_at, "STATUS=watching 2 clients"))
        with pytest.raises(TimeoutError):  # what the bench did before: wait past the poller's time
            notifications.wait("STATUS=", timeout=0.5, after=committed_seen)
    finally:
        notifications.close()


def _arrived(notifications, seconds: float = 5.0) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while notifications.received.empty() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not notifications.received.empty()


def test_a_process_groups_cpu_counts_the_children_it_has_reaped() -> None:
    """Dovecot serves each login in a process of its own that exits at logout: its CPU is then
    its parent's (cutime), and the bench's figure for Dovecot must still count it."""
    from bench.ingest_bench import group_cpu_seconds

    burn = "import time; end = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    leader = subprocess.Popen(["sh", "-c", f'"{sys.executable}" -c "{burn}"; echo done; exec sleep 30'],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert leader.stdout is not None and leader.stdout.readline() == "done\n"  # the child is reaped
        assert group_cpu_seconds(leader.pid) >= 0.25
        assert group_cpu_seconds(leader.pid + 10_000_000) == 0.0  # no such group
    finally:
        leader.kill()
        leader.wait()
