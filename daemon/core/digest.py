"""SHA-256 for the reports' few small digests, without loading OpenSSL.

Rules of this module:
- `sha256` is hashlib's sha256 in all but its origin: CPython's own built-in implementation
  (`_sha256` in 3.11, `_sha2` from 3.12), falling back to hashlib where the interpreter has
  neither. Same digests (tests/core/test_digest.py holds them to hashlib's).
- Only for small inputs on a report's path (a policy's hash, the holidays package's identity):
  importing hashlib loads OpenSSL, ~4 ms of a report that needs no other hash, while OpenSSL's
  SHA-256 is the faster one for large inputs (the ingest's content hashes keep hashlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["sha256"]


def _built_in_sha256() -> Any:
    for name in ("_sha256", "_sha2"):  # by name: which one exists depends on the Python version
        try:
            return importlib.import_module(name).sha256
        except (ImportError, AttributeError):
            continue
    import hashlib

    return hashlib.sha256


if TYPE_CHECKING:
    from hashlib import sha256
else:
    sha256 = _built_in_sha256()
