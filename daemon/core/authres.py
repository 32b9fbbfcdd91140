"""Authentication-Results (RFC 8601): did our own mail server find the sender authentic?

Rules of this module:
- Our MTA adds its Authentication-Results header at the top, and is expected to remove any
  header that claims its authserv-id from incoming mail. Anything below ours came from outside
  and can be forged, so only the topmost header with the configured authserv-id counts; every
  other one is ignored, whatever it says.
- Authentic means dmarc=pass, or dkim=pass with a signing domain aligned with the From domain,
  or spf=pass with an aligned MAIL FROM domain (relaxed alignment: same organizational domain).
  An explicit dmarc=fail wins over aligned DKIM or SPF: the domain owner's policy said no.
- Parsing is tolerant (comments, quoted strings, folded whitespace, missing version) and never
  raises from `check_authentication`: an unreadable header is a refusal with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "AuthResult",
    "AuthResults",
    "AuthResultsError",
    "AuthVerdict",
    "aligned",
    "check_authentication",
    "organizational_domain",
    "parse_authentication_results",
]

# Two-label public suffixes under which organizations register (co.uk, com.au...): a small,
# deliberate list instead of the whole Public Suffix List, enough for relaxed alignment here.
SHORT_PUBLIC_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk", "net.uk", "nhs.uk",
    "com.au", "net.au", "org.au", "edu.au", "gov.au", "asn.au", "id.au",
    "co.nz", "org.nz", "net.nz", "ac.nz", "govt.nz",
    "co.jp", "ne.jp", "or.jp", "ac.jp", "go.jp",
    "co.za", "org.za", "com.br", "net.br", "org.br", "com.mx", "com.ar", "com.tr", "com.cn",
    "net.cn", "org.cn", "co.in", "net.in", "org.in", "co.il", "co.kr", "com.sg", "com.hk",
    "com.tw", "co.at", "or.at", "com.es", "com.pl", "co.id", "com.my", "com.ph", "com.ua",
})


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
    """Parse one Authentication-Results header value; AuthResultsError if it has no authserv-id."""
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
    if extra and extra[0][0] == "atom" and extra[0][1].isdigit():
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


def organizational_domain(domain: str) -> str:
    """The registered domain: the last two labels, or three under a short public suffix."""
    labels = domain.strip().rstrip(".").lower().split(".")
    keep = 3 if ".".join(labels[-2:]) in SHORT_PUBLIC_SUFFIXES else 2
    return ".".join(labels[-keep:])


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment: both domains belong to the same organizational domain."""
    if not domain or not from_domain:
        return False
    return organizational_domain(domain) == organizational_domain(from_domain)


def _domain_of(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().strip("<>").rstrip(".").lower()


def check_authentication(
    headers: Sequence[str], *, authserv_id: str, from_domain: str
) -> AuthVerdict:
    """Whether the topmost Authentication-Results from `authserv_id` shows an authentic sender."""
    ours = authserv_id.strip().lower()
    from_domain = from_domain.strip().rstrip(".").lower()
    if not ours:
        return AuthVerdict(False, "no authserv_id is configured, so no header can be trusted")
    for value in headers:
        try:
            parsed = parse_authentication_results(value)
        except AuthResultsError:
            continue  # no authserv-id at all, so it cannot be ours
        if parsed.authserv_id.lower() == ours:
            return _judge(parsed, authserv_id, from_domain)
    return AuthVerdict(False, f"no Authentication-Results from {authserv_id}")


def _judge(parsed: AuthResults, authserv_id: str, from_domain: str) -> AuthVerdict:
    if not from_domain:
        return AuthVerdict(False, "the sender address has no domain")
    refusals: list[str] = []
    for method, result, properties in parsed.results:
        if method != "dmarc":
            continue
        checked = _domain_of(properties.get("header.from", from_domain))
        if result == "pass" and checked == from_domain:
            return AuthVerdict(True, "dmarc=pass", "dmarc")
        if result == "pass":
            refusals.append(f"dmarc=pass for {checked}, not {from_domain}")
        elif result == "fail":
            return AuthVerdict(False, "dmarc=fail")
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
        elif not domain:
            refusals.append(f"{method}=pass without a domain to align")
        elif aligned(domain, from_domain):
            return AuthVerdict(True, f"{method}=pass for {domain}", method)
        else:
            refusals.append(f"{method}=pass for {domain} not aligned with {from_domain}")
    if not refusals:
        refusals.append(f"no dmarc, dkim or spf result from {authserv_id}")
    refusals.extend(parsed.problems)
    return AuthVerdict(False, "; ".join(refusals))
