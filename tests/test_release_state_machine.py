"""A stateful Hypothesis test of the whole release machinery (issue #17).

The real Service cycle runs over a real SQLite store in a temp dir (tests/release_world.py), with
a ManualClock and a fake mailer. Hypothesis plays everyone: staff answer any review or notice
email they ever received (live or stale token) with any command or garbage; time moves
(reminders, offers to the next reviewer, HOLD expiry, send_delay); the client writes back; the
mail server fails; the operator resends, confirms or cancels outbox rows and pauses or resumes
the client; the process crashes and restarts (store reopened, crash recovery run).

After every step:
- at most one release was sent per client episode;
- a sent release's exact text and frozen envelope were endorsed by the owner and by at least
  `approvals_required` others, one of them not its writer;
- nothing was sent after a REJECT, HOLD, STOP or EDIT on its draft that arrived before it left.

Profiles: the default explores a little on every run; CI=true (the `ci` profile) explores a few
thousand steps (max_examples x stateful_step_count).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from email import message_from_bytes
from email.policy import default
from pathlib import Path

from harness import utc
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from release_world import PEOPLE, World, seed_unresponsive_acme

from daemon.adapters import smtp as mailer
from daemon.adapters.store import StoreError
from daemon.core import release as machine
from daemon.queries.common import ReportError

T0 = utc(2026, 11, 2, 10, 0)  # a Monday
STOPS = ("reject", "hold", "stop", "edit")
COMMANDS = ["APPROVE", "Approve.\n\nLooks right.", "EDIT\nDear Jane,\n\nWe are ending our work together.\n\nAlice",
            "REJECT she called this morning", "HOLD 2 days", "HOLD 1 day", "STOP", "What is this?", ""]
FAILURES = {"uncertain": mailer.UncertainDelivery, "temporary": mailer.TemporaryFailure,
            "permanent": lambda reason: mailer.PermanentFailure(550, reason)}

settings.register_profile("ci", max_examples=120, stateful_step_count=30, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, stateful_step_count=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") == "true" else "dev")
STEPS = Counter[str]()


class ReleaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="parting-release-machine-"))
        self.world = World(self.folder / "parting", T0,
                           review={"reviewers": ["bob", "carol"], "remind_after": "1 hour", "token_ttl": "1 day"})
        seed_unresponsive_acme(self.world, T0)
        self.world.cycle()

    @initialize(approvals=st.sampled_from([2, 0, 1]))
    def start_somewhere_in_the_review(self, approvals: int) -> None:
        """Most runs start with the release already sendable, so that the few steps a run has go
        into what can still happen to it."""
        for _ in range(approvals):
            self.the_next_reader_approves()

    def teardown(self) -> None:
        STEPS["releases sent"] += len(self.world.releases())
        for draft in self.world.store.drafts():
            STEPS[f"draft ends {draft.state}"] += 1
        STEPS["examples"] += 1
        self.world.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    # ------------------------------------------------------------------ the people

    @rule(person=st.sampled_from(["alice", "bob", "carol"]), pick=st.integers(0, 50),
          text=st.sampled_from(COMMANDS))
    def staff_answer(self, person: str, pick: int, text: str) -> None:
        """Anyone answers any review or notice email they ever received."""
        received = [s for s in self.world.to(person) if s.kind in ("review", "last-chance")]
        if not received:
            return
        STEPS["staff_answer"] += 1
        self.world.reply(person, received[-1 - pick % len(received)] if pick < 25 else received[pick % len(received)],
                         text)

    @rule()
    def the_next_reader_approves(self) -> None:
        """The common case, made common: whoever was asked last approves the latest version."""
        asked = [s for s in self.world.sent if s.kind == "review"]
        if asked:
            STEPS["staff_answer"] += 1
            person = next(p for p, email in PEOPLE.items() if email in asked[-1].row.recipients)
            self.world.reply(person, asked[-1], "APPROVE")

    @rule(person=st.sampled_from(["bob", "alice", "carol"]),
          text=st.sampled_from(["STOP", "REJECT no", "HOLD 1 day", COMMANDS[2]]))
    def someone_says_stop(self, person: str, text: str) -> None:
        """Someone answers the latest email parting sent them with a stop (or an edit); a few
        minutes pass, and then the send moment."""
        received = [s for s in self.world.to(person) if s.kind in ("review", "last-chance")]
        if received:
            STEPS["staff_answer"] += 1
            self.world.advance(minutes=3)
            self.world.reply(person, received[-1], text)
            self.world.advance(minutes=11)

    @rule(chance=st.integers(0, 5))
    def the_client_writes_back(self, chance: int) -> None:
        if chance < 5:
            return  # rarely: a reply from the client ends the episode, and the draft with it
        STEPS["client"] += 1
        self.world.client_writes("Re: Signed form 3?", "Sorry, here it is.\n")
        self.world.cycle()

    @rule(delta=st.sampled_from([{"minutes": 11}, {"minutes": 1}, {"minutes": 6}, {"hours": 2},
                                 {"hours": 20}, {"days": 1}, {"days": 3}]))
    def time_passes(self, delta: dict) -> None:
        STEPS["time"] += 1
        self.world.advance(**delta)

    @rule()
    def the_send_moment_passes(self) -> None:
        STEPS["time"] += 1
        self.world.advance(minutes=11)

    @rule(kind=st.sampled_from(sorted(FAILURES)))
    def the_server_fails_next(self, kind: str) -> None:
        STEPS["failure"] += 1
        self.world.fail_next_send = FAILURES[kind]

    # ------------------------------------------------------------------ the operator and the process

    @rule(action=st.sampled_from(["resend", "confirm", "cancel"]), pick=st.integers(0, 10))
    def the_operator_decides(self, action: str, pick: int) -> None:
        rows = [r for r in self.world.store.rows(["uncertain", "failed", "queued"])]
        if not rows:
            return
        STEPS["operator"] += 1
        try:
            self.world.operator(action, rows[pick % len(rows)].id)
        except (ReportError, StoreError):
            pass  # refused with its reason: that is an outcome, not a failure
        self.world.cycle()

    @rule(paused=st.booleans(), chance=st.integers(0, 2))
    def pause_or_resume(self, paused: bool, chance: int) -> None:
        if chance < 2:
            return
        STEPS["pause"] += 1
        self.world.pause("acme", paused)
        self.world.cycle()

    @rule(chance=st.integers(0, 2))
    def crash_and_restart(self, chance: int) -> None:
        if chance < 2:
            return
        STEPS["crash"] += 1
        self.world.crash_and_restart()
        self.world.cycle()

    # ------------------------------------------------------------------ the promises

    def _sent_releases(self) -> list:
        return [(s, s.row) for s in self.world.releases()]  # the row as it was claimed

    @invariant()
    def at_most_one_release_per_client_episode(self) -> None:
        store = self.world.store
        episodes = Counter((s.row.client_id, store.draft(s.row.draft_id).episode) for s in self.world.releases())
        assert all(count == 1 for count in episodes.values()), episodes

    @invariant()
    def a_sent_release_was_endorsed_exactly_as_it_left(self) -> None:
        store = self.world.store
        required = self.world.ctx.settings.review.approvals_required
        for sent, row in self._sent_releases():
            draft = store.draft(row.draft_id)
            version = next(v for v in store.versions(draft.id) if v.version == row.draft_version)
            envelope = machine.Envelope.from_dict(draft.envelope)
            assert version.text_sha256 == machine.endorsed_hash(envelope, version.text)
            message = message_from_bytes(sent.row.raw, policy=default)
            assert message.get_body(("plain",)).get_content().replace("\r\n", "\n") == version.text
            assert (str(message["To"]), str(message["Subject"])) == (", ".join(envelope.to), envelope.subject)
            owner = self.world.ctx.settings.client(draft.client_id).owner
            endorsers = {e.person for e in store.endorsements(draft.id, version.version)}
            assert owner in endorsers
            assert len(endorsers - {owner}) >= required
            assert endorsers - {version.writer}

    @invariant()
    def nothing_leaves_after_a_stop_that_came_before_it(self) -> None:
        store = self.world.store
        events = store.events()
        for _sent, row in self._sent_releases():
            queued = next(e.id for e in events if e.kind == "release_queued" and row.message_id in e.message_ids)
            left = next(e.id for e in events if e.kind == "sent" and row.message_id in e.message_ids)
            stops = [e for e in events if e.draft_id == row.draft_id and queued < e.id < left
                     and ((e.kind == "review_decision" and e.data.get("command") in STOPS)
                          or e.kind in ("draft_suspend", "draft_withdraw"))]
            assert not stops, (row.message_id, [(e.data, e.at) for e in stops])


TestReleaseMachine = ReleaseMachine.TestCase


def test_report_how_many_steps_ran() -> None:
    """Not an assertion of speed: the step counts of this run, for the report (-s shows them)."""
    print("release machine:", dict(STEPS))
