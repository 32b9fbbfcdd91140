"""SHA-256 and BLAKE2b for the reports' few small digests, without loading OpenSSL.

Rules of this module:
- `sha256` and `blake2b` are hashlib's in all but their origin: CPython's own built-in
  implementations (`_sha256` in 3.11, `_sha2` from 3.12; `_blake2`), falling back to hashlib
  where the interpreter has none. Same digests (tests/core/test_digest.py holds them to hashlib's).
- Only for small inputs on a report's path (a policy's hash, the holidays package's identity,
  the settings cache's keys):
  importing hashlib loads OpenSSL, ~4 ms of a report that needs no other hash, while OpenSSL's
  SHA-256 is the faster one for large inputs (the ingest's content hashes keep hashlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["blake2b", "sha256"]


def _built_in(modules: tuple[str, ...], name: str) -> Any:
    for module in modules:  # by name: which one exists depends on the Python version
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    import hashlib

    return getattr(hashlib, name)


if TYPE_CHECKING:
    from hashlib import blake2b, sha256
else:
    sha256 = _built_in(("_sha256", "_sha2"), "sha256")
    blake2b = _built_in(("_blake2",), "blake2b")
