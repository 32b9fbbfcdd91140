"""The two-person rule: whether a version's endorsements let it be sent.

Rules of this module:
- A version is sendable when (1) its owner endorsed it, (2) `approvals_required` (at least 1)
  other people endorsed it and (3) someone other than its writer endorsed it. Writing a
  version endorses it; so does APPROVE.
- Apart from the state machine in release.py (which re-exports these names): `parting drafts`
  says what each draft in review still misses without creating the machine's dataclasses.
- Pure: no IO and no clock.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Endorsement:
    person: str  # Person.id
    role: str  # "owner" or "reviewer"
    how: Literal["wrote", "approved"]


@dataclass(frozen=True)
class Sendability:
    ok: bool
    missing: str  # in words, what is still needed; "" when ok


def sendable(
    endorsements: Collection[Endorsement], *, owner: str, writer: str, approvals_required: int,
    version: int | None = None,
) -> Sendability:
    """Whether the version these endorsements are of may be sent (the rule at the top)."""
    if approvals_required < 1:
        raise ValueError("approvals_required must be at least 1: nobody sends their own words unread")
    endorsers = {e.person for e in endorsements}
    label = "this version" if version is None else f"version {version}"
    missing = []
    if owner not in endorsers:
        missing.append(f"the owner {owner} has not endorsed {label}")
    others = len(endorsers - {owner})
    if others < approvals_required:
        needed = approvals_required - others
        missing.append(f"{needed} more endorsement{'s' if needed > 1 else ''} of {label} from"
                       f" someone other than the owner {owner}")
    if not endorsers - {writer}:
        missing.append(f"someone other than its writer {writer} must endorse {label}")
    return Sendability(not missing, "; ".join(missing))
