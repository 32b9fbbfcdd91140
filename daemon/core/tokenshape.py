"""The shape of a review token in a plus-address, apart from core/review.py.

Rules of this module:
- Constants only: the settings check of the mailbox address needs the longest local part that
  can still carry "+r-<token>", and importing core/review.py for it would bring the reply parser
  into every command (tests/test_command_imports.py). core/review.py takes these from here.
"""

from __future__ import annotations

TOKEN_PREFIX = "r-"  # in the plus-address: office+r-<token>@example.com
MAC_LENGTH = 26
# A token is a 16-character id (10 random bytes), "-" and the MAC; the longest mailbox local part
# that can still carry "+r-<token>" within RFC 5321's 64 characters.
TOKEN_LENGTH = 16 + 1 + MAC_LENGTH
MAX_MAILBOX_LOCAL = 64 - len("+") - len(TOKEN_PREFIX) - TOKEN_LENGTH
