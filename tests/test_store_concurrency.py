"""The store under crashes and under two processes writing at once.

The writers are real subprocesses: SIGKILL and SQLite's file locking are what is being tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from daemon.adapters.store import Store

REPO = Path(__file__).resolve().parents[1]
BATCH = 50

CRASHING_WRITER = textwrap.dedent("""
    import sys
    from datetime import datetime, timedelta, timezone
    from daemon.adapters.store import MessageRow, Store

    path, first_batch = sys.argv[1], int(sys.argv[2])
    store = Store.open(path)
    t0 = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
    batch = first_batch
    while True:
        rows = [
            (MessageRow(message_id=f"b{batch}-{k}@x", client_id="acme", thread_id=f"t{batch}",
                        direction="in", at=t0 + timedelta(seconds=batch), subject="s" * 200,
                        from_addr="bob@acme.example", norm_subject="s"), "INBOX", 1, batch * 1000 + k)
            for k in range(%(batch)d)
        ]
        with store.transaction():
            store.add_messages(rows)
            event_id = store.append_event("message_quarantined", at=t0, data={"uid": batch})
        print(event_id, batch, flush=True)
        batch += 1
""".replace("%(batch)d", str(BATCH)))


def run_until_killed(path: Path, first_batch: int, commits_before_kill: int) -> list[tuple[int, int]]:
    """Start the writer, SIGKILL it while it writes; every (event id, batch) it reported committed."""
    child = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(path), str(first_batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )
    reported = []
    try:
        for line in child.stdout:
            event_id, batch = map(int, line.split())
            reported.append((event_id, batch))
            if len(reported) == commits_before_kill:
                os.kill(child.pid, signal.SIGKILL)  # it is already inside the next transaction
                break
        child.wait(timeout=30)
        rest = child.stdout.read()
        errors = child.stderr.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, errors
    # A line the child printed completely before it died was committed too.
    reported += [tuple(map(int, line.split())) for line in rest.splitlines() if len(line.split()) == 2]
    return reported


def test_sigkill_mid_write_loses_no_committed_row_and_no_batch_is_half_written(tmp_path: Path) -> None:
    path = tmp_path / "parting.db"
    Store.open(path).close()
    reported: list[tuple[int, int]] = []
    for round_number in range(3):
        # batch numbers never repeat across rounds, even for a batch committed but not reported
        reported += run_until_killed(path, round_number * 100_000, commits_before_kill=40)

        with Store.open(path) as reopened:
            assert reopened.integrity_check() == "ok"
            events = {event.id: event.data["uid"] for event in reopened.events(kinds=["message_quarantined"])}
            for event_id, batch in reported:
                assert events.get(event_id) == batch, f"committed event {event_id} lost"
            # each batch was one transaction: all of its messages or none
            assert reopened.message_count() == BATCH * len(events)
            for batch in events.values():
                assert reopened.message(f"b{batch}-{BATCH - 1}@x") is not None


CONCURRENT_WRITER = textwrap.dedent("""
    import json, sys, time
    from datetime import datetime, timezone
    from daemon.adapters.store import Store

    name, path, start_at, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    now = datetime(2026, 11, 2, 10, 0, tzinfo=timezone.utc)
    while time.time() < start_at:  # line both writers up on the same instant
        time.sleep(0.001)
    store = Store.open(path)  # both may be the first to open the new file
    events, enqueued, claimed = [], [], []
    stop = time.monotonic() + seconds
    i = 0
    while time.monotonic() < stop:
        events.append(store.append_event("folder_resync", at=now, data={"folder": name, "old_uidvalidity": i}))
        message_id = f"<{name}-{i}@firm>"
        store.enqueue(message_id, "nudge", "office@firm.example", ["c@acme.example"], b"raw", now)
        enqueued.append(message_id)
        row = store.claim_next(now)
        if row is not None:
            claimed.append(row.id)
            if i % 2:
                store.mark_sent(row.id, "250 ok", now)
        i += 1
    print(json.dumps({"events": events, "enqueued": enqueued, "claimed": claimed}))
""")


def test_two_processes_write_and_claim_at_once_without_locks_or_double_claims(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "parting.db"
    path.parent.mkdir()
    start_at = time.time() + 1.5
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_WRITER, name, str(path), str(start_at), "3"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )
        for name in ("a", "b")
    ]
    reports = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0 and err == "", err
        reports.append(json.loads(out))

    claimed = [row_id for report in reports for row_id in report["claimed"]]
    assert len(claimed) == len(set(claimed)), "a row was claimed twice"
    assert all(report["claimed"] for report in reports), "both writers should have claimed rows"
    with Store.open(path) as store:
        assert store.integrity_check() == "ok"
        stored_events = {event.id for event in store.events(kinds=["folder_resync"])}
        assert stored_events == {e for report in reports for e in report["events"]}
        rows = store.rows()
        assert {row.message_id for row in rows} == {m for report in reports for m in report["enqueued"]}
        by_id = {row.id: row for row in rows}
        for row in rows:
            assert row.attempts == (1 if row.id in claimed else 0)
            assert (row.state != "queued") == (row.id in claimed)
        assert all(by_id[row_id].state in ("sending", "sent") for row_id in claimed)
