"""When the daemon judges clients: only once every folder was read since start, and on a quiet
tick only the clients whose verdict said it could change by then (through Dovecot)."""

from __future__ import annotations

import asyncio

import mailfactory as mf
import pytest
from harness import RunningDaemon, utc, write_config

from daemon.runtime.intake import Intake

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)  # Monday


@pytest.fixture
def config(tmp_path, dovecot, smtp_sink):
    return write_config(tmp_path / "parting", dovecot, smtp_sink)


def judged(daemon) -> list:
    return daemon.store.events(kinds=["verdict", "ladder_step"])


async def test_clients_are_judged_only_after_every_folder_was_read(config, dovecot, monkeypatch) -> None:
    raw, request = mf.request("hank@globex.example", "Invoice address?", utc(2026, 10, 12, 10), "globex-req")
    mf.deliver(dovecot, "Sent", raw)
    raw, _ = mf.reply("hank@globex.example", request, "Invoice address?", utc(2026, 10, 13, 9), "globex-rep")
    mf.deliver(dovecot, "INBOX", raw)
    inbox_may_go = asyncio.Event()
    original = Intake._on_batch

    async def inbox_held_back(self, folder, info, headers, read_bodies):
        if folder == "INBOX":
            await inbox_may_go.wait()
        await original(self, folder, info, headers, read_bodies)

    monkeypatch.setattr(Intake, "_on_batch", inbox_held_back)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: daemon.store.message_count() == 1, what="the Sent folder read")
        await daemon.advance(minutes=1)  # cycles run while only our request is known
        assert judged(daemon) == []  # else globex, who answered, would look as if ignoring us
        assert daemon.store.rows() == []
        assert daemon.service.status_line().endswith("; clients not judged until inbox is read")
        inbox_may_go.set()
        await daemon.wait_for(lambda: judged(daemon), what="the first verdict")
        await daemon.settle()
        assert "not judged" not in daemon.service.status_line()
        assert [e.kind for e in judged(daemon)] == ["verdict", "verdict"]  # no ladder step for anyone
        [verdict] = [e for e in judged(daemon) if e.client_id == "globex"]
        assert (verdict.data["state"], verdict.data["ladder"]) == ("active", [])
        assert daemon.store.rows() == []  # no nudge about a client who answered


async def test_a_quiet_tick_judges_only_clients_whose_moment_came(config, dovecot, monkeypatch) -> None:
    # acme's request of Wednesday 10:30 falls due (3 business days) on Monday at 10:30, half an hour
    # after START; globex's was answered long ago.
    raw, request = mf.request("jane@acme.example", "Signed form?", utc(2026, 10, 28, 10, 30), "acme-req")
    mf.deliver(dovecot, "Sent", raw)
    raw, request = mf.request("hank@globex.example", "Invoice address?", utc(2026, 10, 12, 10), "globex-req")
    mf.deliver(dovecot, "Sent", raw)
    raw, _ = mf.reply("hank@globex.example", request, "Invoice address?", utc(2026, 10, 13, 9), "globex-rep")
    mf.deliver(dovecot, "INBOX", raw)
    evaluated: list[str] = []
    import daemon.flows.evaluate as evaluate_module
    real_evaluate = evaluate_module.evaluate

    def recording(client, *args, **kwargs):
        evaluated.append(client.id)
        return real_evaluate(client, *args, **kwargs)

    monkeypatch.setattr(evaluate_module, "evaluate", recording)
    async with RunningDaemon(config, START) as daemon:
        await daemon.wait_for(lambda: len(judged(daemon)) == 2, what="both clients judged")
        [acme] = [e for e in judged(daemon) if e.client_id == "acme"]
        assert acme.data["state"] == "awaiting"
        assert daemon.store.latest_verdicts()["acme"]["next_due"] == "2026-11-02T10:30:00+00:00"
        evaluated.clear()
        await daemon.advance(minutes=20)
        assert evaluated == []  # nothing new, nobody's moment: a quiet tick reads no history
        await daemon.advance(minutes=15)  # past acme's moment
        assert set(evaluated) == {"acme"}
        states = [e.data["state"] for e in judged(daemon) if e.client_id == "acme" and e.kind == "verdict"]
        assert states == ["awaiting", "overdue"]
