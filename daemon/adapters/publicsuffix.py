"""The Public Suffix List, for DMARC-style relaxed alignment (core/authres.py takes the function).

Rules of this module:
- The list comes from the `publicsuffixlist` package: pure Python, no dependencies, and it ships
  the list itself, re-released whenever the list changes (its version carries the list's date),
  so a dependency upgrade is the update. Nothing is fetched over the network at run time
  (tldextract, the alternative, fetches a fresh list by default and needs requests).
- Both sections of the list count (ICANN and private): two customers of one hosting provider
  (a.github.io, b.github.io) are two organizations, never aligned with each other.
- A domain that is itself a public suffix, or that the list does not know (a single label such
  as "localhost"), is its own organizational domain.
"""

from __future__ import annotations

from functools import cache

from publicsuffixlist import PublicSuffixList

__all__ = ["organizational_domain"]


@cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()  # the bundled copy; reading it takes a moment, so once per process


def organizational_domain(domain: str) -> str:
    """The registered domain of `domain` (mail.example.co.uk -> example.co.uk), lower-case."""
    bare = domain.strip().rstrip(".").lower()
    return _list().privatesuffix(bare) or bare
