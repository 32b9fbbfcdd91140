"""Named crash points for the fault tests: the daemon kills itself with SIGKILL at one of them.

Enabled only when PARTING_CRASH_AT names a point (tests set it on a daemon subprocess); the
point fires at its Nth passage with PARTING_CRASH_AT=name:N. Outside tests this is a dictionary
look-up and nothing else. With PARTING_CRASH_GROUP=1 the whole process group is killed at once
(the host dies: a Litestream parent replicating the database dies with the daemon, and its
last seconds of writes never reach the replica).

The points, in the order a release passes them (tests/faults/ kills the daemon at each);
"inside" marks a point inside an open transaction, where a crash must leave no trace:
  runtime/intake.py    after_ingest_commit (.staff_reply: a batch that brought review replies)
  flows/evaluate.py    after_verdict_event, after_ladder_step
  flows/drafts.py      after_draft_created (inside), after_review_requested (inside),
                       after_release_queued (inside)
  flows/replies.py     after_reply_committed
  flows/reminders.py,  after_reminder_queued (a review reminder; a deadline's reminder)
  flows/deadlines.py   after_deadline_set (inside the `sent` transaction)
  flows/sending.py     after_claim, after_smtp_before_sent, after_copy_before_sent, after_sent,
                       each also as name.kind (after_sent.release aims at the release)
"""

from __future__ import annotations

import os
import signal
import sys

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    wanted = os.environ.get("PARTING_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        sys.stdout.flush()
        sys.stderr.flush()
        if os.environ.get("PARTING_CRASH_GROUP") == "1":
            os.killpg(os.getpgid(0), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)
