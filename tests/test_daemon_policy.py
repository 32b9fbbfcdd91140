"""The policy over a real mailbox: verdicts from a seeded history, `explain`, and `simulate` that
moves the right clients and writes nothing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mailfactory as mf
import pytest
import yaml
from click.testing import CliRunner
from harness import CLIENTS, START, RunningDaemon, seed_history, utc, write_config

from daemon.cli import cli
from daemon.runtime.clock import write_clock_file

pytestmark = pytest.mark.integration

INITECH = {"id": "initech", "name": "Initech", "contact": "Bill Lumbergh", "addresses": ["bill@initech.example"],
           "domains": ["initech.example"], "owner": "alice", "policy": "patient"}


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink, clients=[*CLIENTS, INITECH],
                        extra={"policies": {"patient": {"ignored_after": "5 business days"}}})


def seed_initech(dovecot) -> str:
    """One request ignored for a week: overdue under the default policy, not yet under `patient`."""
    raw, mid = mf.request("bill@initech.example", "TPS report cover sheet?", utc(2026, 10, 26, 10), "initech-1")
    mf.deliver(dovecot, "Sent", raw)
    return mid


def run_cli(config: Path, clock: Path, *args: str):
    result = CliRunner().invoke(cli, ["--clock-file", str(clock), *args[:1], "--config", str(config), *args[1:]],
                                catch_exceptions=False)
    return result


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_verdicts_explain_and_simulate_through_a_real_mailbox(config, dovecot, tmp_path):
    mids = seed_history(dovecot)
    seed_initech(dovecot)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.latest_verdicts().get("acme", {}).get("state") == "unresponsive",
                              timeout=20, what="acme's verdict")
        verdicts = daemon.store.latest_verdicts()
        assert verdicts["globex"]["state"] == "active"
        assert verdicts["initech"]["state"] == "overdue", "the patient policy: 5 business days, 5 have passed"
        verdict_events = daemon.store.events(kinds=["verdict"], client_id="acme")
        assert verdict_events[-1].policy_hash == verdicts["acme"]["policy_hash"]
        assert {mids["acme1"].strip("<>"), mids["acme2"].strip("<>"), mids["acme3"].strip("<>")} <= set(
            verdict_events[-1].message_ids)
    database = Path(yaml.safe_load(config.read_text())["state"]["database"])
    clock = tmp_path / "clock"
    write_clock_file(clock, START)

    explained = run_cli(config, clock, "explain", "acme", "--json")
    assert explained.exit_code == 0, explained.output
    data = json.loads(explained.stdout)
    ignored = {hit["message_ids"][0] for hit in data["reasons"] if hit["rule"] == "request-ignored"}
    assert ignored == {mids[f"acme{n}"].strip("<>") for n in (1, 2, 3)}
    assert any(hit["rule"] == "auto-reply-ignored" and mids["ooo"].strip("<>") in hit["message_ids"]
               for hit in data["reasons"]), "the out-of-office is named and disregarded"
    human = run_cli(config, clock, "explain", "acme")
    assert "Signed form 1?" in human.output and "unresponsive" in human.output

    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(yaml.safe_dump({"policy": {"ignored_after": "1 business days",
                                                   "unresponsive": {"ignored_messages": 1}},
                                        "policies": {"patient": {"ignored_after": "1 business days",
                                                                 "unresponsive": {"ignored_messages": 1}}}}))
    looser = tmp_path / "looser.yaml"
    looser.write_text(yaml.safe_dump({"policy": {"ignored_after": "30 days"},
                                      "policies": {"patient": {"ignored_after": "30 days"}}}))
    before = digest(database)
    strict = json.loads(run_cli(config, clock, "simulate", "--policy", str(stricter), "--json").stdout)
    loose = json.loads(run_cli(config, clock, "simulate", "--policy", str(looser), "--json").stdout)
    assert digest(database) == before, "simulate writes nothing"

    assert {(c["client"], c["before"], c["after"]) for c in strict["changes"]} == {("initech", "overdue", "unresponsive")}
    assert {(c["client"], c["before"], c["after"]) for c in loose["changes"]} == {
        ("acme", "unresponsive", "awaiting"), ("initech", "overdue", "awaiting")}
    assert all(c["why"] for c in strict["changes"] + loose["changes"])
    assert strict["unchanged"] == 2 and loose["unchanged"] == 1
