"""What a bounce says about one message of ours and one recipient.

Rules of this module:
- A frozen dataclass only, exported by core/model.py as before, which imports this module only
  when it is first asked for: the listings never need it, and a verdict only on a history with
  a bounce in it (apart from ParsedMessage, which no report needs).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeliveryFailure:
    """What a bounce says: our message `original_message_id` did not reach `recipient`, and why."""

    original_message_id: str
    recipient: str  # lower-case addr-spec
    status: str  # the DSN Status ("5.1.1"), "" when the bounce gave none
    reason: str  # the receiving server's words (Diagnostic-Code), else the status
