"""The crash matrix: the whole practice (release_scenario.py) with the daemon SIGKILLed at every
named crash point along it, three times each (twice where the scenario passes a point only
twice), restarted after every kill until the scenario completes.

Each chain kills at one named point three times: a point that the scenario passes again after a
restart is simply armed again (the next passage: the next ladder step, the next reply, the same
step retried after its transaction was rolled back); a point a mail passes once is aimed at
three different mails (name.kind). After every kill the database and the SMTP sink are audited
(faultkit.audit); at the end the whole outcome is: one release at the server, every staff reply
handled exactly once, one approval each from Alice and Bob, every event present, and every row
a person had to decide on visible in `parting outbox --json`.
"""

from __future__ import annotations

import pytest
from faultkit import DaemonProcess
from harness import seed_history, write_config
from release_scenario import REVIEW_SETTINGS, T0, ReleaseScenario

pytestmark = pytest.mark.integration

MAILS = ("review", "release", "reminder-phone_call")  # three different mails through the sender
CHAINS = {
    # the backfill, then the batches that bring Alice's and Bob's replies
    "after_ingest_commit": ["after_ingest_commit", *["after_ingest_commit.staff_reply"] * 2],
    # acme's and globex's first verdicts, the only verdict changes of the scenario: clients are
    # judged once both folders are read, so no verdict from half the history comes and goes
    "after_verdict_event": ["after_verdict_event"] * 2,
    "after_ladder_step": ["after_ladder_step"] * 3,
    "after_draft_created": ["after_draft_created"] * 3,  # inside the ladder step's transaction
    # inside the caller's transaction: Alice asked (rolled back with the ladder step), then Bob
    # asked (rolled back with Alice's approval) twice
    "after_review_requested": ["after_review_requested", "after_review_requested:2", "after_review_requested"],
    "after_reply_committed": ["after_reply_committed"] * 3,  # Alice's APPROVE, Bob's APPROVE, DONE
    "after_reminder_queued": ["after_reminder_queued"] * 3,  # Bob's reminder, the call, the retrospective
    "after_release_queued": ["after_release_queued"] * 3,  # inside Bob's approval's transaction
    "after_claim": ["after_claim.release"] * 3,  # uncertain, resent by the operator, claimed again
    "after_smtp_before_sent": [f"after_smtp_before_sent.{kind}" for kind in MAILS],
    "after_copy_before_sent": [f"after_copy_before_sent.{kind}" for kind in MAILS],
    "after_sent": [f"after_sent.{kind}" for kind in MAILS],
    "after_deadline_set": ["after_deadline_set"] * 3,  # inside `sent`: recovered from Sent each time
}


@pytest.mark.parametrize("point", list(CHAINS))
def test_killed_three_times_at_a_crash_point_the_scenario_completes_with_nothing_lost_or_doubled(
        point, tmp_path, dovecot, smtp_sink, record):
    config = write_config(tmp_path / "parting", dovecot, smtp_sink, review=REVIEW_SETTINGS)
    seed_history(dovecot)
    daemon = DaemonProcess(config, tmp_path, T0)
    try:
        outcome = ReleaseScenario(daemon, dovecot, smtp_sink, CHAINS[point]).run()
    finally:
        daemon.kill()
    notes = [f"{daemon.starts} starts, {outcome.seconds:.0f} s"]
    if outcome.decisions:
        notes.append("operator: " + ", ".join(f"{kind} {action}" for _, kind, action in outcome.decisions))
    record("crash matrix", point, len(outcome.kills), losses=outcome.audits.losses,
           duplicates=outcome.audits.duplicates, notes="; ".join([*notes, *outcome.findings]))
    assert outcome.kills == CHAINS[point], f"the point fired only {len(outcome.kills)} times: {outcome.kills}"
    assert not outcome.audits.problems, "\n".join(outcome.audits.problems)
