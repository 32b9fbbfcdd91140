"""Authentication-Results (RFC 8601): did our own mail server find the sender authentic?

Rules of this module:
- Our MTA adds its Authentication-Results header at the top, and is expected to remove any
  header that claims its authserv-id from incoming mail. Anything below ours came from outside
  and can be forged, so only the topmost header with the configured authserv-id counts; every
  other one is ignored, whatever it says.
- Within that header, as RFC 8601 reads: any failing result of a method (FAILING: fail,
  softfail, permerror, temperror, policy, hardfail) overrides every pass of the same method, so
  the order of results never matters.
- Authentic means dmarc=pass whose header.from equals the From domain (a dmarc=pass without
  header.from says nothing about this From), or dkim=pass with a signing domain aligned with the
  From domain, or spf=pass with an aligned MAIL FROM domain. An explicit dmarc=fail wins over
  aligned DKIM or SPF: the domain owner's policy said no.
- Alignment is relaxed (RFC 7489 3.1: the same organizational domain), and the organizational
  domain comes from the Public Suffix List, which this module does not hold: the shell passes
  `organizational_domain` (adapters/publicsuffix.py, from the maintained `publicsuffixlist`
  package). Without it, alignment is strict: the domains must be equal.
- Parsing is tolerant (comments, quoted strings, folded whitespace, missing version).
  `parse_authentication_results` raises AuthResultsError and nothing else, whatever the input;
  `check_authentication` never raises: an unreadable header is a refusal with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "AuthResult",
    "AuthResults",
    "AuthResultsError",
    "AuthVerdict",
    "aligned",
    "check_authentication",
    "parse_authentication_results",
]

# Results that make a method fail whatever else the header says about it (RFC 8601 2.7).
FAILING = frozenset({"fail", "softfail", "permerror", "temperror", "policy", "hardfail"})
_VERSION = re.compile(r"[0-9]{1,9}")  # ASCII digits only: "²".isdigit() is true, int() refuses it

OrganizationalDomain = Callable[[str], str]


class AuthResultsError(ValueError):
    """The header value has no readable authserv-id."""


class AuthResult(NamedTuple):
    """One result: method ("dkim"), result ("pass") and properties ({"header.d": "example.com"})."""

    method: str
    result: str
    properties: dict[str, str]


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    results: tuple[AuthResult, ...]
    version: int | None = None
    problems: tuple[str, ...] = ()  # parts of the header that could not be read


@dataclass(frozen=True)
class AuthVerdict:
    ok: bool
    reason: str
    method: str | None = None  # "dmarc", "dkim" or "spf" when ok


def parse_authentication_results(value: str) -> AuthResults:
    """Parse one Authentication-Results header value; AuthResultsError if it has no authserv-id
    (or cannot be read at all): no other exception leaves this function."""
    try:
        return _parse(value)
    except AuthResultsError:
        raise
    except Exception as problem:  # why: the input is attacker-controlled; its own error only
        raise AuthResultsError(f"unreadable Authentication-Results {str(value)[:80]!r}: {problem}") from None


def _parse(value: str) -> AuthResults:
    text = value.strip()
    if text.lower().startswith("authentication-results:"):
        text = text.split(":", 1)[1]
    groups: list[list[tuple[str, str]]] = [[]]
    for kind, token in _tokens(text):
        if kind == ";":
            groups.append([])
        else:
            groups[-1].append((kind, token))
    head, *resinfos = groups
    if not head or head[0][0] not in ("atom", "string") or not head[0][1]:
        raise AuthResultsError(f"no authserv-id in Authentication-Results {value[:80]!r}")
    authserv_id = head[0][1]
    version = None
    problems: list[str] = []
    extra = head[1:]
    if extra and extra[0][0] == "atom" and _VERSION.fullmatch(extra[0][1]):
        version = int(extra[0][1])
        extra = extra[1:]
    if extra:
        problems.append(f"unexpected {' '.join(t for _, t in extra)!r} after the authserv-id")
    results = []
    for group in resinfos:
        if not group or (len(group) == 1 and group[0][1].lower() == "none"):
            continue
        result = _resinfo(group)
        if result is None:
            problems.append(f"unreadable result {' '.join(t for _, t in group)[:80]!r}")
        else:
            results.append(result)
    return AuthResults(authserv_id, tuple(results), version, tuple(problems))


def _tokens(text: str) -> list[tuple[str, str]]:
    """Atoms, quoted strings, ";" and "="; comments and whitespace dropped."""
    tokens: list[tuple[str, str]] = []
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "(":
            depth = 0
            while index < length:
                if text[index] == "\\":
                    index += 1
                elif text[index] == "(":
                    depth += 1
                elif text[index] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                index += 1
            index += 1
        elif char == '"':
            index += 1
            chars = []
            while index < length and text[index] != '"':
                if text[index] == "\\" and index + 1 < length:
                    index += 1
                chars.append(text[index])
                index += 1
            tokens.append(("string", "".join(chars)))
            index += 1
        elif char in ";=":
            tokens.append((char, char))
            index += 1
        else:
            # A value (after "=") may itself contain "=", as base64 in header.b does.
            stops = ';("' if tokens and tokens[-1][0] == "=" else ';=("'
            start = index
            while index < length and not text[index].isspace() and text[index] not in stops:
                index += 1
            tokens.append(("atom", text[start:index]))
    return tokens


def _resinfo(group: list[tuple[str, str]]) -> AuthResult | None:
    if len(group) < 3 or group[0][0] != "atom" or group[1][0] != "=" or group[2][0] == "=":
        return None
    method = group[0][1].split("/", 1)[0].lower()
    properties: dict[str, str] = {}
    rest = group[3:]
    while rest:
        if len(rest) < 3 or rest[0][0] != "atom" or rest[1][0] != "=" or rest[2][0] == "=":
            return None
        properties[rest[0][1].lower()] = rest[2][1]
        rest = rest[3:]
    return AuthResult(method, group[2][1].lower(), properties)


# --------------------------------------------------------------------------------------------


def aligned(domain: str, from_domain: str, organizational_domain: OrganizationalDomain | None = None) -> bool:
    """Relaxed alignment: both domains have the same organizational domain; strict (equal
    domains) when no `organizational_domain` is given."""
    domain, from_domain = _bare(domain), _bare(from_domain)
    if not domain or not from_domain:
        return False
    if domain == from_domain:
        return True
    if organizational_domain is None:
        return False
    try:
        return _bare(organizational_domain(domain)) == _bare(organizational_domain(from_domain))
    except Exception:  # why: an odd domain the list cannot read aligns with nothing
        return False


def _bare(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _domain_of(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().strip("<>").rstrip(".").lower()


def check_authentication(
    headers: Sequence[str], *, authserv_id: str, from_domain: str,
    organizational_domain: OrganizationalDomain | None = None,
) -> AuthVerdict:
    """Whether the topmost Authentication-Results from `authserv_id` shows an authentic sender."""
    ours = authserv_id.strip().lower()
    from_domain = _bare(from_domain)
    if not ours:
        return AuthVerdict(False, "no authserv_id is configured, so no header can be trusted")
    for value in headers:
        try:
            parsed = parse_authentication_results(value)
        except AuthResultsError:
            continue  # no authserv-id at all, so it cannot be ours
        if parsed.authserv_id.lower() == ours:
            return _judge(parsed, authserv_id, from_domain, organizational_domain)
    return AuthVerdict(False, f"no Authentication-Results from {authserv_id}")


def _judge(parsed: AuthResults, authserv_id: str, from_domain: str,
           organizational_domain: OrganizationalDomain | None) -> AuthVerdict:
    if not from_domain:
        return AuthVerdict(False, "the sender address has no domain")
    failed = {method: result for method, result, _ in reversed(parsed.results) if result in FAILING}
    refusals: list[str] = []
    if any(method == "dmarc" and result == "fail" for method, result, _ in parsed.results):
        return AuthVerdict(False, "dmarc=fail")
    for method, result, properties in parsed.results:
        if method != "dmarc":
            continue
        checked = _domain_of(properties.get("header.from", ""))
        if result == "pass" and "dmarc" in failed:
            refusals.append(f"dmarc=pass overridden by dmarc={failed['dmarc']}")
        elif result == "pass" and checked == from_domain:
            return AuthVerdict(True, "dmarc=pass", "dmarc")
        elif result == "pass" and not checked:
            refusals.append("dmarc=pass without header.from")
        elif result == "pass":
            refusals.append(f"dmarc=pass for {checked}, not {from_domain}")
        else:
            refusals.append(f"dmarc={result}")
    for method, result, properties in parsed.results:
        if method not in ("dkim", "spf"):
            continue
        if method == "dkim":
            domain = _domain_of(properties.get("header.d") or properties.get("header.i") or "")
        else:
            domain = _domain_of(properties.get("smtp.mailfrom", ""))
        if result != "pass":
            refusals.append(f"{method}={result}")
        elif method in failed:
            refusals.append(f"{method}=pass overridden by {method}={failed[method]}")
        elif not domain:
            refusals.append(f"{method}=pass without a domain to align")
        elif aligned(domain, from_domain, organizational_domain):
            return AuthVerdict(True, f"{method}=pass for {domain}", method)
        else:
            refusals.append(f"{method}=pass for {domain} not aligned with {from_domain}")
    if not refusals:
        refusals.append(f"no dmarc, dkim or spf result from {authserv_id}")
    refusals.extend(parsed.problems)
    return AuthVerdict(False, "; ".join(refusals))
