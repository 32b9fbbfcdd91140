"""The daemon as systemd runs it: a subprocess with NOTIFY_SOCKET, signals, reload, shutdown."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from harness import START, daemon_command, seed_history, write_config
from servers import scratch_dir

from daemon.runtime.clock import write_clock_file

pytestmark = pytest.mark.integration


class NotifyListener:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        self.dir = scratch_dir("parting-notify-")
        self.path = str(self.dir / "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[str] = []

    def collect(self, until, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                pass
            if until(self.messages):
                return self.messages
        raise AssertionError(f"notify messages so far: {self.messages}")

    def close(self) -> None:
        self.sock.close()


def start_daemon(config: Path, tmp_path: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    clock = tmp_path / "clock"
    write_clock_file(clock, START)
    environment = {**os.environ, **(env or {})}
    log = open(tmp_path / "daemon.log", "ab")
    return subprocess.Popen(daemon_command(config, "--tick", "0.2", *extra, clock_file=clock), env=environment, stdout=log,
                            stderr=subprocess.STDOUT)


def catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler of its own for SIGTERM (the SigCgt mask in /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next((line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), "0")
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


def events(database: Path, kind: str) -> list[tuple]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            return db.execute("SELECT id, client_id, data, policy_hash FROM events WHERE kind = ? ORDER BY id",
                              [kind]).fetchall()
    except sqlite3.OperationalError:  # created but not yet migrated
        return []


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


def test_notify_ready_status_watchdog_and_stopping(config, tmp_path):
    listener = NotifyListener()
    try:
        process = start_daemon(config, tmp_path, env={"NOTIFY_SOCKET": listener.path, "WATCHDOG_USEC": "1000000"})
        listener.collect(lambda m: any("READY=1" in x for x in m), timeout=30)
        listener.collect(lambda m: sum("WATCHDOG=1" in x for x in m) >= 3, timeout=10)
        assert any(x.startswith("STATUS=") or "\nSTATUS=" in x for x in listener.messages)
        assert any("clients" in x for x in listener.messages if "STATUS=" in x)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        listener.collect(lambda m: any("STOPPING=1" in x for x in m), timeout=5)
        assert "WARNING service: TEST CLOCK: time is read from" in (tmp_path / "daemon.log").read_text(), \
            "a daemon on the test clock says so in its log"
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()


def test_sighup_applies_a_valid_policy_and_keeps_the_old_one_when_broken(config, tmp_path, dovecot):
    seed_history(dovecot)
    original = yaml.safe_load(config.read_text())
    lenient = {**original, "policy": {**original["policy"], "ignored_after": "60 days"}}
    config.write_text(yaml.safe_dump(lenient, sort_keys=False))
    database = Path(original["state"]["database"])
    process = start_daemon(config, tmp_path)
    try:
        wait_until(lambda: [r for r in events(database, "verdict") if r[1] == "acme" and '"awaiting"' in r[2]], 30,
                   "acme awaiting: under a 60-day window nothing is ignored yet")
        wait_until(lambda: [r for r in events(database, "verdict") if r[1] == "globex"], 10,
                   "globex judged too: the first evaluation is over")
        before = events(database, "verdict")
        first = {row[1]: row for row in before}

        config.write_text("policy: [this is: not valid\n")
        process.send_signal(signal.SIGHUP)
        time.sleep(1.5)
        assert process.poll() is None, "a broken file never stops the daemon"
        assert len(events(database, "verdict")) == len(before), "the old policy still rules"
        assert b"reload refused" in (tmp_path / "daemon.log").read_bytes()

        config.write_text(yaml.safe_dump(original, sort_keys=False))
        process.send_signal(signal.SIGHUP)
        changed = wait_until(lambda: [r for r in events(database, "verdict") if r[1] == "acme" and r[0] > first["acme"][0]],
                             20, "a new verdict under the stricter policy")
        assert '"unresponsive"' in changed[-1][2]
        assert changed[-1][3] != first["acme"][3], "the verdict records the new policy's hash"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def test_sigterm_during_a_stalled_send_exits_in_time_and_leaves_the_row_recoverable(config, tmp_path, dovecot, smtp_sink):
    seed_history(dovecot)
    smtp_sink.stall(120, times=100)
    database = Path(yaml.safe_load(config.read_text())["state"]["database"])

    def sending():
        try:
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                return db.execute("SELECT id FROM outbox WHERE state = 'sending'").fetchall()
        except sqlite3.OperationalError:  # created but not yet migrated
            return []

    process = start_daemon(config, tmp_path, "--grace", "2")
    try:
        wait_until(lambda: database.exists() and sending(), 30, "a send in flight")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert b"a send was cut off at shutdown" in (tmp_path / "daemon.log").read_bytes(), \
            "the stalled send was abandoned after the 2 s grace, not waited out"
    finally:
        if process.poll() is None:
            process.kill()
    [(row_id,)] = sending()
    smtp_sink.reset_faults()
    out = subprocess.run(daemon_command(config, "--once", clock_file=tmp_path / "clock"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        state = db.execute("SELECT state FROM outbox WHERE id = ?", [row_id]).fetchone()[0]
    assert state == "uncertain", "not in Sent after the crash: a person decides, nothing is resent"


def test_json_logs_are_one_event_per_line_without_secrets_or_bodies(config, tmp_path, dovecot, smtp_sink):
    import json

    seed_history(dovecot)
    process = start_daemon(config, tmp_path, "--log-format", "json")
    try:
        smtp_sink.wait_for(3, timeout=30)  # the owner's notices and review email went out
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    lines = (tmp_path / "daemon.log").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert all({"time", "level", "component", "message"} <= set(e) for e in events)
    assert any(e.get("client") == "acme" for e in events), "the ids that matter travel with the event"
    assert {e["component"] for e in events} >= {"service", "flow"}
    text = "\n".join(lines)
    assert dovecot.password not in text
    from harness import TOKEN_KEY

    assert TOKEN_KEY not in text
    assert "Could you send us the signed form" not in text, "no message body in the logs"


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5, 1.0])
def test_sigterm_while_starting_is_a_clean_stop(config, tmp_path, delay):
    """A supervisor may stop the daemon at any moment of its start-up: never a kill by default action.

    The moments count from when the interpreter has begun running parting's code (its SIGTERM
    handler is installed first thing): before that, no program can catch a signal, and under load
    the interpreter's own start takes longer than the shortest delay."""
    process = start_daemon(config, tmp_path)
    wait_until(lambda: catches_sigterm(process.pid) or process.poll() is not None, 30,
               "parting's early SIGTERM handler")
    time.sleep(delay)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, (tmp_path / "daemon.log").read_text()[-2000:]


def test_a_schema_upgrade_at_start_asks_systemd_for_time_step_by_step(config, tmp_path, monkeypatch):
    """Some upgrades rewrite tables (a minute or more for millions of messages), before READY: each
    step extends the start timeout (EXTEND_TIMEOUT_USEC), says so in STATUS and in the log, so
    systemd's 90 s default never cuts the start short into a restart loop."""
    import daemon.adapters.store as store_package
    from daemon.adapters.store import Store
    from daemon.runtime.service import UPGRADE_STEP_SECONDS

    database = Path(yaml.safe_load(config.read_text())["state"]["database"])
    old = store_package.SCHEMA_VERSION - 2
    monkeypatch.setattr(store_package, "MIGRATIONS", store_package.MIGRATIONS[:old])
    monkeypatch.setattr(store_package, "SCHEMA_VERSION", old)
    with Store.open(database) as store, store.transaction():
        store.conn.execute(
            "INSERT INTO messages (message_id, client_id, thread_id, direction, at, norm_subject)"
            " VALUES ('m1@acme.example', 'acme', 't1', 'in', '2026-03-02T09:00:00+00:00', 'keys')")
    monkeypatch.undo()
    listener = NotifyListener()
    try:
        process = start_daemon(config, tmp_path, env={"NOTIFY_SOCKET": listener.path})
        listener.collect(lambda m: any("READY=1" in x for x in m), timeout=30)
        ready = next(n for n, x in enumerate(listener.messages) if "READY=1" in x)
        steps = [x for x in listener.messages[:ready] if "EXTEND_TIMEOUT_USEC=" in x]
        assert len(steps) == 2, listener.messages
        for number, message in enumerate(steps):
            fields = dict(line.split("=", 1) for line in message.splitlines())
            assert int(fields["EXTEND_TIMEOUT_USEC"]) == UPGRADE_STEP_SECONDS * 1_000_000 == 900_000_000  # README
            assert fields["STATUS"] == f"upgrading the database (schema {old + number} -> {old + number + 1})"
        log = (tmp_path / "daemon.log").read_text()
        assert f"upgrading the database from schema version {old} to {old + 1}" in log
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            assert db.execute("SELECT version FROM schema_version").fetchone()[0] == old + 2
            assert db.execute("SELECT client_id, thread_id FROM latest_client_by_thread").fetchall() == [("acme", "t1")]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()


def test_a_current_or_new_database_starts_without_asking_for_time(config, tmp_path):
    listener = NotifyListener()
    try:
        for _ in range(2):  # a new database, then the same one, current
            process = start_daemon(config, tmp_path, env={"NOTIFY_SOCKET": listener.path})
            listener.collect(lambda m: sum("READY=1" in x for x in m) >= 1, timeout=30)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert not [x for x in listener.messages if "EXTEND_TIMEOUT_USEC" in x]
            listener.messages.clear()
    finally:
        listener.close()
        if process.poll() is None:
            process.kill()
