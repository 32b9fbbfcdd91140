"""The names of a release's states, apart from the state machine in release.py.

Rules of this module:
- Only constants: `parting status` counts the drafts still in review without importing the
  machine (whose ten dataclasses are a tenth of that command's start-up); release.py re-exports them.
"""

from __future__ import annotations

from typing import Literal

DraftState = Literal["owner_review", "second_review", "sendable", "held", "rejected", "sent"]
FINAL_STATES = ("rejected", "sent")
# The states in which a token's subject still takes replies. A REJECT, STOP or HOLD may still
# stop a sendable draft during send_delay; a held draft still records approvals.
LIVE_STATES = {"draft": ("owner_review", "second_review", "sendable", "held"), "deadline": ("open",),
               "notice": ("open",), "triage": ("open",)}  # owner notices (ANSWERED) and triage items (#20)
# Outbox states in which a release may still leave (a person may resend a failed row).
LIVE_ROW_STATES = ("queued", "sending", "uncertain", "failed")
RELEASE_KINDS = ("release", "nudge")
