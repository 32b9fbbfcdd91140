"""The policy at scale: 10,000 clients with 100 messages each.

- evaluate: core.policy.evaluate over synthetic Envelopes, one Calendar per time zone, in this
  process (only the loop over clients is timed).
- simulate: `parting simulate --policy stricter.yaml --at ... --json` in a subprocess, timed from
  start to exit (interpreter start, imports, loading the 10,000-client configuration, reading
  the store's 1,000,000 envelopes, two evaluations of every client). The store is generated
  directly (Store.add_messages of MessageRows) and kept in a cache folder between runs, since
  it takes longer to build than to read; its dates are fixed, so `--at` keeps it valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from bench import ROOT

AT = datetime(2026, 7, 1, 9, 30, tzinfo=UTC)  # every history lies before it
SPAN = timedelta(days=240)
ZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
STRICTER = {"policy": {"ignored_after": "2 business days",
                       "unresponsive": {"ignored_messages": 2, "within": "45 days", "or_silent_for": "14 days"}}}


def histories(clients: int, per_client: int, seed: int = 11):
    """{client id: [Envelope, ...]} with `per_client` messages each: requests (some with a
    question), real replies, out-of-office answers, now and then a bounce; the last weeks of a
    third of the clients go unanswered, so every state of the policy occurs."""
    from daemon.core.model import Envelope

    rng = random.Random(seed)
    result = {}
    start = AT - SPAN
    for index in range(clients):
        client_id = f"c{index:05d}"
        silent_from = AT - timedelta(days=rng.choice((3, 10, 25, 60))) if index % 3 == 0 else AT
        moment = start + timedelta(hours=rng.uniform(0, 48))
        step = SPAN / per_client
        envelopes = []
        thread = 0
        for number in range(per_client):
            moment += step * rng.uniform(0.5, 1.5)
            if moment >= AT:
                moment = AT - timedelta(minutes=per_client - number)
            out = number % 2 == 0 or moment >= silent_from
            if out:
                thread += 1
            kind = rng.random()
            envelopes.append(Envelope(
                message_id=f"{client_id}.{number}@bench.example", client_id=client_id,
                thread_id=f"t-{client_id}-{thread}", direction="out" if out else "in", at=moment,
                subject=f"Request {thread}" if out else f"Re: Request {thread}",
                from_addr="office@example.com" if out else f"person@{client_id}.example",
                auto_reply="Auto-Submitted: auto-replied" if not out and kind < 0.05 else None,
                bounce=not out and kind > 0.995, question=out and kind < 0.7, tagged=False))
        result[client_id] = envelopes
    return result


def client_entries(clients: int) -> list[dict]:
    return [{"id": f"c{i:05d}", "name": f"Client {i:05d} Ltd", "contact": "Pat Doe",
             "addresses": [f"person@c{i:05d}.example"], "domains": [f"c{i:05d}.example"],
             "owner": ("alice", "carol")[i % 2], "timezone": ZONES[i % len(ZONES)]} for i in range(clients)]


def evaluate_all(clients: int, per_client: int, repeat: int) -> list[dict]:
    """Seconds to evaluate every client, once per repeat (histories built once, untimed)."""
    from daemon.core.model import Client, HolidayCalendar, Policy, WorkingHours
    from daemon.core.policy import evaluate
    from daemon.core.workhours import Calendar

    data = histories(clients, per_client)
    hours = WorkingHours(timezone="Europe/London", holidays=HolidayCalendar(country="GB", subdivision="ENG"))
    people = [Client(id=e["id"], name=e["name"], contact=e["contact"], addresses=tuple(e["addresses"]),
                     domains=tuple(e["domains"]), owner=e["owner"], timezone=e["timezone"])
              for e in client_entries(clients)]
    policy = Policy()
    runs = []
    for _ in range(repeat):
        calendars = {zone: Calendar(hours, zone) for zone in ZONES}  # built inside: holidays count too
        states: dict[str, int] = {}
        start = time.perf_counter()
        for client in people:
            verdict = evaluate(client, data[client.id], policy, calendars[client.timezone], AT)
            states[verdict.state] = states.get(verdict.state, 0) + 1
        runs.append({"seconds": time.perf_counter() - start, "states": states})
    return runs


def simulate_store(cache: Path, clients: int, per_client: int) -> tuple[Path, float]:
    """A database with every client's history and a config naming every client; reused when cached.
    Returns the config's path and how long building took (0 when cached)."""
    from daemon.adapters.store import MessageRow, Store
    from daemon.adapters.store.schema import SCHEMA_VERSION

    key = hashlib.sha256(f"{clients}/{per_client}/{SCHEMA_VERSION}/{AT}/v1".encode()).hexdigest()[:12]
    folder = cache / f"simulate-{clients}x{per_client}-{key}"
    config = folder / "config.yaml"
    if config.exists():
        return config, 0.0
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    database = folder / "parting.db"
    database.unlink(missing_ok=True)
    store = Store.open(database)
    uid = 0
    with store.transaction():
        for client_id, envelopes in histories(clients, per_client).items():
            rows = []
            for env in envelopes:
                uid += 1
                rows.append((MessageRow(
                    message_id=env.message_id, client_id=client_id, thread_id=env.thread_id,
                    direction=env.direction, at=env.at, subject=env.subject, from_addr=env.from_addr,
                    to_addrs=(f"person@{client_id}.example",) if env.direction == "out" else ("office@example.com",),
                    norm_subject=env.subject.removeprefix("Re: ").casefold(), auto_reply=env.auto_reply,
                    bounce=env.bounce, question=env.question, size=4000, ingested_at=AT),
                    "Sent" if env.direction == "out" else "INBOX", 1, uid))
            store.add_messages(rows)
    store.close()
    secrets = folder / "token-key"
    secrets.write_text("k" * 48 + "\n")
    os.chmod(secrets, 0o600)
    (folder / "imap-password").write_text("unused\n")
    os.chmod(folder / "imap-password", 0o600)
    settings = {
        "company": {"name": "Example Ltd"},
        "mailbox": {"address": "office@example.com",
                    "imap": {"host": "127.0.0.1", "port": 1143, "security": "none",
                             "password_file": str(folder / "imap-password")},
                    "smtp": {"host": "127.0.0.1", "port": 1025, "security": "none"}},
        "state": {"database": str(database)},
        "people": [{"id": "alice", "name": "Alice Smith", "email": "alice@example.com"},
                   {"id": "bob", "name": "Bob Jones", "email": "bob@example.com"},
                   {"id": "carol", "name": "Carol White", "email": "carol@example.com"}],
        "clients": client_entries(clients),
        "working_hours": {"timezone": "Europe/London", "days": ["mon", "tue", "wed", "thu", "fri"],
                          "start": "09:00", "end": "17:30", "holidays": {"country": "GB", "subdivision": "ENG"}},
        "policy": {"expects_reply": "questions", "ignored_after": "3 business days",
                   "unresponsive": {"ignored_messages": 3, "within": "30 days", "or_silent_for": "21 days"}},
        "review": {"reviewers": ["bob"], "authserv_id": "mx.example.com",
                   "token_key_file": str(secrets)},
    }
    (folder / "stricter.yaml").write_text(yaml.safe_dump(STRICTER, sort_keys=False))
    temporary = folder / "config.yaml.new"
    temporary.write_text(yaml.safe_dump(settings, sort_keys=False))
    temporary.replace(config)  # last: its presence marks a complete cache entry
    return config, time.perf_counter() - start


def simulate_once(config: Path) -> dict:
    """Wall seconds of one `parting simulate` run, and what it reported."""
    command = [sys.executable, "-m", "daemon", "simulate", "--config", str(config),
               "--policy", str(config.parent / "stricter.yaml"), "--at", AT.strftime("%Y-%m-%d %H:%M"), "--json"]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"parting simulate failed ({done.returncode}):\n{done.stderr[-3000:]}")
    data = json.loads(done.stdout)
    # CPU (user + sys, the forked half included) says more than wall time on a shared machine.
    cpu = after.ru_utime + after.ru_stime - used.ru_utime - used.ru_stime
    return {"seconds": seconds, "cpu_seconds": cpu, "changes": len(data["changes"]), "unchanged": data["unchanged"]}


def history_part(cache: Path, clients: int = 200, per_client: int = 500, repeat: int = 5) -> dict:
    """What `parting status` and `parting explain` spend on histories, in this process: reading
    them from a store of clients x per_client messages (built as for simulate, cached) and judging
    every client (status) or the first one (explain). Process start, imports, settings and the
    other listings of status are left out: the commands bench times the whole command. Medians of
    `repeat` runs, wall and CPU seconds."""
    from statistics import median

    from daemon.adapters.settings.load import load_settings
    from daemon.core.policy import evaluate, explain, replies_read
    from daemon.core.workhours import Calendar
    from daemon.queries.common import store_of, stored_histories, verdicts_at

    config, _ = simulate_store(cache, clients, per_client)
    settings = load_settings(config)
    client = settings.clients[0]
    runs: dict[str, list[tuple[float, float]]] = {"status": [], "explain": []}
    for _ in range(repeat):
        with store_of(settings) as store:
            wall, cpu = time.perf_counter(), time.process_time()
            histories = stored_histories(store, AT, settings)
            store.last_sent([c.id for c in settings.clients], AT)
            verdicts_at(settings, histories, store.paused_clients(), AT)
            runs["status"].append((time.perf_counter() - wall, time.process_time() - cpu))
        with store_of(settings) as store:
            wall, cpu = time.perf_counter(), time.process_time()
            history = store.recent_histories({client.id: replies_read(settings.policy_for(client))}, AT)
            verdict = evaluate(client, history.get(client.id, []), settings.policy_for(client),
                               Calendar(settings.working_hours, client.timezone), AT)
            explain(verdict, client, client.timezone or settings.working_hours.timezone)
            runs["explain"].append((time.perf_counter() - wall, time.process_time() - cpu))
    return {name: {"wall": median(w for w, _ in done), "cpu": median(c for _, c in done)}
            for name, done in runs.items()}


if __name__ == "__main__":
    # python -m bench.policy_bench: the history part of status and explain on 100,000 messages
    print(json.dumps(history_part(Path.home() / ".cache" / "parting-bench"), indent=2))
