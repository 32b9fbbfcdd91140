"""`parting status` shows a stored verdict only while it provably still holds (core/basis.py), and
evaluates afresh every client whose verdict may have moved: the report is the same either way.

The verdicts are recorded as the daemon records them (flows/evaluate.record_verdict with the basis
evaluate_all computes); the report is compared with a status that evaluates every client afresh.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import SimpleNamespace

import pytest
from test_cli_reports import NOW, as_json, row, setup  # noqa: F401 - setup is a fixture

from daemon.adapters.settings.load import load_settings
from daemon.adapters.store import Store
from daemon.core.basis import basis_of
from daemon.core.policy import evaluate
from daemon.core.workhours import Calendar
from daemon.flows.evaluate import record_verdict
from daemon.queries import common, status


def remember_verdicts(setup: dict, at) -> None:  # noqa: F811
    """Every client evaluated at `at` and its verdict recorded with its basis, as evaluate_all does."""
    settings = load_settings(setup["config"])
    with Store.open(setup["database"]) as store:
        ctx = SimpleNamespace(store=store, settings=settings, log=logging.getLogger("test"))
        paused = store.paused_clients()
        previous, bases = store.latest_verdicts(), store.verdict_bases()
        for client in settings.clients:
            history = store.envelopes(client.id)
            verdict = evaluate(client, history, settings.policy_for(client),
                               Calendar(settings.working_hours, client.timezone), at, paused=client.id in paused)
            basis = basis_of(client, settings.working_hours, verdict.policy_hash, client.id in paused, history, at)
            record_verdict(ctx, client, verdict, previous.get(client.id), at, basis=basis,
                           basis_before=bases.get(client.id))


@pytest.fixture
def evaluated(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the clients status evaluated afresh (rather than showing a stored verdict)."""
    seen: list[str] = []
    original = common.verdicts_at

    def counting(settings, histories, paused, at, only=None):
        seen.extend(client.id for client in (settings.clients if only is None else only))
        return original(settings, histories, paused, at, only)

    monkeypatch.setattr(status, "verdicts_at", counting)
    return seen


def both(setup: dict, now, evaluated: list[str]) -> tuple[dict, list[str]]:  # noqa: F811
    """status reusing what holds (and which clients it evaluated), after checking it against a fresh one."""
    evaluated.clear()
    reused = status.status(setup["config"], now=now)
    fresh_for = list(evaluated)
    assert reused == status.status(setup["config"], now=now, reuse=False)
    return reused, fresh_for


def test_a_verdict_that_still_holds_is_shown_without_evaluating(setup, evaluated) -> None:  # noqa: F811
    remember_verdicts(setup, NOW)
    report, fresh = both(setup, NOW + timedelta(minutes=5), evaluated)
    assert fresh == []
    assert {c["id"]: c["state"] for c in report["clients"]}["acme"] == "unresponsive"


def test_without_stored_verdicts_every_client_is_evaluated(setup, evaluated) -> None:  # noqa: F811
    _, fresh = both(setup, NOW, evaluated)
    assert set(fresh) == {c.id for c in load_settings(setup["config"]).clients}


def test_new_mail_of_a_client_makes_only_that_client_evaluated(setup, evaluated) -> None:  # noqa: F811
    remember_verdicts(setup, NOW)
    with Store.open(setup["database"]) as store:
        reply = row("acme-r1", "in", NOW - timedelta(hours=1), "Re: Meeting date?", client="acme")
        store.add_messages([(reply, "INBOX", 1, 99)])
    report, fresh = both(setup, NOW + timedelta(minutes=5), evaluated)
    assert fresh == ["acme"]
    assert {c["id"]: c["state"] for c in report["clients"]}["acme"] != "unresponsive"


def test_mail_dated_after_the_evaluation_is_seen_once_its_time_comes(setup, evaluated) -> None:  # noqa: F811
    with Store.open(setup["database"]) as store:
        later = row("acme-r2", "in", NOW + timedelta(hours=2), "Re: Meeting date?", client="acme")
        store.add_messages([(later, "INBOX", 1, 98)])
    remember_verdicts(setup, NOW)
    _, fresh = both(setup, NOW + timedelta(hours=1), evaluated)
    assert "acme" not in fresh
    _, fresh = both(setup, NOW + timedelta(hours=3), evaluated)
    assert "acme" in fresh


def test_a_pause_a_policy_change_or_a_clock_before_the_evaluation_is_evaluated(setup, evaluated) -> None:  # noqa: F811
    remember_verdicts(setup, NOW)
    with Store.open(setup["database"]) as store:
        store.set_paused("globex", True, NOW)
    _, fresh = both(setup, NOW + timedelta(minutes=5), evaluated)
    assert fresh == ["globex"]
    _, fresh = both(setup, NOW - timedelta(days=1), evaluated)
    assert len(fresh) == len(load_settings(setup["config"]).clients)
    config = setup["config"]
    config.write_text(config.read_text().replace("ignored_after: 3 business days", "ignored_after: 4 business days"))
    _, fresh = both(setup, NOW + timedelta(minutes=5), evaluated)
    assert "acme" in fresh


def test_at_its_next_due_a_verdict_is_evaluated_again(setup, evaluated) -> None:  # noqa: F811
    remember_verdicts(setup, NOW)
    with Store.open(setup["database"]) as store:
        stored = store.latest_verdicts()
    due = {client: verdict["next_due"] for client, verdict in stored.items() if verdict["next_due"]}
    assert due, "some verdict should name a next_due"
    client, moment = min(due.items(), key=lambda item: item[1])
    from datetime import datetime

    _, fresh = both(setup, datetime.fromisoformat(moment), evaluated)
    assert client in fresh


def test_the_command_shows_the_stored_verdicts_that_hold(setup, evaluated) -> None:  # noqa: F811
    remember_verdicts(setup, NOW)  # the command's clock (PARTING_TEST_CLOCK_FILE) says NOW
    shown = as_json(setup, "status")
    assert evaluated == []
    assert shown == status.status(setup["config"], now=NOW, reuse=False)
