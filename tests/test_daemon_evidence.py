"""Provider evidence through the running daemon: an approval stamped by Exchange Online as coming
from inside the tenant is accepted with microsoft365 and names its evidence; elsewhere it is refused."""

from __future__ import annotations

import json
import logging

import mailfactory as mf
import pytest
import yaml
from harness import RunningDaemon, utc, write_config
from test_daemon_review import by_kind, seed_history

from daemon.queries.casefile.build import build_casefile

pytestmark = pytest.mark.integration

START = utc(2026, 11, 2, 10, 0)
INTERNAL = {"X-MS-Exchange-Organization-AuthAs": "Internal",
            "X-MS-Exchange-Organization-AuthSource": "AM0PR01MB1234.eurprd01.prod.exchangelabs.com",
            "X-MS-Exchange-Organization-AuthMechanism": "04"}


def config_for(tmp_path, dovecot, sink, provider: str):
    path = write_config(tmp_path / "parting", dovecot, sink)
    tree = yaml.safe_load(path.read_text())
    tree["mailbox"]["provider"] = provider
    tree["mailbox"]["imap"]["folders"] = {"sent": "auto"}  # the preset's "Sent Items" is not on this Dovecot
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


async def owner_answers_with_exchange_stamps(daemon, dovecot, sink):
    review = await daemon.wait_for(lambda: by_kind(sink, "review", "alice@example.com"), timeout=20,
                                   what="the owner's review email")
    raw, _ = mf.staff_reply("alice@example.com", review[0].data, "APPROVE", daemon.clock.now(), "alice-ms",
                            auth=None, headers=INTERNAL)
    mf.deliver(dovecot, "INBOX", raw)


async def test_microsoft365_accepts_exchange_internal_and_names_it(tmp_path, dovecot, smtp_sink, caplog):
    caplog.set_level(logging.INFO)
    seed_history(dovecot)
    async with RunningDaemon(config_for(tmp_path, dovecot, smtp_sink, "microsoft365"), START) as daemon:
        await owner_answers_with_exchange_stamps(daemon, dovecot, smtp_sink)
        [decision] = await daemon.wait_for(lambda: daemon.store.events(kinds=["review_decision"]), timeout=20,
                                           what="the owner's decision")
        auth = decision.data["authentication"]
        assert auth["ok"] and auth["method"] == "exchange-authas"
        assert auth["reason"].startswith("X-MS-Exchange-Organization-AuthAs: Internal (AuthSource AM0PR01MB1234")
        casefile = build_casefile(daemon.store, daemon.service.ctx.settings, "acme", now=daemon.clock.now())
        assert "X-MS-Exchange-Organization-AuthAs: Internal" in json.dumps(casefile)
    accepted = [r.getMessage() for r in caplog.records if r.getMessage().startswith("reply accepted:")]
    assert accepted and "authenticated by X-MS-Exchange-Organization-AuthAs: Internal" in accepted[0]


async def test_generic_refuses_the_same_exchange_stamps(tmp_path, dovecot, smtp_sink):
    seed_history(dovecot)
    async with RunningDaemon(config_for(tmp_path, dovecot, smtp_sink, "generic"), START) as daemon:
        await owner_answers_with_exchange_stamps(daemon, dovecot, smtp_sink)
        [refused] = await daemon.wait_for(lambda: daemon.store.events(kinds=["reply_refused"]), timeout=20,
                                          what="the refusal")
        assert refused.data["code"] == "not_authenticated"
        assert "trusted only with mailbox.provider: microsoft365" in refused.data["reason"]
